"""Argument checks shared by the initializer and the policy functions.

JAX raises ``TypeError`` / ``ValueError`` from deep inside ``jax.random`` for a bad key or
dtype; initspec raises ``BackendError`` (an ``InitSpecError``) up front, naming the problem.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from initspec.errors import BackendError
from initspec.numeric import FLOAT_DTYPES

# dtypes the initializer produces; anything else (integers, bool, complex) is refused.
SUPPORTED_DTYPES: tuple[str, ...] = FLOAT_DTYPES


def check_key(key: Any) -> jax.Array:
    """A single typed PRNG key from ``key``.

    Accepts what ``jax.random`` accepts: a typed key (``jax.random.key(seed)``, shape ()) or a
    legacy raw key (``jax.random.PRNGKey(seed)``, uint32 of the default implementation's key
    shape), concrete or traced. Legacy keys are wrapped with ``jax.random.wrap_key_data``.
    """
    dtype = getattr(key, "dtype", None)
    shape = getattr(key, "shape", None)
    if dtype is None or shape is None:
        raise BackendError(
            f"key must be a JAX PRNG key (jax.random.key(seed) or jax.random.PRNGKey(seed)), "
            f"got {type(key).__name__}"
        )
    if jnp.issubdtype(dtype, jax.dtypes.prng_key):
        if tuple(shape) != ():
            raise BackendError(
                f"key must be a single PRNG key, got a key array of shape {tuple(shape)}"
            )
        return key
    if np.dtype(dtype) == np.uint32:
        try:
            return jax.random.wrap_key_data(key)
        except (TypeError, ValueError) as exc:
            raise BackendError(
                f"key is a uint32 array of shape {tuple(shape)}, not a raw key of the default "
                f"PRNG implementation ({exc})"
            ) from None
    raise BackendError(
        f"key must be a JAX PRNG key (jax.random.key(seed) or jax.random.PRNGKey(seed)), "
        f"got an array of dtype {np.dtype(dtype).name} and shape {tuple(shape)}"
    )


def check_dtype(dtype: Any) -> np.dtype[Any]:
    """The requested parameter dtype; ``None`` means JAX's default float dtype.

    float64 without ``jax_enable_x64`` behaves as everywhere in JAX: the array comes back as
    float32 (with JAX's own warning).
    """
    if dtype is None:
        return stored_dtype(float)
    try:
        dt = np.dtype(jnp.dtype(dtype))
    except TypeError:
        raise BackendError(
            f"dtype {dtype!r} is not a dtype; allowed: {', '.join(SUPPORTED_DTYPES)}"
        ) from None
    if dt.name not in SUPPORTED_DTYPES:
        raise BackendError(
            f"dtype {dt.name} is not supported (initializers produce floating-point "
            f"parameters); allowed: {', '.join(SUPPORTED_DTYPES)}"
        )
    return dt


def stored_dtype(dtype: Any) -> np.dtype[Any]:
    """The dtype JAX gives an array of ``dtype``: float64 is float32 unless
    ``jax_enable_x64`` is on (read on each call, like JAX itself)."""
    return np.dtype(jax.dtypes.canonicalize_dtype(dtype))


def work_dtype(dtype: np.dtype[Any]) -> np.dtype[Any]:
    """The dtype the primitives compute in: float64 for a float64 target when x64 is on,
    else float32. float16 and bfloat16 are sampled in float32 and rounded once at the end
    (JAX's own bf16 normal has only ~128 distinct values; QR has no bf16/fp16 kernels).
    """
    if dtype == np.float64 and jax.config.read("jax_enable_x64"):
        return np.dtype(np.float64)
    return np.dtype(np.float32)


def check_shape(shape: Any) -> tuple[int, ...]:
    """A static shape: a sequence of non-negative Python ints (never traced values)."""
    try:
        return tuple(int(d) for d in shape)
    except jax.errors.ConcretizationTypeError:
        raise BackendError(f"shape must be static, got a traced value {shape!r}") from None
    except TypeError:
        raise BackendError(f"shape must be a static sequence of ints, got {shape!r}") from None
