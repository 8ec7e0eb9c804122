"""initspec for JAX and Flax.

- ``initializer(spec, layout="flax")``: ``init(key, shape, dtype, out_sharding=None)``, a
  ``jax.nn.initializers``-style function usable as Flax ``kernel_init=`` / ``bias_init=`` /
  ``embedding_init=`` and under ``jax.jit``; ``rng="portable"`` (with ``seed`` and ``path``)
  draws the counter-based stream shared with NumPy and torch (``initspec_jax.portable``),
  as ``apply`` and ``apply_nnx`` do with ``rng="portable"``;
- ``apply(policy, params, seed, model)``: a policy applied to a Flax linen parameter tree,
  functionally, returning ``(new_params, report)``;
- ``apply_nnx(policy, module, seed)``: a policy applied to an ``nnx.Module`` in place,
  returning the report;
- ``describe_linen`` / ``describe_nnx`` and ``resolve_params``: the parameters as a policy
  sees them, and the resolution (with its report) without sampling anything;
- ``sample_plan(plan, key, dtype)``: one resolved plan (``initspec.plans``) drawn with JAX.

Flax is imported on first use of a policy function; the rest needs JAX only.
"""

from __future__ import annotations

from initspec_jax import _framework  # noqa: F401  (first: names the extra to install)
from initspec_jax.check import check
from initspec_jax.describe import register_module
from initspec_jax.explain import explain
from initspec_jax.fingerprints import fingerprint
from initspec_jax.initializer import SpecInitializer, initializer
from initspec_jax.policy_apply import apply, apply_nnx, resolve_params
from initspec_jax.sampling import sample_plan
from initspec_jax.traverse import describe_linen, describe_nnx

__all__ = [
    "SpecInitializer",
    "apply",
    "apply_nnx",
    "check",
    "describe_linen",
    "describe_nnx",
    "explain",
    "fingerprint",
    "initializer",
    "register_module",
    "resolve_params",
    "sample_plan",
]
