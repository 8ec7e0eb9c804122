"""Stored tensors as ``initspec.check`` reads them: NumPy values, loaded one at a time.

A ``StoredTensor`` is a shape, a dtype name and a ``load()`` returning the values as a
NumPy array: float16, float32 or float64, or, for bfloat16 (which NumPy lacks), the raw
16-bit patterns as uint16. Checkpoint readers and the adapters build them lazily, so a
check holds one tensor at a time. ``float64_chunks`` widens the values piece by piece
(bfloat16 bits shifted into float32's upper half, exactly), so no float64 copy of a whole
tensor is ever made.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from initspec.errors import BackendError
from initspec.numeric import FLOAT_DTYPES

CHUNK = 1 << 18  # elements widened to float64 at a time: 2 MB, within the caches

# Significand digits (the implicit bit included) and the smallest subnormal of each dtype.
DIGITS = {"float16": 11, "bfloat16": 8, "float32": 24, "float64": 53}
SMALLEST_SUBNORMAL = {
    "float16": 2.0**-24,
    "bfloat16": 2.0**-133,
    "float32": 2.0**-149,
    "float64": 2.0**-1074,
}


@dataclass(frozen=True)
class StoredTensor:
    """A tensor to check: ``load()`` gives its values (see the module docstring)."""

    shape: tuple[int, ...]
    dtype: str
    load: Callable[[], np.ndarray]

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def _dtype_name(dtype: Any) -> str:
    name = str(np.dtype(dtype).name)
    return name


def from_array(value: Any) -> StoredTensor:
    """A NumPy array (an ``ml_dtypes`` bfloat16 one too: its bits are viewed as uint16)."""
    arr = np.asarray(value)
    name = _dtype_name(arr.dtype)
    if name == "bfloat16":
        bits = arr.view(np.uint16)
        return StoredTensor(tuple(arr.shape), "bfloat16", lambda: bits)
    return StoredTensor(tuple(arr.shape), name, lambda: arr)


def as_stored(value: Any) -> StoredTensor:
    if isinstance(value, StoredTensor):
        return value
    if hasattr(value, "__array__") or isinstance(value, (list, tuple, float, int)):
        return from_array(value)
    raise BackendError(f"expected a NumPy array or a StoredTensor, got {type(value).__name__}")


def bf16_to_float32(bits: np.ndarray) -> np.ndarray:
    """bfloat16 patterns (uint16) as the float32 values they are (exact)."""
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def float64(values: np.ndarray, dtype: str) -> np.ndarray:
    """``values`` (a stored array, see the module) as float64."""
    if dtype == "bfloat16":
        return bf16_to_float32(values).astype(np.float64)
    return np.asarray(values, dtype=np.float64)


def float64_chunks(flat: np.ndarray, dtype: str) -> Iterator[np.ndarray]:
    """The flat stored values as float64, ``CHUNK`` elements at a time."""
    for start in range(0, flat.size, CHUNK):
        yield float64(flat[start : start + CHUNK], dtype)


def value_chunks(flat: np.ndarray, dtype: str) -> Iterator[np.ndarray]:
    """The flat stored values as NumPy floats (bfloat16 widened to float32, exactly; the
    others as stored, views), ``CHUNK`` elements at a time."""
    for start in range(0, flat.size, CHUNK):
        part = flat[start : start + CHUNK]
        yield bf16_to_float32(part) if dtype == "bfloat16" else part


def check_float(dtype: str, where: str) -> None:
    if dtype not in FLOAT_DTYPES:
        raise BackendError(
            f"{where}: dtype {dtype} is not a float dtype initspec can check "
            f"({', '.join(FLOAT_DTYPES)})"
        )


def rounding_cell(x: np.ndarray, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """(low, high): the interval of real values that round to each ``x`` (values of
    ``dtype``, as float64) under round-to-nearest-even, ties aside.

    The spacing above |x| = m 2^e (m in [0.5, 1)) is 2^(e - p), p the significand digits;
    below a power of two it halves; subnormals have the constant spacing of the smallest
    one. float64 values are their own cells (float64 cannot hold half its own spacing).
    """
    x = np.asarray(x, dtype=np.float64)
    if dtype == "float64":
        return x, x
    p, tiny = DIGITS[dtype], SMALLEST_SUBNORMAL[dtype]
    a = np.abs(x)
    m, e = np.frexp(a)
    out = np.maximum(np.ldexp(1.0, e - p), tiny)  # spacing towards larger magnitude
    inward = np.where(m == 0.5, out / 2, out)  # towards smaller magnitude
    inward = np.maximum(inward, tiny)
    zero = a == 0
    out = np.where(zero, tiny, out)
    inward = np.where(zero, tiny, inward)
    low = np.where(x > 0, x - inward / 2, x - out / 2)
    high = np.where(x > 0, x + out / 2, x + inward / 2)
    low = np.where(zero, -tiny / 2, low)
    return low, high


@functools.lru_cache(maxsize=2)
def all_values(dtype: str) -> np.ndarray:
    """Every finite value of a 16-bit dtype, ascending, zero once (float64)."""
    bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    vals = bf16_to_float32(bits) if dtype == "bfloat16" else bits.view(np.float16)
    with np.errstate(invalid="ignore"):  # the NaN patterns, dropped below
        v = vals.astype(np.float64)
    return np.unique(v[np.isfinite(v)])
