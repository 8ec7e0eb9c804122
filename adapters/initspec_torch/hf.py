"""Hugging Face ``transformers`` models built from a config and initialized once, by a policy.

``AutoModel.from_config(cfg)`` (or ``Model(cfg)``) followed by ``initspec_torch.apply(policy,
model)`` initializes every weight three times: torch's ``reset_parameters`` in each layer's constructor, then HF's
``_init_weights`` (``PreTrainedModel.post_init`` -> ``init_weights`` ->
``initialize_weights``), then the policy. ``from_config`` here builds the model inside HF's
own skip-init context, ``transformers.initialization.no_init_weights()``, which replaces
the ``torch.nn.init`` functions by no-ops and ``PreTrainedModel.init_weights`` (the
``_init_weights`` pass and the weight tying it ends with) by a no-op while the model is
constructed, as ``from_pretrained`` does before loading a checkpoint. Then it ties the
weights as ``init_weights`` would have (``model.tie_weights(recompute_mapping=False)``),
applies the policy, and marks every parameter and module ``_is_hf_initialized``, the flag
HF's own loading sets on what a checkpoint filled, so that a later ``initialize_weights()``
(or a guarded ``transformers.initialization`` function) leaves the policy's values alone.

Buffers are not weights: ``no_init_weights`` leaves the constructors' own buffer code
running (rotary ``inv_freq``, ``position_ids``, BatchNorm running statistics), so the
buffers are those of a plain ``from_config``.
"""

from __future__ import annotations

import warnings
from typing import Any

from torch import nn

from initspec.backend import Rng
from initspec.errors import BackendError, InitSpecWarning
from initspec.policy import PolicyLike, load_policy
from initspec.resolve import Report, ResolutionError
from initspec_torch.explain import explain
from initspec_torch.policy_apply import apply

__all__ = ["from_config", "mark_initialized"]


def _build(cls: Any, config: Any, kwargs: dict[str, Any]) -> nn.Module:
    try:
        from transformers import PreTrainedModel
        from transformers.initialization import no_init_weights
    except ImportError as exc:
        raise BackendError(
            f"initspec_torch.hf needs transformers (pip install transformers): {exc}"
        ) from None
    with no_init_weights():
        if isinstance(cls, type) and issubclass(cls, PreTrainedModel):
            model = cls._from_config(config, **kwargs)  # type: ignore[no-untyped-call]
        elif callable(getattr(cls, "from_config", None)):  # AutoModelForCausalLM and kin
            model = cls.from_config(config, **kwargs)
        else:
            raise BackendError(
                f"cls: {cls!r} is neither a transformers PreTrainedModel subclass nor an "
                f"Auto class with from_config (e.g. GPT2LMHeadModel, AutoModelForCausalLM)"
            )
    if not isinstance(model, PreTrainedModel):
        raise BackendError(f"cls: {cls!r} built a {type(model).__name__}, not a PreTrainedModel")
    # init_weights, made a no-op above, ends by tying (lm_head to the input embeddings):
    # tie now, so the policy sees one parameter under both names and draws it once.
    model.tie_weights(recompute_mapping=False)
    return model


def _check_covers(report: Report) -> None:
    """Every parameter must be written by the policy: the skipped constructors left the
    others as ``torch.empty`` memory."""
    left = [row for row in report.rows() if row["status"] in ("skip", "unmatched")]
    if left:
        raise ResolutionError(
            [
                f"{row['path']}: {'a skip rule' if row['status'] == 'skip' else 'no rule'} "
                f"leaves it uninitialized (torch.empty memory: from_config skips torch's and "
                f"HF's initialization); give it a rule that initializes it, or extend a preset "
                f"that covers it (e.g. \"extends\": \"torch-defaults\")"
                for row in left
            ]
        )


def mark_initialized(model: nn.Module) -> None:
    """Set HF's ``_is_hf_initialized`` on every parameter and module of ``model``, as
    ``from_pretrained`` does for what a checkpoint filled: ``initialize_weights()`` then
    skips the modules, and ``transformers.initialization``'s guarded functions the tensors."""
    for param in model.parameters():
        param._is_hf_initialized = True  # type: ignore[attr-defined]
    for module in model.modules():
        module._is_hf_initialized = True  # type: ignore[assignment]


def from_config(
    cls: Any,
    config: Any,
    policy: PolicyLike,
    seed: int | None = None,
    *,
    rng: Rng = "native",
    stream: int = 1,
    strict: bool | None = None,
    **kwargs: Any,
) -> tuple[nn.Module, Report]:
    """Build ``cls`` from ``config`` with HF's initialization skipped, initialize it from
    ``policy`` once, and return ``(model, report)``.

    ``cls``: a ``PreTrainedModel`` subclass (``GPT2LMHeadModel``) or an Auto class
    (``AutoModelForCausalLM``); ``kwargs`` go to its ``from_config`` (``dtype=``,
    ``attn_implementation=``). ``policy``, ``seed``, ``rng``, ``stream``, ``strict``: as
    ``initspec_torch.apply``; the values equal ``apply(policy, cls(config),
    seed)`` on a model built the usual way, without the two initializations before it.

    Tied weights (``lm_head.weight`` and the input embeddings with
    ``tie_word_embeddings``) are tied before the policy runs, so they are drawn once and
    stay one tensor. Every parameter must be initialized by the policy (the constructors
    wrote none): a parameter left to a ``skip`` rule or to no rule raises a
    ``ResolutionError`` naming it, before anything is written. Afterwards every parameter
    and module carries ``_is_hf_initialized`` (``mark_initialized``), so HF code that
    re-runs ``initialize_weights()`` does not overwrite the policy's values.
    """
    loaded = load_policy(policy)  # an invalid policy fails before a model is built
    model = _build(cls, config, kwargs)
    with warnings.catch_warnings():  # apply below warns about the same rules, once
        warnings.simplefilter("ignore", InitSpecWarning)
        coverage = explain(loaded, model, seed, strict=strict)
    _check_covers(coverage)
    report = apply(loaded, model, seed, rng=rng, stream=stream, strict=strict)
    mark_initialized(model)
    return model, report
