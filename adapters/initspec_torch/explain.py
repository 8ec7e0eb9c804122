"""``explain``: the report of a policy on a module, resolved but not applied."""

from __future__ import annotations

from typing import Any

from torch import nn

from initspec.resolve import Report, resolve
from initspec_torch.describe import describe


def explain(policy: Any, module: nn.Module, seed: int | None = None) -> Report:
    """What ``apply(policy, module, seed)`` would give each parameter (rule, plan, fans),
    without writing anything; raises the same ``InitSpecError`` as ``apply`` would for
    parameters the policy cannot handle."""
    return resolve(policy, [p.info for p in describe(module)], seed).report()
