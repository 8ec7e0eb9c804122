"""``check``: a Flax model's parameters tested against a policy's plans.

The statistics and the report are the core's (``initspec.check``); this module describes
the parameters (``describe_nnx`` / ``describe_linen``) and hands each over as NumPy
(a bfloat16 array as its bit patterns). Sharded arrays are gathered to the host one at a
time, when each is checked.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from initspec.checker import CheckReport
from initspec.checker import check as _check
from initspec.policy import PolicyLike
from initspec.stored import StoredTensor, from_array
from initspec_jax.traverse import FlaxParam, describe_linen, describe_nnx


def _stored(param: FlaxParam) -> StoredTensor:
    value = param.value
    shape = tuple(int(d) for d in value.shape)
    dtype = str(np.dtype(value.dtype).name)
    return StoredTensor(shape, dtype, lambda: from_array(np.asarray(value)).load())


def check(
    params_or_module: Any,
    policy: PolicyLike,
    *,
    model: Any = None,
    alpha: float = 1e-4,
    strict: bool = False,
) -> CheckReport:
    """``initspec.check`` of an ``nnx.Module``'s parameters, or of a linen parameter tree
    (``model``: the linen module, for the kinds and layouts of its parameters; without it
    they come from the names, as ``describe_linen`` says)."""
    from flax import nnx

    if isinstance(params_or_module, nnx.Module):
        described = describe_nnx(params_or_module)
    else:
        described = describe_linen(params_or_module, model)
    tensors = {p.info.framework_path or p.info.path: _stored(p) for p in described}
    return _check(tensors, policy, alpha=alpha, params=[p.info for p in described], strict=strict)
