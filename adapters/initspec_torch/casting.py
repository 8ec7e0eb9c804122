"""Target dtypes: which are supported, what to sample them in, and the single final cast.

float16 and bfloat16 are sampled in float32 and rounded once (sampling in the low-precision
dtype itself is what gave torch's old ``trunc_normal_`` its pile-ups at the bounds). Bounded
plans are then clipped to the closest values of the target dtype inside their interval, as
``initspec.numpy_backend.cast_once``, so rounding never puts a value outside [low, high]
(or [low, high) for a uniform).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from initspec.errors import BackendError
from initspec.numpy_backend import inward_bounds
from initspec.plans import Plan, TruncatedNormalPlan, UniformPlan

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


def cast_once(x: torch.Tensor, plan: Plan, dtype: torch.dtype) -> torch.Tensor:
    """Round ``x`` to ``dtype`` once; clip bounded plans to the dtype-inward bounds; refuse
    values that overflow to inf (``BackendError``, before anything is written)."""
    out = x.to(dtype)
    if out.numel() == 0:
        return out
    if isinstance(plan, (UniformPlan, TruncatedNormalPlan)):
        lo, hi = dtype_inward_bounds(plan, dtype)
        out.clamp_(lo, hi)
    if not bool(torch.isfinite(out).all()):
        raise BackendError(
            f"{plan.describe()} does not fit in {dtype_name(dtype)}: values overflow to inf; "
            f"use a wider dtype (float32) or a smaller scale"
        )
    return out
