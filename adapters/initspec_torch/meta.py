"""``to_empty``: a meta-device model moved to a real device with its tied parameters kept
tied, naming the buffers the caller must fill.

``torch.nn.Module.to_empty`` replaces each module's parameters one module at a time, so
a parameter two modules share (HF's ``lm_head.weight`` and ``embed_tokens.weight`` with
``tie_word_embeddings``, a hand-tied output layer) becomes two unrelated tensors, and a
policy then draws them apart under two seeds. Buffers (rotary ``inv_freq``, BatchNorm
running statistics, ``position_ids``) become uninitialized memory too, and ``apply`` does
not write buffers: a policy initializes parameters only.
"""

from __future__ import annotations

from torch import nn

from initspec.errors import BackendError

__all__ = ["to_empty"]


def _owner(module: nn.Module, name: str) -> tuple[nn.Module, str]:
    head, _, leaf = name.rpartition(".")
    return (module.get_submodule(head) if head else module), leaf


def to_empty(module: nn.Module, device: str | object) -> list[str]:
    """``module.to_empty(device=device)``, then every group of names that shared one
    parameter before shares one again (the first name's new tensor); returns the names of
    the buffers, which now hold uninitialized memory and which ``apply`` leaves alone.

    Fill those buffers before use: an HF model recomputes them with its own
    ``_init_weights`` on the modules that own them (rotary embeddings, BatchNorm; see the
    meta-device recipe); a torch module with its ``reset_running_stats()`` or its own code.
    Parameters stay uninitialized until ``initspec_torch.apply``.
    """
    groups: dict[int, list[str]] = {}
    for name, param in module.named_parameters(remove_duplicate=False):
        groups.setdefault(id(param), []).append(name)
    try:
        module.to_empty(device=device)  # type: ignore[arg-type]
    except (RuntimeError, TypeError) as exc:
        raise BackendError(f"to_empty(device={device!r}) failed: {exc}") from None
    for names in groups.values():
        first, rest = names[0], names[1:]
        owner, leaf = _owner(module, first)
        shared = owner._parameters[leaf]
        for name in rest:
            other, other_leaf = _owner(module, name)
            other._parameters[other_leaf] = shared
    return [name for name, _ in module.named_buffers()]
