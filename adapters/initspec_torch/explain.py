"""``explain``: the report of a policy on a module, resolved and checked but not applied."""

from __future__ import annotations

from torch import nn

from initspec.engine import run_policy
from initspec.pathmap import PathMap
from initspec.policy import PolicyLike
from initspec.resolve import Report
from initspec_torch.backend import TorchBackend
from initspec_torch.describe import describe


def explain(
    policy: PolicyLike,
    module: nn.Module,
    seed: int | None = None,
    *,
    strict: bool | None = None,
    path_map: PathMap | None = None,
) -> Report:
    """What ``apply(policy, module, seed)`` would give each parameter (rule, plan, fans),
    without writing anything; raises the same ``InitSpecError`` as ``apply`` would for
    parameters the policy cannot handle, dtype and writability checks included."""
    params = describe(module)
    tensors = {p.info.path: p.tensor for p in params}
    return run_policy(
        TorchBackend(),
        policy,
        [p.info for p in params],
        tensors,
        seed,
        write=False,
        strict=strict,
        path_map=path_map,
    ).report()
