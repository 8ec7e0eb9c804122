"""initspec for PyTorch: materialize initspec specs on torch tensors.

``init_(tensor, spec, ...)`` fills one tensor in place (any device, float16 / bfloat16 /
float32 / float64; ``rng="portable"`` for the counter-based stream shared with NumPy and
JAX, ``init_shard_`` for one shard of it); ``apply(policy, module, seed)`` initializes a whole ``nn.Module`` from a
policy, all or nothing, and returns a report; ``sample_plan`` draws a resolved plan. The adapter implements only the
plan primitives; everything about what a spec means lives in the ``initspec`` core.
"""

from initspec_torch.casting import SUPPORTED_DTYPES, cast_once, work_dtype
from initspec_torch.describe import TorchParam, describe
from initspec_torch.explain import explain
from initspec_torch.policy_apply import apply
from initspec_torch.sampler import sample_plan, standard_truncated_normal
from initspec_torch.tensor_init import init_, init_shard_, make_generator, plan_for, write_plan

__all__ = [
    "SUPPORTED_DTYPES",
    "TorchParam",
    "apply",
    "describe",
    "explain",
    "cast_once",
    "init_",
    "init_shard_",
    "make_generator",
    "plan_for",
    "sample_plan",
    "standard_truncated_normal",
    "work_dtype",
    "write_plan",
]
