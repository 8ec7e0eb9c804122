"""The NumPy reference sampler: every plan primitive, in float64, cast once to the target.

Each adapter implements the same primitives on its own tensors; this one is the reference
the tests hold every backend to (through the plans' exact moments, not value by value).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np

from initspec import portable
from initspec.errors import BackendError
from initspec.layout import LayoutLike
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
from initspec.seeding import derive_seed
from initspec.specs import PlanContext, SpecBase

DTYPES = {"float16": np.float16, "float32": np.float32, "float64": np.float64}


def standard_truncated_normal(rng: np.random.Generator, n: int, a: float, b: float) -> np.ndarray:
    """n draws of N(0, 1) restricted to [a, b], exactly, by rejection (float64).

    - mass > 0.3: normal proposals, redraw what falls outside (as torch >= 2.12);
    - otherwise, after reflecting so the interval lies mostly right of 0: a uniform proposal
      on [a, b] accepted with exp((m^2 - x^2) / 2), m the point of [a, b] nearest 0, when
      the interval is narrow; for a wide tail interval Robert's (1995) exponential proposal
      with rate (a + sqrt(a^2 + 4)) / 2, accepted with exp(-(x - rate)^2 / 2).
    No inverse CDF, so tiny intervals far in the tail neither pile up nor overflow.
    """
    from initspec.plans import normal_mass

    out = np.empty(n, dtype=np.float64)
    if n == 0:
        return out
    flip = b <= 0
    if flip:
        a, b = -b, -a
    mass = normal_mass(a, b)
    filled = 0
    while filled < n:
        need = n - filled
        m = max(need + 16, int(need * 1.3))
        if mass > 0.3:
            x = rng.standard_normal(m)
            x = x[(x >= a) & (x <= b)]
        elif a <= 0 or (b - a) * a <= 1.0:
            nearest = 0.0 if a <= 0 else a
            x = rng.uniform(a, b, m)
            u = rng.random(m)
            x = x[u <= np.exp(0.5 * (nearest * nearest - x * x))]
        else:
            rate = 0.5 * (a + math.sqrt(a * a + 4.0))
            x = a + rng.exponential(1.0 / rate, m)
            u = rng.random(m)
            x = x[(u <= np.exp(-0.5 * (x - rate) ** 2)) & (x <= b)]
        take = min(len(x), need)
        out[filled : filled + take] = x[:take]
        filled += take
    return -out if flip else out


def orthogonal_matrix(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    """Haar-random (rows, cols) with orthonormal rows or columns, as torch's ``orthogonal_``:
    QR of a Gaussian in float64 with Q's columns multiplied by sign(diag(R)) (Mezzadri 2007).
    """
    if rows * cols == 0:
        return np.zeros((rows, cols))
    flat = rng.standard_normal((rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q *= np.sign(np.diag(r))
    return np.asarray(q.T if rows < cols else q)


def sample_plan64(plan: Plan, rng: np.random.Generator) -> np.ndarray:
    """Draw ``plan`` in float64 in its stored shape."""
    return np.asarray(_sample_plan64(plan, rng), dtype=np.float64)


def _sample_plan64(plan: Plan, rng: np.random.Generator) -> Any:
    shape = plan.shape
    n = math.prod(shape)
    if isinstance(plan, ConstantPlan):
        return np.full(shape, plan.value, dtype=np.float64)
    if isinstance(plan, UniformPlan):
        return rng.uniform(plan.low, plan.high, shape)
    if isinstance(plan, NormalPlan):
        return plan.loc + plan.scale * rng.standard_normal(shape)
    if isinstance(plan, TruncatedNormalPlan):
        z = standard_truncated_normal(rng, n, plan.alpha, plan.beta)
        return np.clip(plan.loc + plan.scale * z, plan.low, plan.high).reshape(shape)
    if isinstance(plan, IdentityPlan):
        return plan.gain * np.eye(shape[0], shape[1]) if n else np.zeros(shape)
    if isinstance(plan, OrthogonalPlan):
        q = plan.gain * orthogonal_matrix(rng, plan.rows, plan.cols)
        return q.reshape(plan.permuted_shape).transpose(plan.inverse_perm)
    if isinstance(plan, DiracPlan):
        out_ch, in_ch = plan.canonical_shape[:2]
        return plan.build(
            orthogonal_matrix(rng, out_ch, in_ch) if plan.matrix == "orthogonal" else None
        )
    if isinstance(plan, SparsePlan):
        rows, cols = plan.canonical_shape
        w = plan.sigma * rng.standard_normal((rows, cols))
        for j in range(cols):
            w[rng.permutation(rows)[: plan.zeros_per_column], j] = 0.0
        return w.transpose(plan.inverse_perm)
    raise BackendError(f"numpy backend: unknown plan {type(plan).__name__}")


def cast_once(x64: np.ndarray, plan: Plan, dtype: Any) -> np.ndarray:
    """Round to ``dtype`` once and clip bounded plans to the dtype-inward bounds.

    ``check_fits`` has ruled out overflow before sampling, so the clipping cannot hide an inf.
    """
    name = np.dtype(dtype).name
    check_fits(plan, name)
    with np.errstate(over="ignore"):
        out = x64.astype(dtype)
    if isinstance(plan, (UniformPlan, TruncatedNormalPlan)) and out.size:
        lo, hi = inward_bounds(plan.low, plan.high, name, isinstance(plan, UniformPlan))
        np.clip(out, lo, hi, out=out)
    return out


def sample(
    spec: SpecBase | dict[str, Any] | str,
    shape: tuple[int, ...],
    layout: LayoutLike = "torch",
    seed: int = 0,
    dtype: str = "float32",
    path: str = "",
    context: PlanContext | None = None,
    rng: Literal["native", "portable"] = "native",
    stream: int = 1,
    index: tuple[slice, ...] | None = None,
) -> np.ndarray:
    """Sample ``spec`` with NumPy, cast once to ``dtype`` (float16, float32 or float64).

    ``rng="native"``: PCG64 seeded with ``derive_seed(seed, path)``, float64 draws.
    ``rng="portable"``: the counter-based stream ``stream`` (``initspec.portable``), the
    same values as the torch and JAX adapters; ``index`` (one slice per dimension) computes
    just that shard of the tensor from its global indices.
    """
    from initspec.parse import parse

    if dtype not in DTYPES:
        raise BackendError(
            f"numpy backend: dtype {dtype!r} is not supported; allowed: {', '.join(DTYPES)}"
        )
    plan = parse(spec).plan(shape, layout, context)
    if rng == "portable":
        portable.check_version(stream)
        key = portable.param_key(seed, path)
        perm = portable.layout_perm(plan.shape, layout)
        values = portable.sample_plan_portable64(plan, key, perm, index)
        return cast_once(values, plan, DTYPES[dtype])
    if rng != "native":
        raise BackendError(f"rng {rng!r} is not known; allowed: native, portable")
    if index is not None:
        raise BackendError(
            "index (a shard) needs rng='portable': the native stream is not shardable"
        )
    gen = np.random.default_rng(derive_seed(seed, path))
    return cast_once(sample_plan64(plan, gen), plan, DTYPES[dtype])
