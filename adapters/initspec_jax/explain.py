"""``explain``: the report of a policy on a Flax model, resolved and checked, not applied."""

from __future__ import annotations

from typing import Any

from initspec.errors import require
from initspec.pathmap import PathMap
from initspec.policy import PolicyLike
from initspec.resolve import Report
from initspec_jax.policy_apply import _Backend, _run
from initspec_jax.traverse import describe_linen, describe_nnx


def explain(
    policy: PolicyLike,
    model: Any,
    seed: int | None = None,
    *,
    strict: bool | None = None,
    path_map: PathMap | None = None,
) -> Report:
    """What ``apply`` / ``apply_nnx`` would give each parameter, without sampling anything;
    raises the same ``InitSpecError`` as they would (dtype checks included).

    ``model``: an ``nnx.Module``; a ``(linen_module, params)`` pair; or a linen parameter
    tree alone (kinds then come from the parameter names). ``path_map`` as in ``apply``.
    """
    nnx = require("flax.nnx", "flax", "initspec_jax.explain")

    if isinstance(model, nnx.Module):
        params = describe_nnx(model)
    elif isinstance(model, tuple) and len(model) == 2:
        module, tree = model
        params = describe_linen(tree, module)
    else:
        params = describe_linen(model)
    return _run(
        policy, params, seed, _Backend(), "native", 1, write=False, strict=strict, path_map=path_map
    ).report()
