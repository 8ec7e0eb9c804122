"""``check``: a module's (or a state dict's) tensors tested against a policy's plans.

The statistics and the report are the core's (``initspec.check``); this module describes
the parameters (``describe``: kinds, roles, HF ``Conv1D``'s layout, tied names) and hands
the tensors over one at a time as NumPy (bfloat16 as its bit patterns, no copy through
float32). A state dict (a mapping of names to tensors) is described from its names and
shapes, as a checkpoint file is.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from initspec.checker import CheckpointLayout, CheckReport
from initspec.checker import check as _check
from initspec.checkpoint import torch_stored
from initspec.errors import BackendError
from initspec.policy import PolicyLike
from initspec.stored import StoredTensor
from initspec_torch.describe import describe


def _stored(path: str, tensor: torch.Tensor) -> StoredTensor:
    if tensor.device.type == "meta":
        raise BackendError(f"parameter {path!r} is on the meta device: it holds no values to check")
    full = getattr(tensor, "full_tensor", None)  # a DTensor: gathered when it is checked
    if callable(full):
        shape = tuple(int(d) for d in tensor.shape)
        dtype = str(tensor.dtype).removeprefix("torch.")
        return StoredTensor(shape, dtype, lambda: torch_stored(full()).load())
    return torch_stored(tensor)


def check(
    module_or_state_dict: nn.Module | Mapping[str, torch.Tensor],
    policy: PolicyLike,
    *,
    alpha: float = 1e-4,
    strict: bool = False,
    layout: CheckpointLayout = "torch",
) -> CheckReport:
    """``initspec.check`` of a module's parameters (described by ``describe``) or of a
    state dict's tensors (described from names and shapes in ``layout``)."""
    if isinstance(module_or_state_dict, nn.Module):
        params = describe(module_or_state_dict)
        tensors = {
            p.info.framework_path or p.info.path: _stored(p.info.path, p.tensor) for p in params
        }
        return _check(tensors, policy, alpha=alpha, params=[p.info for p in params], strict=strict)
    if isinstance(module_or_state_dict, Mapping):
        tensors = {}
        for key, value in module_or_state_dict.items():
            if not isinstance(value, torch.Tensor):
                raise BackendError(f"state dict entry {key!r} is a {type(value).__name__}, not a tensor")
            tensors[str(key)] = _stored(str(key), value)
        return _check(tensors, policy, alpha=alpha, strict=strict, layout=layout)
    raise BackendError(
        f"expected an nn.Module or a state dict, got {type(module_or_state_dict).__name__}"
    )
