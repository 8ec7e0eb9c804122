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

import torch

from initspec.numeric import FLOAT_DTYPES, inward_bounds
from initspec.plans import Plan, UniformPlan

SUPPORTED_DTYPES: tuple[torch.dtype, ...] = tuple(getattr(torch, name) for name in FLOAT_DTYPES)

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
    if plan.bounds is not None and not plan.bounds[1] - plan.bounds[0] <= _FLOAT32_MAX:
        return torch.float64
    return torch.float32


def dtype_inward_bounds(plan: Plan, dtype: torch.dtype) -> tuple[float, float]:
    """The closest values of ``dtype`` inside a bounded plan's [low, high] (inside [low,
    high) for a uniform; ``initspec.numeric.inward_bounds``; the engine has checked that
    there are some)."""
    assert plan.bounds is not None
    return inward_bounds(*plan.bounds, dtype_name(dtype), plan.open_high)


def clip_to_bounds_(out: torch.Tensor, plan: Plan) -> torch.Tensor:
    """Clip a bounded plan (uniform, truncated normal), already in its final dtype, to the
    dtype-inward bounds (a no-op for other plans)."""
    if plan.bounds is not None and out.numel():
        lo, hi = dtype_inward_bounds(plan, out.dtype)
        out.clamp_(lo, hi)
    return out


def uniform_inside_(
    out: torch.Tensor, plan: UniformPlan, generator: torch.Generator | None
) -> torch.Tensor:
    """``out`` (in its final dtype) filled with torch's ``uniform_(lo, hi)``, ``lo`` and
    ``hi`` the closest values of its dtype inside [low, high) (``dtype_inward_bounds``).

    ``uniform_(low, high)`` itself can round onto ``high``, or below ``low`` when ``low`` is
    not a value of the dtype. With bounds that are values of the dtype, on the CPU in
    float32 / float64, it cannot leave [lo, hi], so no clamp pass is needed (7% of
    ResNet-50's init): ATen's ``uniform_real_distribution`` computes ``x * d + lo`` with
    ``d = fl(hi - lo)`` and ``x = k 2^-p <= 1 - 2^-p`` (p = 24, 53), fused or not
    (tests/test_torch_init.py pins this formula). Fused: the exact value is
    ``hi + (d - (hi - lo)) - d 2^-p <= hi``, since ``|d - (hi - lo)| <= ulp(d) / 2 <= d 2^-p``.
    Unfused: ``fl(x d) <= d - ulp-below(d)`` (x d lies more than half an ulp below d unless
    d is a power of two, where it is exact), so ``fl(x d) + lo <= hi + ulp(d) / 2 - ulp(d)
    / 2``. Rounding to nearest keeps a value at most ``hi`` at most ``hi``; x = 0 gives ``lo``.
    Other devices (CUDA draws differently) and a range that overflows the dtype are clamped.
    """
    lo, hi = dtype_inward_bounds(plan, out.dtype)
    out.uniform_(lo, hi, generator=generator)
    proven = (
        out.device.type == "cpu"
        and out.dtype in (torch.float32, torch.float64)
        and hi - lo <= torch.finfo(out.dtype).max
    )
    if not proven:
        out.clamp_(lo, hi)
    return out


def cast_once(x: torch.Tensor, plan: Plan, dtype: torch.dtype) -> torch.Tensor:
    """Round ``x`` to ``dtype`` once and clip bounded plans to the dtype-inward bounds.

    Overflow is not checked here: ``check_fits`` has ruled it out before sampling.
    """
    return clip_to_bounds_(x.to(dtype), plan)
