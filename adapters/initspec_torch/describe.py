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

Beyond ``torch.nn``:

- HF ``transformers.pytorch_utils.Conv1D`` (GPT-2, GPT-1, ImageGPT, ...) is a ``linear``
  whose weight is stored (in, out): layout ``torch_transposed``, so its fans and its
  portable stream are those of the (out, in) Linear and of the Flax ``Dense`` twin.
  Other classes are described with ``register_module`` (or a policy's ``modules``).
- Wrappers do not change canonical paths: the attribute through which ``torch.compile``
  (``_orig_mod``), ``DataParallel`` / DDP (``module``), FSDP1 (``_fsdp_wrapped_module``)
  and activation checkpointing (``_checkpoint_wrapped_module``) hold the model is left out,
  so policies and per-path seeds are those of the bare model; ``framework_path`` keeps the
  real name.
- ``torch.nn.utils.parametrize``: ``fc.parametrizations.weight.original`` is described as
  ``fc.weight``, by the owning module's kind and role (the original is what is written;
  a parametrization such as ``orthogonal`` then maps it). ``weight_norm``'s direction
  ``original1`` (v) is described as ``fc.weight``; its magnitude ``original0`` (g) is not
  drawn but set to the norm of v after v is written, as ``weight_norm`` does when it is
  applied, so the effective weight is v, distributed as the policy says.
- Two distinct parameters sharing memory (``nn.Parameter(a.data[:2])``) are refused: one
  write would change the other.

A parameter reachable under several names (tied weights) is described once, under the
first name ``named_parameters`` gives, with the other names in ``shared_with``.
"""

from __future__ import annotations

import functools
from collections.abc import Hashable
from dataclasses import dataclass, field, replace
from typing import Any, cast

import torch
from torch import nn
from torch.nn.utils import parametrize

from initspec.backend import module_registration
from initspec.errors import BackendError, InitSpecError
from initspec.layout import LayoutLike, fans
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
    """A parameter to initialize: its neutral description and the tensor itself;
    ``magnitude``: weight_norm's g and the dim its norm keeps, set from this tensor (v)."""

    info: ParamInfo
    tensor: torch.Tensor
    magnitude: tuple[torch.Tensor, int] | None = None


# Classes outside torch.nn with a known description: (kind, layout of their weight), by the
# qualified name of a class in the module's MRO.
_BUILTIN: dict[str, tuple[str, LayoutLike | None]] = {
    "transformers.pytorch_utils.Conv1D": ("linear", "torch_transposed"),
}
# register_module: by class name (of the class or one of its bases).
_REGISTERED: dict[str, tuple[str, LayoutLike | None]] = {}


def register_module(cls: type | str, *, kind: str, layout: LayoutLike | None = None) -> None:
    """Describe modules of class ``cls`` (a class, or a class name matched against every
    class of a module's MRO) as ``kind``, their weight stored in ``layout`` (default: the
    kind's, e.g. ``torch`` (out, in, *k) for linear and conv). Replaces an earlier
    registration of the same name; ``BackendError`` for an unknown kind or layout."""
    name, description = module_registration(cls, kind, layout)
    _REGISTERED[name] = description
    _description.cache_clear()


def module_kind(module: nn.Module) -> str:
    """The neutral kind of ``module`` (see the table in the module docstring)."""
    return _description(cast(Hashable, type(module)))[0]


def module_layout(module: nn.Module) -> LayoutLike | None:
    """The layout ``module`` stores its weight in, where it is not its kind's default."""
    return _description(cast(Hashable, type(module)))[1]


def module_types(module: nn.Module) -> tuple[str, ...]:
    """The module's class name, then its base classes' (so rules can match a base class)."""
    return _types_of(cast(Hashable, type(module)))


# Both depend on the class alone; a model repeats a few classes many times.
@functools.lru_cache(maxsize=1024)
def _description(cls: type) -> tuple[str, LayoutLike | None]:
    for c in cls.__mro__:
        found = _REGISTERED.get(c.__name__) or _BUILTIN.get(f"{c.__module__}.{c.__qualname__}")
        if found is not None:
            return found
    for kind, classes in _KINDS:
        if issubclass(cls, classes):
            return kind, None
    # User-defined norms (LlamaRMSNorm, T5LayerNorm, ...) hold a 1-D weight that is a scale.
    if cls.__name__.endswith("Norm"):
        return "norm", None
    return "other", None


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


def param_layout(kind: str, role: str, stored: LayoutLike | None = None) -> LayoutLike:
    """``stored`` (a registered module's weight layout) for a kernel or an embedding table,
    ``torch_transposed`` for ConvTranspose weights, ``embedding`` for embedding tables,
    ``torch`` (out, in, *k) for everything else."""
    if stored is not None and role in ("kernel", "embedding"):
        return stored
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
        layout = param_layout(kind, param_role(kind, sibling, weight.dim()), module_layout(module))
        try:
            weight_fans = fans(tuple(weight.shape), layout)
        except InitSpecError:
            weight_fans = None
    hidden = getattr(module, "hidden_size", None) if kind == "rnn" else None
    padding = (
        getattr(module, "padding_idx", None)
        if isinstance(module, (nn.Embedding, nn.EmbeddingBag))
        else None
    )
    groups = getattr(module, "groups", 1) if kind in ("conv", "conv_transpose") else 1
    return PlanContext(
        weight_fans=weight_fans,
        hidden_size=hidden if isinstance(hidden, int) else None,
        padding_idx=padding if isinstance(padding, int) else None,
        groups=groups if isinstance(groups, int) and groups >= 1 else 1,
    )


def describe(module: nn.Module) -> list[TorchParam]:
    """Every distinct parameter of ``module``, in ``named_parameters`` order, described."""
    if not isinstance(module, nn.Module):
        raise BackendError(
            f"expected a torch.nn.Module, got {type(module).__name__}; to initialize a single "
            f"tensor use initspec_torch.init_"
        )
    owners = dict(module.named_modules(remove_duplicate=False))
    # Some wrappers (activation checkpointing) name parameters without their attribute:
    # their modules are also found under the names the wrapper gives.
    for name, sub in list(owners.items()):
        owners.setdefault(_unwrapped(name, owners), sub)
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
    _refuse_shared_memory([t for _, t in first.values()], [p for p, _ in first.values()])
    out: list[TorchParam] = []
    memo = _Memo()
    for key, (path, tensor) in first.items():
        where = _locate(path, owners)
        if where is None:
            continue  # weight_norm's magnitude g: set from v when v is written
        aliases = []
        for other in names[key][1:]:  # a tied parameter: each name described by its module
            found = _locate(other, owners)
            if found is not None:
                aliases.append(_info(tensor, other, *found, owners, memo))
        info = replace(
            _info(tensor, path, *where, owners, memo),
            shared_with=tuple(a.path for a in aliases),
            aliases=tuple(aliases),
        )
        magnitude = weight_norm_magnitude(owners, path)
        if magnitude is not None:  # g is written too: the report says so
            g_path = path.rpartition(".")[0] + ".original0"
            info = replace(info, framework_path=f"{path} (and {g_path} = its norm)")
        out.append(TorchParam(info, tensor, magnitude))
    return out


Ancestors = tuple[tuple[str, tuple[str, ...]], ...]


@dataclass
class _Memo:
    """What ``describe`` works out once: the ancestors of each module path (shared by its
    parameters) and each enclosing module's own entry (shared by everything under it)."""

    ancestors: dict[str, Ancestors] = field(default_factory=dict)
    modules: dict[str, Ancestors] = field(default_factory=dict)


def _ancestors(owners: dict[str, nn.Module], path: str, memo: _Memo | None = None) -> Ancestors:
    """``(canonical path, class names)`` of each module enclosing the parameter at
    ``path`` (framework names), the root first, wrappers and parametrization lists left out."""
    memo = _Memo() if memo is None else memo
    key = path.rpartition(".")[0]
    if key in memo.ancestors:
        return memo.ancestors[key]
    out: list[tuple[str, tuple[str, ...]]] = []
    parts = path.split(".")[:-1]
    for i in range(len(parts) + 1):
        module_path = ".".join(parts[:i])
        entry = memo.modules.get(module_path)
        if entry is None:
            module = owners.get(module_path)
            if (
                module is None
                or type(module).__name__ in WRAPPERS
                or "parametrizations" in parts[:i]
            ):
                entry = ()
            else:
                where = _locate(".".join([*parts[:i], "x"]), owners) if i else None
                prefix = where[2].rpartition(".")[0] if where is not None else ""
                entry = ((prefix, module_types(module)),)
            memo.modules[module_path] = entry
        out.extend(entry)
    memo.ancestors[key] = found = tuple(out)
    return found


def _info(
    tensor: torch.Tensor,
    path: str,
    owner: nn.Module,
    name: str,
    canonical: str,
    owners: dict[str, nn.Module],
    memo: _Memo | None = None,
) -> ParamInfo:
    kind = module_kind(owner)
    role = param_role(kind, name, tensor.dim())
    return ParamInfo(
        path=canonical,
        shape=tuple(tensor.shape),
        kind=kind,
        role=role,
        layout=param_layout(kind, role, module_layout(owner)),
        dtype=dtype_name(tensor.dtype),
        framework_path=path,
        module_types=module_types(owner),
        device=str(tensor.device),
        context=param_context(owner, kind, name),
        ancestors=_ancestors(owners, path, memo),
    )


# Wrapper class name -> the attribute that holds the wrapped model.
WRAPPERS = {
    "OptimizedModule": "_orig_mod",  # torch.compile
    "DataParallel": "module",
    "DistributedDataParallel": "module",
    "FullyShardedDataParallel": "_fsdp_wrapped_module",  # FSDP1
    "CheckpointWrapper": "_checkpoint_wrapped_module",
    "OffloadWrapper": "_checkpoint_wrapped_module",
}


def _unwrapped(name: str, owners: dict[str, nn.Module]) -> str:
    """A module path with the wrappers' attributes left out."""
    kept, prefix = [], ""
    for seg in name.split(".") if name else []:
        module = owners.get(prefix)
        if module is None or WRAPPERS.get(type(module).__name__) != seg:
            kept.append(seg)
        prefix = f"{prefix}.{seg}" if prefix else seg
    return ".".join(kept)


def _locate(path: str, owners: dict[str, nn.Module]) -> tuple[nn.Module, str, str] | None:
    """``(owning module, parameter name, canonical path)`` of a ``named_parameters`` path;
    None for weight_norm's magnitude (derived, not drawn)."""
    parts = path.split(".")
    kept: list[str] = []
    prefix = ""
    for i, seg in enumerate(parts):
        module = owners.get(prefix)
        if module is not None and WRAPPERS.get(type(module).__name__) == seg:
            pass  # the wrapper's attribute: not part of the model's own names
        elif (
            seg == "parametrizations"
            and i + 3 == len(parts)
            and module is not None
            and parametrize.is_parametrized(module)
        ):
            # owner.parametrizations.<name>.original[0|1]: the owner's parameter <name>
            name, original = parts[i + 1], parts[i + 2]
            plist = f"{prefix}.{seg}.{name}".lstrip(".")
            if original == "original0" and _is_weight_norm(owners, plist):
                return None
            return module, name, ".".join([*kept, name])
        else:
            kept.append(seg)
        prefix = f"{prefix}.{seg}" if prefix else seg
    owner_path = path.rpartition(".")[0]
    return owners[owner_path], parts[-1], ".".join(kept)


def _is_weight_norm(owners: dict[str, nn.Module], plist_path: str) -> bool:
    plist = owners.get(plist_path)
    return plist is not None and any(type(p).__name__ == "_WeightNorm" for p in plist.children())


def weight_norm_magnitude(
    owners: dict[str, nn.Module], framework_path: str
) -> tuple[torch.Tensor, int] | None:
    """For weight_norm's direction ``...parametrizations.<name>.original1``: the magnitude
    parameter g and the dim its norm keeps, else None."""
    head, _, leaf = framework_path.rpartition(".")
    if leaf != "original1" or not _is_weight_norm(owners, head):
        return None
    plist = owners[head]
    norm = next(p for p in plist.children() if type(p).__name__ == "_WeightNorm")
    dim = int(cast(Any, norm).dim)
    return cast(torch.Tensor, plist.original0), dim


def _refuse_shared_memory(tensors: list[torch.Tensor], paths: list[str]) -> None:
    """A ``ResolutionError`` for distinct parameters whose memory overlaps."""
    spans = []
    for t, path in zip(tensors, paths, strict=True):
        if t.is_meta or t.numel() == 0 or t.layout != torch.strided:
            continue
        try:  # a DTensor's or another subclass's own storage is no memory of its values
            local = t.to_local() if hasattr(t, "to_local") else t
            ptr = local.untyped_storage().data_ptr()
        except (RuntimeError, NotImplementedError, TypeError):
            continue
        size = local.element_size()
        last = sum(int(n - 1) * st for n, st in zip(local.shape, local.stride(), strict=True))
        start = int(ptr + local.storage_offset() * size)
        spans.append((start, start + (last + 1) * size, path))
    spans.sort()
    problems = []
    reach: int = -1
    owner = ""
    for start, end, path in spans:
        if start < reach:
            problems.append(
                f"{path} and {owner} are distinct parameters sharing memory: writing one "
                f"would change the other; tie them (one nn.Parameter under both names) or "
                f"give each its own tensor"
            )
        if end > reach:
            reach, owner = end, path
    if problems:
        raise ResolutionError(problems)
