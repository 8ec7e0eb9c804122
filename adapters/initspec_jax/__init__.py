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

The policy functions import Flax on first use; the rest needs JAX only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from initspec_jax.initializer import SpecInitializer, initializer
from initspec_jax.sampling import sample_plan

if TYPE_CHECKING:
    from initspec_jax.describe import register_module
    from initspec_jax.explain import explain
    from initspec_jax.policy_apply import apply, apply_nnx, resolve_params
    from initspec_jax.traverse import describe_linen, describe_nnx

__all__ = [
    "SpecInitializer",
    "apply",
    "apply_nnx",
    "describe_linen",
    "describe_nnx",
    "explain",
    "initializer",
    "register_module",
    "resolve_params",
    "sample_plan",
]

_LAZY = {
    "apply": "policy_apply",
    "apply_nnx": "policy_apply",
    "resolve_params": "policy_apply",
    "describe_linen": "traverse",
    "describe_nnx": "traverse",
    "explain": "explain",
    "register_module": "describe",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"initspec_jax.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'initspec_jax' has no attribute {name!r}")
