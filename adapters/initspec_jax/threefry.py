"""Threefry-2x32-20 written out, and ``jax.random``'s bits, uniform and normal on it, bit for bit.

On CPU, JAX lowers its ``threefry2x32`` primitive as a rolled loop (``lax.fori_loop`` over
five steps of four rounds, ``jax._src.random.threefry2x32._threefry2x32_cpu_lowering_rule``,
chosen for short compile times). Each step reads and writes the two full uint32 arrays, so
the hash runs at memory speed: 459 ms for the 38.6M words of a GPT-2 embedding on two cores.
Written out as its 20 rounds of ``jnp`` operations (the lowering JAX itself uses on other
platforms), XLA fuses the counters, the hash and the float transform into one loop: 75 ms
for the same bits.

The functions here compute what ``jax.random.bits`` / ``uniform`` / ``normal`` compute for a
threefry2x32 key with ``jax_threefry_partitionable`` (JAX's default): element ``i`` (its
row-major index) is ``threefry2x32(key, (i >> 32, i & 0xFFFFFFFF))``, 32-bit values are
``b0 ^ b1``, 64-bit ones ``b0 << 32 | b1``
(``jax._src.random.threefry2x32._threefry_random_bits_partitionable``); the floats are
made from them as ``jax._src.random.core._uniform`` and ``_normal_real`` make them.
``tests/test_jax_threefry.py`` compares them with ``jax.random`` itself. Where that
definition does not hold they call ``jax.random`` (the same values by definition): a key of
another implementation (rbg), ``jax_threefry_partitionable`` turned off, or 2**32 elements
or more (the counters here are 32-bit).

Counters are a sum of per-axis iotas, as JAX's ``iota_2x32_shape`` lowers them, which the
SPMD partitioner splits: under a sharding each device computes its own shard only.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

_U32 = np.uint32
_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = 0x1BD11BDA  # Threefry's key schedule constant (Random123)


def _rotl(x: jax.Array, r: int) -> jax.Array:
    return lax.shift_left(x, _U32(r)) | lax.shift_right_logical(x, _U32(32 - r))


def threefry2x32(
    k0: jax.Array, k1: jax.Array, x0: jax.Array, x1: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Threefry-2x32 with 20 rounds (Salmon et al. 2011, Random123): the words of
    ``jax.extend.random.threefry2x32_p`` for key ``(k0, k1)`` and counters ``(x0, x1)``,
    as JAX's unrolled lowering computes them (uint32 arithmetic, exact)."""
    ks = (k0, k1, k0 ^ k1 ^ _U32(_PARITY))
    x0, x1 = x0 + ks[0], x1 + ks[1]
    for step in range(5):
        for r in _ROTATIONS[step % 2]:
            x0 = x0 + x1
            x1 = x0 ^ _rotl(x1, r)
        x0 = x0 + ks[(step + 1) % 3]
        x1 = x1 + ks[(step + 2) % 3] + _U32(step + 1)
    return x0, x1


def _row_major_index(shape: tuple[int, ...]) -> jax.Array:
    """Each element's row-major index, uint32 (the shape has fewer than 2**32 elements)."""
    index = jnp.zeros(shape, _U32)
    stride = 1
    for axis in reversed(range(len(shape))):
        if shape[axis] > 1:
            index = index + lax.broadcasted_iota(_U32, shape, axis) * _U32(stride)
        stride *= shape[axis]
    return index


def key_words(key: Any) -> tuple[jax.Array, jax.Array] | None:
    """The two uint32 words of a threefry2x32 key (typed, or raw ``uint32[2]``); None when
    the words here would not be ``jax.random``'s: another implementation, or
    ``jax_threefry_partitionable`` off."""
    # the flag's current value, context managers included (False before JAX 0.5's default)
    if not getattr(jax.config, "jax_threefry_partitionable", False):
        return None
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape != () or str(jax.random.key_impl(key)) != "threefry2x32":
            return None
        key = jax.random.key_data(key)
    elif tuple(key.shape) != (2,) or key.dtype != jnp.uint32:
        return None
    return key[0], key[1]


def typed(key: Any) -> jax.Array:
    """A typed key from ``key``: as given, or wrapped from the two raw words of a
    threefry2x32 key (uint32[2]; wrapping inside the program saves a dispatch per
    parameter). Other raw keys are left to ``jax.random`` (a legacy key of the default
    implementation)."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) or tuple(key.shape) != (2,):
        return key
    return jax.random.wrap_key_data(key, impl="threefry2x32")


def bits(key: Any, shape: tuple[int, ...], width: int = 32) -> jax.Array:
    """``jax.random.bits(key, shape, uint32 or uint64)`` for ``width`` 32 or 64 (64 needs
    x64, as in JAX)."""
    dtype = jnp.uint32 if width == 32 else jnp.uint64
    words = key_words(key)
    # without x64 a uint64 is a uint32 in JAX: jax.random says so (and gives 32 bits)
    narrowed = jax.dtypes.canonicalize_dtype(dtype) != np.dtype(dtype)
    if words is None or narrowed or math.prod(shape) >= 2**32:
        return jax.random.bits(typed(key), shape, dtype)
    if math.prod(shape) == 0:
        return jnp.zeros(shape, dtype)
    b0, b1 = threefry2x32(*words, jnp.zeros((), _U32), _row_major_index(shape))
    if width == 32:
        return b0 ^ b1
    return lax.shift_left(b0.astype(dtype), dtype(32)) | b1.astype(dtype)


def uniform(
    key: Any, shape: tuple[int, ...], dtype: Any, minval: Any = 0.0, maxval: Any = 1.0
) -> jax.Array:
    """``jax.random.uniform`` in float32 or float64: the top ``nmant`` bits as the
    significand of a float in [1, 2), minus 1, scaled to [minval, maxval), at least
    ``minval``."""
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        return jax.random.uniform(typed(key), shape, dtype, minval, maxval)
    finfo = np.finfo(dtype)
    udtype = jnp.uint32 if dtype == np.float32 else jnp.uint64
    raw = bits(key, shape, finfo.bits)
    one = jnp.asarray(np.array(1.0, dtype).view(udtype), udtype)
    floats = lax.bitcast_convert_type(
        lax.shift_right_logical(raw, udtype(finfo.bits - finfo.nmant)) | one, dtype
    ) - jnp.asarray(1.0, dtype)
    lo = lax.convert_element_type(minval, dtype)
    hi = lax.convert_element_type(maxval, dtype)
    return lax.max(lo, floats * (hi - lo) + lo)


def normal(key: Any, shape: tuple[int, ...], dtype: Any) -> jax.Array:
    """``jax.random.normal`` in float32 or float64: ``sqrt(2) erf_inv(u)`` with
    u ~ U(nextafter(-1, 0), 1)."""
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        return jax.random.normal(typed(key), shape, dtype)
    lo = np.nextafter(np.array(-1.0, dtype), np.array(0.0, dtype), dtype=dtype)
    u = uniform(key, shape, dtype, lo, np.array(1.0, dtype))
    return lax.mul(np.array(np.sqrt(2), dtype), lax.erf_inv(u))
