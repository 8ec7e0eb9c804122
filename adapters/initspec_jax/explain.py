"""``explain``: the report of a policy on a Flax model, resolved but not applied."""

from __future__ import annotations

from typing import Any

from initspec.resolve import Report
from initspec_jax.policy_apply import resolve_params
from initspec_jax.traverse import describe_linen, describe_nnx


def explain(policy: Any, model: Any, seed: int | None = None) -> Report:
    """What ``apply`` / ``apply_nnx`` would give each parameter, without sampling anything.

    ``model``: an ``nnx.Module``; a ``(linen_module, params)`` pair; or a linen parameter
    tree alone (kinds then come from the parameter names).
    """
    from flax import nnx

    if isinstance(model, nnx.Module):
        params = describe_nnx(model)
    elif isinstance(model, tuple) and len(model) == 2:
        module, tree = model
        params = describe_linen(tree, module)
    else:
        params = describe_linen(model)
    return resolve_params(policy, params, seed).report()
