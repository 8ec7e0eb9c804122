"""The JAX sampler: every plan primitive of ``initspec.plans`` on ``jax.random``'s values.

The bits, uniforms and normals are ``jax.random``'s for the key, bit for bit, computed by
``initspec_jax.threefry`` (the hash written out: on CPU JAX's own lowering is a rolled
loop, about 6x slower); the rest (split, permutation) is ``jax.random`` itself.

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

from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

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
from initspec_jax.threefry import normal, typed, uniform
from initspec_jax.truncnorm import Branch, sample_standard, truncnorm_branch

Shape = tuple[int, ...]
Work = np.dtype[Any]


def orthogonal_matrix(key: jax.Array, rows: int, cols: int, work: np.dtype[Any]) -> jax.Array:
    """Haar-random (rows, cols) with orthonormal rows or columns, in ``work``.

    As ``numpy_backend.orthogonal_matrix`` and torch's ``orthogonal_``: QR of a
    (max, min) Gaussian, Q's columns multiplied by the signs of diag(R) (Mezzadri 2007),
    transposed when rows < cols. A zero diagonal entry (probability 0) counts as +1, so no
    column is ever zeroed.
    """
    if rows * cols == 0:
        return jnp.zeros((rows, cols), work)
    z = normal(key, (max(rows, cols), min(rows, cols)), work)
    q, r = jnp.linalg.qr(z)
    q = q * jnp.where(jnp.diagonal(r) < 0, -1, 1).astype(work)
    return q.T if rows < cols else q


def _sparse(unit: SparsePlan, key: jax.Array, work: np.dtype[Any]) -> jax.Array:
    """N(0, 1) in canonical (rows, cols), then ``zeros_per_column`` rows zeroed per column:
    the first rows of an independent uniform random permutation of each column."""
    rows, cols = unit.canonical_shape
    k_values, k_perm = jax.random.split(key)
    w = unit.sigma * normal(k_values, (rows, cols), work)
    zeros = unit.zeros_per_column
    if zeros and rows * cols:
        perms = jax.vmap(lambda k: jax.random.permutation(k, rows))(jax.random.split(k_perm, cols))
        rank = jnp.argsort(perms, axis=1).T  # rank[i, j]: position of row i in column j's perm
        w = jnp.where(rank < zeros, jnp.zeros((), work), w)
    return w.transpose(unit.inverse_perm)


def _orthogonal(unit: OrthogonalPlan, key: jax.Array, work: np.dtype[Any]) -> jax.Array:
    q = unit.gain * orthogonal_matrix(key, unit.rows, unit.cols, work)
    return q.reshape(unit.permuted_shape).transpose(unit.inverse_perm)


def _identity(unit: IdentityPlan, key: jax.Array, work: np.dtype[Any]) -> jax.Array:
    return jnp.asarray(unit.build(), work)


def _dirac(unit: DiracPlan, key: jax.Array, work: np.dtype[Any]) -> jax.Array:
    """The identity per group (built by the core), or an orthogonal (out, in) matrix at the
    centre of canonical (out, in, *k) zeros; in the stored layout."""
    if unit.matrix == "identity":
        return jnp.asarray(unit.build(), work)
    centre = unit.centre_matrix
    m = centre.gain * orthogonal_matrix(key, centre.rows, centre.cols, work)
    w = jnp.zeros(unit.canonical_shape, work).at[unit.centre_index].set(m)
    return w.transpose(unit.inverse_perm)


# The elementwise primitives take their numbers as traced arguments and only the shape and
# dtype as static ones, so every normal (uniform, truncated normal) plan of one shape shares
# one compiled program whatever its std or bounds; inlined when called under an outer jit.


def _constant(key: jax.Array, numbers: Any, shape: Shape, work: Work, static: Any) -> jax.Array:
    return jnp.full(shape, numbers[0], work)


def _uniform(key: jax.Array, numbers: Any, shape: Shape, work: Work, static: Any) -> jax.Array:
    return uniform(key, shape, work, numbers[0], numbers[1])


def _normal(key: jax.Array, numbers: Any, shape: Shape, work: Work, static: Any) -> jax.Array:
    return numbers[0] + numbers[1] * normal(key, shape, work)


def _truncated_normal(
    key: jax.Array, numbers: Any, shape: Shape, work: Work, branch: Branch
) -> jax.Array:
    loc, scale, low, high = numbers[:4]
    z = sample_standard(key, shape, work, branch, numbers[4:])
    return jnp.clip(loc + scale * z, low, high)


def _finish(x: jax.Array, bounds: tuple[Any, Any] | None, target: np.dtype[Any]) -> jax.Array:
    """Round to ``target`` once; clip to ``bounds`` (values of ``target``) if given."""
    out = x.astype(target)
    if bounds is not None:
        out = jnp.clip(out, jnp.asarray(bounds[0], out.dtype), jnp.asarray(bounds[1], out.dtype))
    return out


def _placed(x: jax.Array, sharding: Any) -> jax.Array:
    return x if sharding is None else place(x, sharding)


@partial(jax.jit, static_argnums=(3, 4, 5, 6, 7))
def _elementwise_jit(
    key: jax.Array,
    numbers: tuple[Any, ...],
    bounds: tuple[Any, Any] | None,
    values: Callable[..., jax.Array],
    static: Any,
    shape: Shape,
    target: np.dtype[Any],
    sharding: Any,
) -> jax.Array:
    # Under a sharding each device computes only its shard (threefry is partitionable).
    x = values(typed(key), numbers, shape, work_dtype(target), static)
    return _placed(_finish(x, bounds, target), sharding)


@partial(jax.jit, static_argnums=(0, 1, 4, 5))
def _structural_jit(
    values: Callable[..., jax.Array],
    unit: Plan,
    key: jax.Array,
    factor: Any,
    target: np.dtype[Any],
    sharding: Any,
) -> jax.Array:
    # A plan with gain (sparse: std) 1 and that factor: the values are linear in it, so
    # plans differing only in gain share a compiled program.
    x = factor * values(unit, typed(key), work_dtype(target))
    return _placed(_finish(x, None, target), sharding)


class JaxNative:
    """JAX's native stream (``jax.random``'s values for the key): a ``Sampler[jax.Array]`` of
    ``target`` arrays, drawn in the work dtype (float32, or float64 for a float64 target
    under x64) and rounded once, uniform and truncated normal clipped inside their bounds,
    placed on ``sharding`` inside the program when given.

    One compiled program per kind of primitive, shape, dtype and sharding; the plan's
    numbers are traced arguments.
    """

    def __init__(self, key: Any, target: np.dtype[Any], sharding: Any = None) -> None:
        self.key, self.target, self.sharding = key, target, sharding

    def _elementwise(
        self, plan: Plan, values: Callable[..., jax.Array], numbers: tuple[Any, ...], static: Any = None
    ) -> jax.Array:
        bounds = clip_bounds(plan, stored_dtype(self.target))
        return _elementwise_jit(
            self.key, numbers, bounds, values, static, plan.shape, self.target, self.sharding
        )

    def constant(self, plan: ConstantPlan) -> jax.Array:
        return self._elementwise(plan, _constant, (plan.value,))

    def uniform(self, plan: UniformPlan) -> jax.Array:
        return self._elementwise(plan, _uniform, (plan.low, plan.high))

    def normal(self, plan: NormalPlan) -> jax.Array:
        return self._elementwise(plan, _normal, (plan.loc, plan.scale))

    def truncated_normal(self, plan: TruncatedNormalPlan) -> jax.Array:
        branch, constants = truncnorm_branch(plan.alpha, plan.beta, work_dtype(self.target))
        numbers = (plan.loc, plan.scale, plan.low, plan.high, *constants)
        return self._elementwise(plan, _truncated_normal, numbers, branch)

    def _structural(self, values: Callable[..., jax.Array], unit: Plan, factor: float) -> jax.Array:
        return _structural_jit(values, unit, self.key, factor, self.target, self.sharding)

    def orthogonal(self, plan: OrthogonalPlan) -> jax.Array:
        return self._structural(_orthogonal, replace(plan, gain=1.0), plan.gain)

    def identity(self, plan: IdentityPlan) -> jax.Array:
        return self._structural(_identity, replace(plan, gain=1.0), plan.gain)

    def dirac(self, plan: DiracPlan) -> jax.Array:
        return self._structural(_dirac, replace(plan, gain=1.0), plan.gain)

    def sparse(self, plan: SparsePlan) -> jax.Array:
        return self._structural(_sparse, replace(plan, sigma=1.0), plan.sigma)


def clip_bounds(plan: Plan, dtype: np.dtype[Any]) -> tuple[float, float] | None:
    """The closest ``dtype`` values inside a bounded plan's [low, high] (or [low, high),
    ``initspec.numeric.inward_bounds``); None for other plans and for empty ones."""
    # An empty plan writes nothing: like numeric.check_fits, NumPy and torch, no bounds check.
    if plan.bounds is not None and plan.numel:
        return inward_bounds(*plan.bounds, dtype.name, plan.open_high)
    return None


def sample_plan(
    plan: Plan, key: jax.Array | np.ndarray, dtype: Any = jnp.float32, sharding: Any = None
) -> jax.Array:
    """Draw ``plan`` with ``key`` (a single typed key, or the two uint32 words of a
    threefry2x32 key) as a ``dtype`` array (``JaxNative``), after the core's check that its
    values fit the dtype (``initspec.numeric.check_fits``, decided from the plan alone:
    values cannot be inspected under jit). ``sharding`` (optional) is applied inside the
    program (``initspec_jax.sharding.place``)."""
    target = check_dtype(dtype)
    out_dtype = stored_dtype(target)  # float32 for float64 without x64
    check_fits(plan, out_dtype.name)
    return plan.draw(JaxNative(key, target, sharding))
