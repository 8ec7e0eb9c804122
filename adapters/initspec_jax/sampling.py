"""The JAX sampler: every plan primitive of ``initspec.plans`` on ``jax.random``.

Each primitive mirrors ``initspec.numpy_backend.sample_plan64`` (the reference): it is drawn
in the work dtype (float32, or float64 for a float64 target under x64) and rounded once to
the target dtype. Uniform and truncated-normal results are then clipped to the closest
target values inside their bounds (``initspec.numeric.inward_bounds``), so rounding never
leaves [low, high] (or [low, high) for uniform). Values that would overflow the target are
refused before sampling (``initspec.numeric.check_fits``), as by every backend.

Everything here is traceable: the plan is static (computed from the static shape), the key
may be a tracer.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from initspec import BackendError
from initspec.numeric import check_fits, inward_bounds
from initspec.plans import (
    ConstantPlan,
    DiracPlan,
    IdentityPlan,
    NormalPlan,
    OrthogonalPlan,
    Plan,
    SparsePlan,
    TruncatedNormalPlan,
    UniformPlan,
)
from initspec_jax.checks import check_dtype, stored_dtype, work_dtype
from initspec_jax.sharding import place
from initspec_jax.truncnorm import Branch, sample_standard, truncnorm_constants


def orthogonal_matrix(key: jax.Array, rows: int, cols: int, work: np.dtype[Any]) -> jax.Array:
    """Haar-random (rows, cols) with orthonormal rows or columns, in ``work``.

    As ``numpy_backend.orthogonal_matrix`` and torch's ``orthogonal_``: QR of a
    (max, min) Gaussian, Q's columns multiplied by the signs of diag(R) (Mezzadri 2007),
    transposed when rows < cols. A zero diagonal entry (probability 0) counts as +1, so no
    column is ever zeroed.
    """
    if rows * cols == 0:
        return jnp.zeros((rows, cols), work)
    z = jax.random.normal(key, (max(rows, cols), min(rows, cols)), work)
    q, r = jnp.linalg.qr(z)
    q = q * jnp.where(jnp.diagonal(r) < 0, -1, 1).astype(work)
    return q.T if rows < cols else q


def _sparse(plan: SparsePlan, key: jax.Array, work: np.dtype[Any]) -> jax.Array:
    """N(0, sigma^2) in canonical (rows, cols), then ``zeros_per_column`` rows zeroed per
    column: the first rows of an independent uniform random permutation of each column."""
    rows, cols = plan.canonical_shape
    k_values, k_perm = jax.random.split(key)
    w = plan.sigma * jax.random.normal(k_values, (rows, cols), work)
    zeros = plan.zeros_per_column
    if zeros and rows * cols:
        perms = jax.vmap(lambda k: jax.random.permutation(k, rows))(jax.random.split(k_perm, cols))
        rank = jnp.argsort(perms, axis=1).T  # rank[i, j]: position of row i in column j's perm
        w = jnp.where(rank < zeros, jnp.zeros((), work), w)
    return w.transpose(plan.inverse_perm)


def _dirac(plan: DiracPlan, key: jax.Array, work: np.dtype[Any]) -> jax.Array:
    """Canonical (out, in, *k) zeros with the identity (per group) or an orthogonal (out, in)
    matrix written at ``plan.center``; transposed back to the stored layout."""
    w = jnp.zeros(plan.canonical_shape, work)
    out_ch, in_ch = plan.canonical_shape[:2]
    if plan.matrix == "orthogonal":
        m = plan.gain * orthogonal_matrix(key, out_ch, in_ch, work)
        w = w.at[(slice(None), slice(None)) + plan.center].set(m)
    else:
        n = min(plan.out_per_group, in_ch)
        group = np.repeat(np.arange(plan.groups), n)
        diag = np.tile(np.arange(n), plan.groups)
        index = (group * plan.out_per_group + diag, diag) + plan.center
        w = w.at[index].set(jnp.asarray(plan.gain, work))
    return w.transpose(plan.inverse_perm)


def sample_work(plan: Plan, key: jax.Array, work: np.dtype[Any]) -> jax.Array:
    """Draw ``plan`` in its stored shape in dtype ``work`` (float32 or float64)."""
    shape = plan.shape
    if isinstance(plan, ConstantPlan):
        return jnp.full(shape, plan.value, work)
    if isinstance(plan, UniformPlan):
        return _uniform(key, plan.low, plan.high, shape, work)
    if isinstance(plan, NormalPlan):
        return _normal(key, plan.loc, plan.scale, shape, work)
    if isinstance(plan, TruncatedNormalPlan):
        branch, constants = truncnorm_constants(plan.alpha, plan.beta, work)
        args = (plan.loc, plan.scale, plan.low, plan.high)
        return _truncated_normal(key, args, constants, shape, work, branch)
    if isinstance(plan, IdentityPlan):
        return plan.gain * jnp.eye(shape[0], shape[1], dtype=work)
    if isinstance(plan, OrthogonalPlan):
        q = plan.gain * orthogonal_matrix(key, plan.rows, plan.cols, work)
        return q.reshape(plan.permuted_shape).transpose(plan.inverse_perm)
    if isinstance(plan, DiracPlan):
        return _dirac(plan, key, work)
    if isinstance(plan, SparsePlan):
        return _sparse(plan, key, work)
    raise BackendError(f"jax backend: unknown plan {type(plan).__name__}")


# The elementwise primitives take their numbers as traced arguments and only the shape and
# dtype as static ones, so every normal (uniform, truncated normal) plan of one shape shares
# one compiled program whatever its std or bounds; inlined when called under an outer jit.


def _uniform(
    key: jax.Array, low: Any, high: Any, shape: tuple[int, ...], work: np.dtype[Any]
) -> jax.Array:
    return jax.random.uniform(key, shape, work, minval=low, maxval=high)


def _normal(
    key: jax.Array, loc: Any, scale: Any, shape: tuple[int, ...], work: np.dtype[Any]
) -> jax.Array:
    return loc + scale * jax.random.normal(key, shape, work)


def _truncated_normal(
    key: jax.Array,
    args: tuple[Any, Any, Any, Any],
    constants: tuple[Any, ...],
    shape: tuple[int, ...],
    work: np.dtype[Any],
    branch: Branch,
) -> jax.Array:
    loc, scale, low, high = args
    z = sample_standard(key, shape, work, branch, constants)
    return jnp.clip(loc + scale * z, low, high)


def _finish(x: jax.Array, bounds: tuple[Any, Any] | None, target: np.dtype[Any]) -> jax.Array:
    """Round to ``target`` once; clip to ``bounds`` (values of ``target``) if given."""
    out = x.astype(target)
    if bounds is not None:
        out = jnp.clip(out, jnp.asarray(bounds[0], out.dtype), jnp.asarray(bounds[1], out.dtype))
    return out


def _placed(x: jax.Array, sharding: Any) -> jax.Array:
    return x if sharding is None else place(x, sharding)


def _typed(key: Any) -> jax.Array:
    """A typed key from ``key``: as given, or wrapped from the two raw words of a
    threefry2x32 key (uint32[2]; wrapping inside the program saves a dispatch per
    parameter). Other raw keys are left to ``jax.random`` (a legacy key of the default
    implementation, as before)."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) or tuple(key.shape) != (2,):
        return key  # type: ignore[no-any-return]
    return jax.random.wrap_key_data(key, impl="threefry2x32")  # type: ignore[no-any-return]


@partial(jax.jit, static_argnums=(3, 4, 5, 6))
def _elementwise_jit(
    key: jax.Array,
    numbers: tuple[Any, ...],
    bounds: tuple[Any, Any] | None,
    kind: tuple[Any, ...],
    shape: tuple[int, ...],
    target: np.dtype[Any],
    sharding: Any,
) -> jax.Array:
    # Under a sharding each device computes only its shard (threefry is partitionable).
    key = _typed(key)
    work = work_dtype(target)
    if kind[0] == "constant":
        x = jnp.full(shape, numbers[0], work)
    elif kind[0] == "uniform":
        x = _uniform(key, numbers[0], numbers[1], shape, work)
    elif kind[0] == "normal":
        x = _normal(key, numbers[0], numbers[1], shape, work)
    else:
        x = _truncated_normal(key, numbers[:4], numbers[4:], shape, work, kind[1])
    return _placed(_finish(x, bounds, target), sharding)


def _unit(plan: Plan) -> tuple[Plan, float]:
    """A structural plan with gain (sparse: std) 1, and that factor: the values are linear in
    it, so plans differing only in gain share a compiled program."""
    if isinstance(plan, SparsePlan):
        return replace(plan, sigma=1.0), plan.sigma
    if isinstance(plan, (OrthogonalPlan, IdentityPlan, DiracPlan)):
        return replace(plan, gain=1.0), plan.gain
    return plan, 1.0


@partial(jax.jit, static_argnums=(0, 3, 4))
def _structural_jit(
    unit: Plan, key: jax.Array, factor: Any, target: np.dtype[Any], sharding: Any
) -> jax.Array:
    work = work_dtype(target)
    return _placed(_finish(factor * sample_work(unit, _typed(key), work), None, target), sharding)


def clip_bounds(plan: Plan, dtype: np.dtype[Any]) -> tuple[float, float] | None:
    """The closest ``dtype`` values inside a uniform's [low, high) or a truncated normal's
    [low, high] (``initspec.numeric.inward_bounds``); None for other plans."""
    # An empty plan writes nothing: like numeric.check_fits, NumPy and torch, no bounds check.
    if isinstance(plan, (UniformPlan, TruncatedNormalPlan)) and plan.numel:
        return inward_bounds(plan.low, plan.high, dtype.name, isinstance(plan, UniformPlan))
    return None


def sample_plan(
    plan: Plan, key: jax.Array | np.ndarray, dtype: Any = jnp.float32, sharding: Any = None
) -> jax.Array:
    """Draw ``plan`` with ``key`` (a single typed key, or the two uint32 words of a
    threefry2x32 key) as a ``dtype`` array: sampled in the work dtype, rounded once, uniform
    and truncated normal clipped inside their bounds.

    One compiled program per kind of primitive, shape, dtype and sharding; the plan's
    numbers are traced arguments. ``sharding`` (optional) is applied inside the program
    (``initspec_jax.sharding.place``).
    """
    target = check_dtype(dtype)
    work = work_dtype(target)
    out_dtype = stored_dtype(target)  # float32 for float64 without x64
    # shared with every backend: refuse values that would overflow, or bounds with no
    # value of the dtype between them, from the plan alone (values cannot be inspected
    # under jit)
    check_fits(plan, out_dtype.name)
    bounds = clip_bounds(plan, out_dtype)
    if isinstance(plan, ConstantPlan):
        numbers: tuple[float, ...] = (plan.value,)
        kind: tuple[Any, ...] = ("constant",)
    elif isinstance(plan, UniformPlan):
        numbers, kind = (plan.low, plan.high), ("uniform",)
    elif isinstance(plan, NormalPlan):
        numbers, kind = (plan.loc, plan.scale), ("normal",)
    elif isinstance(plan, TruncatedNormalPlan):
        branch, constants = truncnorm_constants(plan.alpha, plan.beta, work)
        numbers = (plan.loc, plan.scale, plan.low, plan.high, *constants)
        kind = ("truncated_normal", branch)
    else:
        unit, factor = _unit(plan)
        return _structural_jit(unit, key, factor, target, sharding)
    return _elementwise_jit(key, numbers, bounds, kind, plan.shape, target, sharding)
