"""initspec for PyTorch: materialize initspec specs on torch tensors.

``init_(tensor, spec, ...)`` fills one tensor in place (any device, float16 / bfloat16 /
float32 / float64; ``rng="portable"`` for the counter-based stream shared with NumPy and
JAX, ``init_shard_`` for one shard of it); ``apply(policy, module, seed)`` initializes a
whole ``nn.Module`` from a policy, all or nothing, and returns a report; ``explain`` gives
that report without writing. Everything about what a spec means, and the orchestration,
lives in the ``initspec`` core; this adapter describes modules and implements the plan
primitives (``initspec_torch.sampler``, ``initspec_torch.portable``).
"""

from initspec_torch.capture_build import capture, capture_report
from initspec_torch.describe import describe, register_module
from initspec_torch.explain import explain
from initspec_torch.policy_apply import apply
from initspec_torch.tensor_init import init_, init_shard_

__all__ = [
    "apply",
    "capture",
    "capture_report",
    "describe",
    "explain",
    "init_",
    "init_shard_",
    "register_module",
]
