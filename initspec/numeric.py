"""What fits in a dtype: largest values, rounding, dtype-inward bounds, overflow checks.

Shared by every backend so they all refuse and clip the same way. Rounding is
round-to-nearest-even, as numpy's, torch's and XLA's casts; bfloat16 (which NumPy lacks) is
rounded through the float32 bit pattern.
"""

from __future__ import annotations

import functools
import math
import struct
from typing import Any

import numpy as np

from initspec.errors import BackendError
from initspec.plans import Plan

FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")
"""The dtypes initspec writes; any other dtype is refused."""

DTYPE_MAX = {
    "float16": 65504.0,
    "bfloat16": 3.3895313892515355e38,
    "float32": 3.4028234663852886e38,
    "float64": 1.7976931348623157e308,
}


def dtype_key(dtype: Any) -> str:
    """A dtype's name: a string, a NumPy (or ml_dtypes) dtype, or a torch dtype."""
    if isinstance(dtype, str):
        return dtype
    try:
        return str(np.dtype(dtype).name)
    except TypeError:
        return str(dtype).removeprefix("torch.")


def _check(dtype: Any) -> str:
    name = dtype_key(dtype)
    if name not in DTYPE_MAX:
        raise BackendError(
            f"dtype {name!r} is not a float dtype initspec writes; allowed: {', '.join(FLOAT_DTYPES)}"
        )
    return name


def _bf16_bits(x: float) -> int:
    """The bfloat16 bit pattern nearest to ``x`` (round to nearest even), as a 16-bit int."""
    with np.errstate(over="ignore"):
        f = np.array(x, dtype=np.float32)  # exact for our bounds' purposes: float64 -> f32 RNE
    bits = int(f.view(np.uint32))
    if math.isnan(float(f)):
        return 0x7FC0
    bits += 0x7FFF + ((bits >> 16) & 1)
    return (bits >> 16) & 0xFFFF


def _bf16_value(bits: int) -> float:
    return float(np.array(bits << 16, dtype=np.uint32).view(np.float32))


def round_to(value: float, dtype: Any) -> float:
    """``value`` rounded once to ``dtype`` (inf when it overflows), as a Python float.

    bfloat16 goes through float32 first; the double rounding differs from a direct rounding
    only for values within 2**-24 relative of a bfloat16 tie, which no bound here sits on.
    """
    dtype = _check(dtype)
    if dtype == "float64":
        return float(value)
    if dtype == "float32":  # C's float cast: round to nearest even; OverflowError past max
        try:
            return float(struct.unpack("<f", struct.pack("<f", value))[0])
        except OverflowError:
            return math.copysign(math.inf, value)
    if dtype == "bfloat16":
        return _bf16_value(_bf16_bits(value))
    with np.errstate(over="ignore"):
        return float(np.array(value).astype(dtype))


def next_value(value: float, dtype: Any, up: bool) -> float:
    """The neighbour of a ``dtype`` value towards +inf (``up``) or -inf."""
    dtype = _check(dtype)
    if dtype == "bfloat16":
        bits = _bf16_bits(value)
        if value == 0.0:
            return _bf16_value(0x0001 if up else 0x8001)
        positive = value > 0
        bits += 1 if positive == up else -1
        return _bf16_value(bits & 0xFFFF)
    t = np.dtype(dtype).type
    return float(np.nextafter(t(value), t(np.inf if up else -np.inf)))


def inward_bounds(low: float, high: float, dtype: Any, open_high: bool) -> tuple[float, float]:
    """The closest ``dtype`` values inside [low, high] (inside [low, high) if ``open_high``).

    Raises ``BackendError`` when no value of the dtype lies in the interval.
    """
    # Cached: a model asks for the same few bounds once per parameter.
    return _inward_bounds(float(low), float(high), _check(dtype), bool(open_high))


@functools.lru_cache(maxsize=1024)
def _inward_bounds(low: float, high: float, dtype: str, open_high: bool) -> tuple[float, float]:
    lo = round_to(low, dtype)
    hi = round_to(high, dtype)
    if lo < low:
        lo = next_value(lo, dtype, up=True)
    if hi > high or (open_high and hi >= high):
        hi = next_value(hi, dtype, up=False)
    if not lo <= hi or not (math.isfinite(lo) and math.isfinite(hi)):
        raise BackendError(
            f"{dtype} has no value in [{low!r}, {high!r}{')' if open_high else ']'}: "
            f"use a more precise dtype or a wider interval"
        )
    return lo, hi


def check_fits(plan: Plan, dtype: Any) -> None:
    """``BackendError`` unless every value of ``plan`` stays finite in ``dtype`` and, for a
    bounded plan, the dtype has a value inside the bounds. Decided from the plan alone, before
    sampling: rounding is monotonic, so |value| <= M stays finite iff M rounds to a finite
    value."""
    dtype = _check(dtype)
    if not math.prod(plan.shape):
        return
    bound = plan.max_magnitude
    if not math.isfinite(round_to(bound, dtype)):
        raise BackendError(
            f"{plan.describe()} does not fit in {dtype}: values reach {bound:.4g}, which "
            f"overflows to inf (largest {dtype}: {DTYPE_MAX[dtype]:.4g}); use a wider dtype "
            f"or a smaller scale"
        )
    if plan.bounds is not None:
        inward_bounds(*plan.bounds, dtype, plan.open_high)
