"""``apply``: initialize a whole ``nn.Module`` from a policy, all or nothing.

1. describe every distinct parameter (``initspec_torch.describe``);
2. resolve the policy for all of them (``initspec.resolve``: rule, spec, plan, seed), and
   check what only torch knows (values that would overflow the parameter's dtype, intervals
   the dtype has no value in): any problem raises one ``InitSpecError`` listing every
   parameter concerned, before a single tensor is written;
3. sample each parameter on its own device from its own ``torch.Generator`` seeded with
   ``derive_seed(seed, path)``; meta tensors are reported and left as they are.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from initspec import portable as portable_ref
from initspec.errors import BackendError
from initspec.plans import TruncatedNormalPlan, UniformPlan
from initspec.resolve import Report, ResolutionError, resolve
from initspec_torch import portable
from initspec_torch.casting import check_fits, dtype_inward_bounds
from initspec_torch.describe import describe
from initspec_torch.tensor_init import write_plan


def _zero_padding_row(tensor: torch.Tensor, row: int | None) -> None:
    """As ``nn.Embedding.reset_parameters``: the padding row is zero after sampling."""
    if row is not None:
        with torch.no_grad():
            tensor[row].zero_()


def apply(
    policy: Any,
    module: nn.Module,
    seed: int | None = None,
    *,
    rng: Literal["native", "portable"] = "native",
    stream: int = 1,
    atomic: bool = True,
) -> Report:
    """Initialize ``module``'s parameters in place from ``policy``; return the report.

    ``policy``: a ``Policy``, a dict, a JSON string, a policy file or a preset name (e.g.
    ``"torch-defaults"``). ``seed``: the run's seed; ``None`` takes the policy's ``seed``,
    else 0. Each parameter's generator is seeded with ``derive_seed(seed, path)``, so adding
    a layer does not change the others, and torch's global RNG state is not touched.

    ``atomic`` (default): if anything fails while writing (an error, a KeyboardInterrupt),
    every parameter already written gets its previous values back; this holds one extra copy
    of the written parameters until ``apply`` returns. ``atomic=False`` keeps no copy (for
    models too large to hold twice; the benchmarks use it, like a hand-written init loop).

    ``rng="portable"``: every parameter from the counter-based stream ``stream``
    (docs/portable-random.md), keyed by (seed, canonical path) and indexed in the layout's
    canonical order: the same values as the Flax twin under ``initspec_jax.apply`` with the
    same policy and seed. DTensor parameters (FSDP2 ``fully_shard``, tensor parallel) compute
    only their local shard, from its global indices, and equal the unsharded values.

    Tied parameters are initialized once, under their first name; the report lists the
    others. Meta parameters are resolved and reported as ``meta`` but not written: after
    ``module.to_empty(device=...)``, ``apply`` again initializes them fully.

    Raises an ``InitSpecError`` (a ``PolicyError`` for an invalid policy, a
    ``ResolutionError`` listing every parameter no rule can handle, with its shape and rule)
    and leaves every parameter untouched.
    """
    if rng not in ("native", "portable"):
        raise BackendError(f"rng {rng!r} is not known; allowed: native, portable")
    if rng == "portable":
        portable_ref.check_version(stream)
    params = describe(module)
    resolution = resolve(policy, [p.info for p in params], seed)
    tensors = {p.info.path: p.tensor for p in params}

    problems: list[str] = []
    for rp in resolution.to_sample():
        assert rp.plan is not None and rp.rule_index is not None and rp.rule is not None
        tensor = tensors[rp.info.path]
        try:
            check_fits(rp.plan, tensor.dtype)
            if isinstance(rp.plan, (UniformPlan, TruncatedNormalPlan)) and tensor.numel():
                dtype_inward_bounds(rp.plan, tensor.dtype)
        except BackendError as exc:
            problems.append(
                f"{rp.info.path} (shape {rp.info.shape}, {rp.info.kind}/{rp.info.role}): "
                f"rule {rp.rule.label(rp.rule_index)}: {exc}"
            )
    if problems:
        raise ResolutionError(problems)

    # atomic: keep each parameter's previous values until every write has succeeded, and put
    # them back if one fails (an exception, a KeyboardInterrupt): a peak of one extra copy
    # of the written parameters, on their devices. atomic=False writes in place with no copy
    # (for models too large to hold twice); a failure then leaves earlier parameters written.
    backups: list[tuple[torch.Tensor, torch.Tensor]] = []
    try:
        for rp in resolution.to_sample():
            assert rp.plan is not None
            tensor = tensors[rp.info.path]
            if tensor.is_meta:
                rp.status = "meta"
                continue
            if atomic:
                with torch.no_grad():
                    backups.append((tensor, tensor.detach().clone()))
            if rng == "portable":
                key = portable_ref.param_key(resolution.seed, rp.info.path)
                perm = portable_ref.layout_perm(rp.plan.shape, rp.info.layout)
                portable.write_(tensor, rp.plan, key, perm)
                _zero_padding_row(tensor, rp.zero_row)
                continue
            generator = torch.Generator(device=tensor.device)
            generator.manual_seed(rp.seed)
            write_plan(tensor, rp.plan, generator)
            _zero_padding_row(tensor, rp.zero_row)
    except BaseException:
        with torch.no_grad():
            for tensor, old in reversed(backups):
                tensor.copy_(old)
        raise
    return resolution.report()
