"""Target dtypes: which are supported, what to sample them in, and the single final cast.

float16 and bfloat16 are sampled in float32 and rounded once (sampling in the low-precision
dtype itself is what gave torch's old ``trunc_normal_`` its pile-ups at the bounds). Bounded
plans are then clipped to the closest values of the target dtype inside their interval, as
``initspec.numpy_backend.cast_once``, so rounding never puts a value outside [low, high]
(or [low, high) for a uniform).

Overflow is decided before sampling, from the plan alone (``check_fits``), rather than by
scanning the result for inf: the error is then deterministic, nothing is drawn in vain, and
the clipping above cannot hide an overflow by turning inf into the dtype's largest value.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from initspec.errors import BackendError
from initspec.numpy_backend import inward_bounds
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

SUPPORTED_DTYPES: tuple[torch.dtype, ...] = (
    torch.float16,
    torch.bfloat16,
    torch.float32,
    torch.float64,
)

# The numpy twin of each dtype the core's ``inward_bounds`` can handle; bfloat16 has none.
_NUMPY_TWIN: dict[torch.dtype, type[np.floating]] = {
    torch.float16: np.float16,
    torch.float32: np.float32,
    torch.float64: np.float64,
}

_FLOAT32_MAX = float(torch.finfo(torch.float32).max)

# No normal sampler produces a draw 40 std from its mode: the density there is e^-800 of the
# peak (torch's Box-Muller draws reach ~5.8 std in float32 and ~8.6 in float64).
_NORMAL_REACH = 40.0


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` -> ``"bfloat16"``."""
    return str(dtype).removeprefix("torch.")


def work_dtype(plan: Plan, dtype: torch.dtype) -> torch.dtype:
    """The dtype to sample ``plan`` in for a ``dtype`` target.

    float64 for float64 targets; float32 for the others, unless the plan's range overflows
    float32 (a uniform or truncated normal whose ``high - low`` exceeds float32's maximum,
    which torch's ``uniform_`` would reject): then float64, and the cast decides.
    """
    if dtype == torch.float64:
        return torch.float64
    if isinstance(plan, (UniformPlan, TruncatedNormalPlan)) and not (
        plan.high - plan.low <= _FLOAT32_MAX
    ):
        return torch.float64
    return torch.float32


def dtype_inward_bounds(
    plan: UniformPlan | TruncatedNormalPlan, dtype: torch.dtype
) -> tuple[float, float]:
    """The closest values of ``dtype`` inside [low, high] (inside [low, high) for a uniform).

    Raises ``BackendError`` when ``dtype`` has no value there (an interval narrower than the
    dtype's spacing), since any value written would break the plan's bounds.
    """
    open_high = isinstance(plan, UniformPlan)
    twin = _NUMPY_TWIN.get(dtype)
    if twin is not None:
        # A bound beyond the dtype's range rounds to inf (then steps to the largest finite
        # value); numpy warns about that cast, which is expected here.
        with np.errstate(over="ignore"):
            lo, hi = inward_bounds(plan.low, plan.high, twin, open_high)
    else:
        lo, hi = _torch_inward_bounds(plan.low, plan.high, dtype, open_high)
    if not lo <= hi:
        interval = f"[{plan.low!r}, {plan.high!r}{')' if open_high else ']'}"
        raise BackendError(
            f"{plan.describe()}: {dtype_name(dtype)} has no value in {interval}; widen the "
            f"interval or use a more precise dtype"
        )
    return lo, hi


def _torch_inward_bounds(
    low: float, high: float, dtype: torch.dtype, open_high: bool
) -> tuple[float, float]:
    """``initspec.numpy_backend.inward_bounds`` for dtypes numpy lacks (bfloat16): round each
    bound to nearest, then step one value inward if the rounding went outside."""
    lo = torch.tensor(low, dtype=torch.float64).to(dtype)
    hi = torch.tensor(high, dtype=torch.float64).to(dtype)
    if lo.item() < low:
        lo = torch.nextafter(lo, torch.tensor(math.inf, dtype=dtype))
    if hi.item() > high or (open_high and hi.item() >= high):
        hi = torch.nextafter(hi, torch.tensor(-math.inf, dtype=dtype))
    return float(lo.item()), float(hi.item())


def max_magnitude(plan: Plan) -> float:
    """A bound on |value| over everything the plan can produce.

    Exact for constant, uniform, eye, dirac and orthogonal plans (an entry of a matrix with
    orthonormal rows or columns is at most 1, times gain). For normal-based plans: the largest
    |value| within 40 std of the mode (clipped to [low, high] for a truncated normal, whose
    mode is clip(loc, low, high) and whose density falls at least as fast from there).
    """
    if isinstance(plan, ConstantPlan):
        return abs(plan.value)
    if isinstance(plan, UniformPlan):
        return max(abs(plan.low), abs(plan.high))
    if isinstance(plan, NormalPlan):
        return abs(plan.loc) + _NORMAL_REACH * plan.scale
    if isinstance(plan, TruncatedNormalPlan):
        mode = min(max(plan.loc, plan.low), plan.high)
        low = max(plan.low, mode - _NORMAL_REACH * plan.scale)
        high = min(plan.high, mode + _NORMAL_REACH * plan.scale)
        return max(abs(low), abs(high))
    if isinstance(plan, SparsePlan):
        return _NORMAL_REACH * plan.sigma
    if isinstance(plan, (OrthogonalPlan, IdentityPlan, DiracPlan)):
        return abs(plan.gain)
    raise BackendError(f"initspec_torch: no magnitude bound for plan {type(plan).__name__}")


def check_fits(plan: Plan, dtype: torch.dtype) -> None:
    """``BackendError`` if a value of the plan can round to inf in ``dtype``.

    Rounding is monotonic, so every |value| <= M stays finite iff M itself rounds to a finite
    value (M = ``max_magnitude(plan)``).
    """
    bound = max_magnitude(plan)
    if math.isfinite(float(torch.tensor(bound, dtype=torch.float64).to(dtype).item())):
        return
    largest = float(torch.finfo(dtype).max)
    raise BackendError(
        f"{plan.describe()} does not fit in {dtype_name(dtype)}: values reach {bound:.4g}, "
        f"which overflows to inf (largest {dtype_name(dtype)}: {largest:.4g}); use a wider "
        f"dtype (float32) or a smaller scale"
    )


def clip_to_bounds_(out: torch.Tensor, plan: Plan) -> torch.Tensor:
    """Clip a uniform or truncated normal, already in its final dtype, to the dtype-inward
    bounds (a no-op for other plans)."""
    if isinstance(plan, (UniformPlan, TruncatedNormalPlan)) and out.numel():
        lo, hi = dtype_inward_bounds(plan, out.dtype)
        out.clamp_(lo, hi)
    return out


def cast_once(x: torch.Tensor, plan: Plan, dtype: torch.dtype) -> torch.Tensor:
    """Round ``x`` to ``dtype`` once and clip bounded plans to the dtype-inward bounds.

    Overflow is not checked here: ``check_fits`` has ruled it out before sampling.
    """
    return clip_to_bounds_(x.to(dtype), plan)
