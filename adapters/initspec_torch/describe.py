"""Describe an ``nn.Module``'s parameters in the neutral terms of initspec policies.

For each parameter: its canonical dotted path (``named_parameters``), the owning module's
kind (from a small vocabulary) and type names, its role, the layout of its axes, and the
context a spec may need (the sibling weight's fans for a bias, an RNN's hidden size).

==========================================  ==============  ============================
owning module                               kind            roles
==========================================  ==============  ============================
Linear (and subclasses)                     linear          weight: kernel, bias: bias
Conv1d/2d/3d                                conv            weight: kernel, bias: bias
ConvTranspose1d/2d/3d                       conv_transpose  weight: kernel (layout
                                                            ``torch_transposed``), bias
Embedding, EmbeddingBag                     embedding       weight: embedding (layout
                                                            ``embedding``)
LayerNorm, RMSNorm, BatchNorm*, GroupNorm,  norm            weight: scale, bias: bias
InstanceNorm*, any class named ``*Norm``
MultiheadAttention                          attention       in_proj_weight and
                                                            q/k/v_proj_weight: kernel;
                                                            in_proj_bias, bias_k, bias_v:
                                                            bias (out_proj is a Linear)
RNN, LSTM, GRU and their cells              rnn             weight_*: kernel, bias_*: bias
anything else                               other           bias: bias; weight with >= 2
                                                            dims: kernel; else other
==========================================  ==============  ============================

A parameter reachable under several names (tied weights) is described once, under the
first name ``named_parameters`` gives, with the other names in ``shared_with``.
"""

from __future__ import annotations

import functools
from collections.abc import Hashable
from dataclasses import dataclass
from typing import cast

import torch
from torch import nn

from initspec.errors import BackendError, InitSpecError
from initspec.layout import fans
from initspec.resolve import ParamInfo, ResolutionError
from initspec.specs import PlanContext
from initspec_torch.casting import dtype_name

# Checked in order: ConvTranspose derives from _ConvNd, so it comes before conv.
_KINDS: tuple[tuple[str, tuple[type[nn.Module], ...]], ...] = (
    ("conv_transpose", (nn.modules.conv._ConvTransposeNd,)),
    ("conv", (nn.modules.conv._ConvNd,)),
    ("linear", (nn.Linear,)),
    ("embedding", (nn.Embedding, nn.EmbeddingBag)),
    (
        "norm",
        (nn.LayerNorm, nn.RMSNorm, nn.GroupNorm, nn.modules.batchnorm._NormBase),
    ),
    ("attention", (nn.MultiheadAttention,)),
    ("rnn", (nn.RNNBase, nn.RNNCellBase)),
)


@dataclass(frozen=True)
class TorchParam:
    """A parameter to initialize: its neutral description and the tensor itself."""

    info: ParamInfo
    tensor: torch.Tensor


def module_kind(module: nn.Module) -> str:
    """The neutral kind of ``module`` (see the table in the module docstring)."""
    return _kind_of(cast(Hashable, type(module)))  # a class is hashable; its stub says otherwise


def module_types(module: nn.Module) -> tuple[str, ...]:
    """The module's class name, then its base classes' (so rules can match a base class)."""
    return _types_of(cast(Hashable, type(module)))


# Both depend on the class alone; a model repeats a few classes many times.
@functools.lru_cache(maxsize=1024)
def _kind_of(cls: type) -> str:
    for kind, classes in _KINDS:
        if issubclass(cls, classes):
            return kind
    # User-defined norms (LlamaRMSNorm, T5LayerNorm, ...) hold a 1-D weight that is a scale.
    if cls.__name__.endswith("Norm"):
        return "norm"
    return "other"


@functools.lru_cache(maxsize=1024)
def _types_of(cls: type) -> tuple[str, ...]:
    return tuple(c.__name__ for c in cls.__mro__ if c is not object)


def param_role(kind: str, name: str, ndim: int) -> str:
    """The role of the parameter ``name`` (its last path component) in a module of ``kind``."""
    is_bias = name == "bias" or name.startswith("bias_") or name.endswith("_bias")
    if kind in ("linear", "conv", "conv_transpose", "attention", "rnn"):
        if is_bias:
            return "bias"
        if name == "weight" or name.startswith("weight_") or name.endswith("_weight"):
            return "kernel"
        return "other"
    if kind == "embedding":
        return "embedding" if name == "weight" else "other"
    if kind == "norm":
        return "scale" if name == "weight" else "bias" if is_bias else "other"
    if is_bias:
        return "bias"
    return "kernel" if name == "weight" and ndim >= 2 else "other"


def param_layout(kind: str, role: str) -> str:
    """``torch_transposed`` for ConvTranspose weights, ``embedding`` for embedding tables,
    ``torch`` (out, in, *k) for everything else."""
    if kind == "conv_transpose" and role == "kernel":
        return "torch_transposed"
    if kind == "embedding" and role == "embedding":
        return "embedding"
    return "torch"


def sibling_weight_name(name: str) -> str | None:
    """The weight a bias belongs to: ``bias`` -> ``weight``, ``in_proj_bias`` ->
    ``in_proj_weight``, ``bias_hh_l0`` -> ``weight_hh_l0``; None for other names."""
    if name == "bias":
        return "weight"
    if name.endswith("_bias"):
        return name[: -len("bias")] + "weight"
    if name.startswith("bias_"):
        return "weight" + name[len("bias") :]
    return None


def param_context(module: nn.Module, kind: str, name: str) -> PlanContext:
    """``weight_fans``: fans of the sibling weight, in its layout (for ``torch_linear_bias``);
    ``hidden_size``: the RNN's hidden size (for ``torch_rnn``)."""
    weight_fans = None
    sibling = sibling_weight_name(name)
    weight = getattr(module, sibling, None) if sibling else None
    if isinstance(weight, torch.Tensor) and weight.dim() >= 2 and sibling is not None:
        layout = param_layout(kind, param_role(kind, sibling, weight.dim()))
        try:
            weight_fans = fans(tuple(weight.shape), layout)
        except InitSpecError:
            weight_fans = None
    hidden = getattr(module, "hidden_size", None) if kind == "rnn" else None
    padding = getattr(module, "padding_idx", None) if isinstance(module, nn.Embedding) else None
    return PlanContext(
        weight_fans=weight_fans,
        hidden_size=hidden if isinstance(hidden, int) else None,
        padding_idx=padding if isinstance(padding, int) else None,
    )


def describe(module: nn.Module) -> list[TorchParam]:
    """Every distinct parameter of ``module``, in ``named_parameters`` order, described."""
    if not isinstance(module, nn.Module):
        raise BackendError(
            f"expected a torch.nn.Module, got {type(module).__name__}; to initialize a single "
            f"tensor use initspec_torch.init_"
        )
    owners = dict(module.named_modules(remove_duplicate=False))
    names: dict[int, list[str]] = {}
    first: dict[int, tuple[str, torch.Tensor]] = {}
    for path, param in module.named_parameters(remove_duplicate=False):
        key = id(param)
        names.setdefault(key, []).append(path)
        first.setdefault(key, (path, param))
    from torch.nn.parameter import UninitializedParameter

    lazy = [path for path, t in first.values() if isinstance(t, UninitializedParameter)]
    if lazy:
        raise ResolutionError(
            [
                f"{path}: an uninitialized (lazy) parameter has no shape yet; run a forward "
                f"pass with a dummy batch to materialize it first"
                for path in lazy
            ]
        )
    out: list[TorchParam] = []
    for key, (path, tensor) in first.items():
        owner_path, _, name = path.rpartition(".")
        owner = owners[owner_path]
        kind = module_kind(owner)
        role = param_role(kind, name, tensor.dim())
        info = ParamInfo(
            path=path,
            shape=tuple(tensor.shape),
            kind=kind,
            role=role,
            layout=param_layout(kind, role),
            dtype=dtype_name(tensor.dtype),
            framework_path=path,
            module_types=module_types(owner),
            device=str(tensor.device),
            context=param_context(owner, kind, name),
            shared_with=tuple(names[key][1:]),
        )
        out.append(TorchParam(info, tensor))
    return out
