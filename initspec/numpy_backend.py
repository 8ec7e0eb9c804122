"""The NumPy reference sampler: every plan primitive, in float64, cast once to the target.

Each adapter implements the same primitives on its own tensors; this one is the reference
the tests hold every backend to (through the plans' exact moments, not value by value).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from initspec.backend import Atomic, Job, Rng, draw
from initspec.engine import run_one, single_job
from initspec.errors import BackendError
from initspec.layout import LayoutLike
from initspec.numeric import FLOAT_DTYPES, inward_bounds
from initspec.plans import (
    ConstantPlan,
    NormalPlan,
    Plan,
    Rejection,
    SparsePlan,
    TruncatedNormalPlan,
    UniformPlan,
)
from initspec.portable import Portable64, Structural64
from initspec.specs import PlanContext, SpecBase

DTYPES = {name: np.dtype(name) for name in FLOAT_DTYPES if name != "bfloat16"}
"""The dtypes NumPy has of initspec's float dtypes (bfloat16 is not one of them)."""


def standard_truncated_normal(rng: np.random.Generator, n: int, a: float, b: float) -> np.ndarray:
    """n draws of N(0, 1) restricted to [a, b], exactly, by rejection (float64), with the
    proposal ``initspec.plans.Rejection`` chooses."""
    out = np.empty(n, dtype=np.float64)
    if n == 0:
        return out
    rej = Rejection.for_interval(a, b)
    a, b = rej.a, rej.b
    filled = 0
    while filled < n:
        need = n - filled
        m = max(need + 16, int(need * 1.3))
        if rej.proposal == "normal":
            x = rng.standard_normal(m)
            x = x[(x >= a) & (x <= b)]
        elif rej.proposal == "uniform":
            x = rng.uniform(a, b, m)
            u = rng.random(m)
            x = x[u <= np.exp(0.5 * (rej.nearest * rej.nearest - x * x))]
        else:
            x = a + rng.exponential(1.0 / rej.rate, m)
            u = rng.random(m)
            x = x[(u <= np.exp(-0.5 * (x - rej.rate) ** 2)) & (x <= b)]
        take = min(len(x), need)
        out[filled : filled + take] = x[:take]
        filled += take
    return -out if rej.flip else out


class Native64(Structural64):
    """NumPy's native stream: every primitive drawn in float64 from one PCG64 generator
    (a ``Sampler[np.ndarray]``; ``cast_once`` rounds the result)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def gauss(self, rows: int, cols: int) -> np.ndarray:
        return self.rng.standard_normal((rows, cols))

    def constant(self, plan: ConstantPlan) -> np.ndarray:
        return np.full(plan.shape, plan.value, dtype=np.float64)

    def uniform(self, plan: UniformPlan) -> np.ndarray:
        return self.rng.uniform(plan.low, plan.high, plan.shape)

    def normal(self, plan: NormalPlan) -> np.ndarray:
        return np.asarray(plan.loc + plan.scale * self.rng.standard_normal(plan.shape))

    def truncated_normal(self, plan: TruncatedNormalPlan) -> np.ndarray:
        z = standard_truncated_normal(self.rng, plan.numel, plan.alpha, plan.beta)
        return np.clip(plan.loc + plan.scale * z, plan.low, plan.high).reshape(plan.shape)

    def sparse(self, plan: SparsePlan) -> np.ndarray:
        rows, cols = plan.canonical_shape
        w = plan.sigma * self.rng.standard_normal((rows, cols))
        for j in range(cols):
            w[self.rng.permutation(rows)[: plan.zeros_per_column], j] = 0.0
        return np.asarray(w.transpose(plan.inverse_perm))


def sample_plan64(plan: Plan, rng: np.random.Generator) -> np.ndarray:
    """Draw ``plan`` in float64 in its stored shape."""
    return np.asarray(plan.draw(Native64(rng)), dtype=np.float64)


def cast_once(x64: np.ndarray, plan: Plan, dtype: Any) -> np.ndarray:
    """Round to ``dtype`` once and clip bounded plans to the dtype-inward bounds.

    ``check_fits`` (run by the engine for every job) has ruled out overflow before
    sampling, so the clipping cannot hide an inf.
    """
    name = np.dtype(dtype).name
    with np.errstate(over="ignore"):
        out = x64.astype(dtype)
    if plan.bounds is not None and out.size:
        lo, hi = inward_bounds(*plan.bounds, name, plan.open_high)
        np.clip(out, lo, hi, out=out)
    return out


class NumpyBackend:
    """The engine's view of NumPy: a target is the dtype name of a new array, the result
    goes into ``out`` under the job's path (``initspec.sample``)."""

    atomic: Atomic = False  # writes into new arrays: nothing of the caller's to protect

    def __init__(self) -> None:
        self.out: dict[str, np.ndarray] = {}

    def backup_reason(self, target: str) -> str | None:
        return None

    def dtype(self, target: str) -> str:
        return target

    def unwritable(self, target: str, job: Job) -> str | None:
        return None

    def placeholder(self, target: str) -> bool:
        return False

    def snapshot(self, target: str) -> None:
        return None

    def restore(self, target: str, snapshot: None) -> None:
        return None

    def threads(self, work: Sequence[tuple[Job, str]]) -> int:
        return 1  # one small tensor at a time (initspec.sample)

    def write(self, target: str, job: Job) -> None:
        if job.rng == "portable":
            sampler: Any = Portable64(job.key, job.perm, job.index)
        else:
            sampler = Native64(np.random.default_rng(job.seed))
        self.out[job.path] = cast_once(draw(job, sampler, _zero_row), job.plan, DTYPES[target])


def _zero_row(values: np.ndarray, row: int) -> np.ndarray:
    values[row] = 0.0
    return values


def sample(
    spec: SpecBase | dict[str, Any] | str,
    shape: tuple[int, ...],
    layout: LayoutLike = "torch",
    seed: int = 0,
    dtype: str = "float32",
    path: str = "",
    context: PlanContext | None = None,
    rng: Rng = "native",
    stream: int = 1,
    index: tuple[slice, ...] | None = None,
) -> np.ndarray:
    """Sample ``spec`` with NumPy, cast once to ``dtype`` (float16, float32 or float64).

    ``rng="native"``: PCG64 seeded with ``derive_seed(seed, path)``, float64 draws.
    ``rng="portable"``: the counter-based stream ``stream`` (``initspec.portable``), the
    same values as the torch and JAX adapters; ``index`` (one slice per dimension) computes
    just that shard of the tensor from its global indices.
    """
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise BackendError(
            f"numpy backend: dtype {dtype!r} is not supported; allowed: {', '.join(DTYPES)}"
        )
    backend = NumpyBackend()
    job = single_job(spec, shape, layout, seed, path, context, rng, stream, index)
    run_one(backend, job, dtype)
    return backend.out[job.path]
