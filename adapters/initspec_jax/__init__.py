"""initspec for JAX and Flax: specs as ``jax.nn.initializers``-style functions.

``initializer(spec, layout="flax")`` returns ``init(key, shape, dtype, out_sharding=None)``,
usable as Flax ``kernel_init=`` / ``bias_init=`` / ``embedding_init=`` and under ``jax.jit``.
``sample_plan(plan, key, dtype)`` draws a resolved plan (``initspec.plans``) directly.
"""

from initspec_jax.initializer import SpecInitializer, initializer
from initspec_jax.sampling import sample_plan

__all__ = ["SpecInitializer", "initializer", "sample_plan"]
