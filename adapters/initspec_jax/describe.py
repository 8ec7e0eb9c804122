"""Describe Flax parameters in the neutral terms of initspec policies (linen and nnx).

For each parameter: a canonical dotted path, the owning module's kind and type names, its
role, the layout of its axes and the context a spec may need. The owning module is known
from the model (nnx always; linen when ``model`` is given, see ``linen_modules``); without
it, linen parameters are classified from their names alone.

=========================================  ===============  =================================
owning module (linen / nnx)                kind             roles and layouts
=========================================  ===============  =================================
Dense / Linear                             linear           kernel (``flax``: in, out), bias
DenseGeneral / LinearGeneral               linear           kernel (batch..., in..., out...):
                                                            explicit axes, batch axes
                                                            excluded from the fans
Conv                                       conv             kernel (``flax``: *k, in/g, out)
ConvTranspose                              conv_transpose   kernel ``flax`` (*k, in, out), or
                                                            ``flax_transposed`` (*k, out, in)
                                                            with ``transpose_kernel=True``
Embed                                      embedding        embedding (``embedding``)
LayerNorm, RMSNorm, BatchNorm, GroupNorm,  norm             scale, bias
InstanceNorm, any class named ``*Norm``
query / key / value of an attention        attention        kernel (in, heads, head_dim),
module (MultiHeadDotProductAttention,                       bias
nnx.MultiHeadAttention)
out of an attention module                 linear           kernel (heads, head_dim, out),
                                                            bias (torch's out_proj is a
                                                            Linear)
Dense / Linear inside an RNN cell          rnn              kernel, bias; ``hidden_size``
                                                            from the cell's features
anything else                              other            kernel, bias, embedding, scale
                                                            by leaf name; else other
=========================================  ===============  =================================

Names only (linen without ``model``): ``kernel`` 2-D is ``linear``; a kernel with more dims
is ``conv`` / ``conv_transpose`` / ``linear`` when its module has a Flax auto-name
(``Conv_0``, ``ConvTranspose_1``, ``DenseGeneral_0``), else ``other`` (DenseGeneral and
attention kernels cannot be told from convolutions by shape); ``embedding`` is
``embedding``; ``scale`` and its sibling ``bias`` are ``norm``.

Canonical paths join the path with dots; linen's auto-names of list elements and unnamed
submodules (``layers_0``, ``Dense_1``) become ``layers.0``, ``Dense.1``, so that a policy
written against the torch twin (``layers.0.fc1.*``) matches. nnx list indices are already
separate path entries. Leaf names stay Flax's (``kernel``, ``embedding``, ``scale``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from initspec.errors import InitSpecError
from initspec.layout import LayoutLike, fans
from initspec.resolve import ParamInfo
from initspec.specs import PlanContext

_AUTO_NAME = re.compile(r"^(.+)_(\d+)$")
_ATTENTION_INPUTS = ("query", "key", "value")


def canonical_linen_path(parts: Sequence[str]) -> str:
    """``("encoder", "layers_0", "fc1", "kernel")`` -> ``encoder.layers.0.fc1.kernel``."""
    return ".".join(_AUTO_NAME.sub(r"\1.\2", str(p)) for p in parts)


def canonical_nnx_path(parts: Sequence[Any]) -> str:
    """``("layers", 0, "kernel")`` -> ``layers.0.kernel``."""
    return ".".join(str(p) for p in parts)


def _kind_classes() -> tuple[tuple[str, tuple[type, ...]], ...]:
    """Flax classes per kind, linen and nnx together; checked in order."""
    import flax.linen as nn
    from flax import nnx

    return (
        ("conv_transpose", (nn.ConvTranspose, nnx.ConvTranspose)),
        ("conv", (nn.Conv, nnx.Conv)),
        ("linear", (nn.Dense, nn.DenseGeneral, nnx.Linear, nnx.LinearGeneral)),
        ("embedding", (nn.Embed, nnx.Embed)),
        (
            "norm",
            (
                nn.LayerNorm,
                nn.RMSNorm,
                nn.BatchNorm,
                nn.GroupNorm,
                nn.InstanceNorm,
                nnx.LayerNorm,
                nnx.RMSNorm,
                nnx.BatchNorm,
                nnx.GroupNorm,
                nnx.InstanceNorm,
            ),
        ),
        (
            "attention",
            (nn.MultiHeadDotProductAttention, nn.MultiHeadAttention, nnx.MultiHeadAttention),
        ),
        ("rnn", (nn.RNNCellBase, nnx.RNNCellBase)),
    )


# register_module: by class name (of the class or one of its bases).
_REGISTERED: dict[str, tuple[str, LayoutLike | None]] = {}


def register_module(cls: type | str, *, kind: str, layout: LayoutLike | None = None) -> None:
    """Describe Flax modules of class ``cls`` (a class, or a class name matched against
    every class of a module's MRO) as ``kind``, their kernel stored in ``layout`` (default:
    ``flax``, (*k, in, out)). As ``initspec_torch.register_module``; ``BackendError`` for an
    unknown kind or layout."""
    from initspec.backend import module_registration

    name, description = module_registration(cls, kind, layout)
    _REGISTERED[name] = description


def _registered(module: Any) -> tuple[str, LayoutLike | None] | None:
    for c in type(module).__mro__:
        if c.__name__ in _REGISTERED:
            return _REGISTERED[c.__name__]
    return None


def module_kind(module: Any) -> str:
    """The neutral kind of a Flax module instance (table in the module docstring)."""
    found = _registered(module)
    if found is not None:
        return found[0]
    for kind, classes in _kind_classes():
        if isinstance(module, classes):
            return kind
    return "norm" if type(module).__name__.endswith("Norm") else "other"


def module_types(module: Any) -> tuple[str, ...]:
    """The module's class name, then its base classes' (so rules can match a base class)."""
    return tuple(c.__name__ for c in type(module).__mro__ if c is not object)


def param_role(kind: str, leaf: str) -> str:
    """The role of the parameter named ``leaf`` in a module of ``kind``."""
    if kind == "embedding":
        return "embedding" if leaf == "embedding" else "other"
    if kind == "norm":
        return {"scale": "scale", "bias": "bias"}.get(leaf, "other")
    if kind in ("linear", "conv", "conv_transpose", "attention", "rnn"):
        return {"kernel": "kernel", "bias": "bias"}.get(leaf, "other")
    return {"kernel": "kernel", "bias": "bias", "embedding": "embedding", "scale": "scale"}.get(
        leaf, "other"
    )


def _axes_tuple(value: Any) -> tuple[Any, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def general_layout(n_batch: int, n_in: int, n_out: int) -> dict[str, list[int]]:
    """Axes of a (batch..., in..., out...) kernel, as DenseGeneral and LinearGeneral store it.

    Flax's own default init flattens the kernel to (prod(batch) * prod(in), prod(out)), so
    its fan_in includes the batch axes (reference §d.3.5); here they are batch axes, excluded
    from the fans, since each batch index is an independent map.
    """
    return {
        "in": list(range(n_batch, n_batch + n_in)),
        "out": list(range(n_batch + n_in, n_batch + n_in + n_out)),
        "batch": list(range(n_batch)),
    }


def kernel_layout(module: Any) -> LayoutLike:
    """The layout of ``module``'s kernel from its attributes."""
    import flax.linen as nn
    from flax import nnx

    found = _registered(module)
    if found is not None and found[1] is not None:
        return found[1]
    if isinstance(module, nn.DenseGeneral):
        n_out = len(_axes_tuple(module.features))
        return general_layout(
            len(_axes_tuple(module.batch_dims)), len(_axes_tuple(module.axis)), n_out
        )
    if isinstance(module, nnx.LinearGeneral):
        return general_layout(
            len(module.batch_axis), len(module.in_features), len(module.out_features)
        )
    if isinstance(module, (nn.ConvTranspose, nnx.ConvTranspose)) and module.transpose_kernel:
        return "flax_transposed"
    return "flax"


@dataclass(frozen=True)
class Owner:
    """What is known of the module holding a parameter: its instance (or None when only the
    names are known), its own name and its parent's instance."""

    module: Any
    name: str
    parent: Any = None


def _guess_kind(owner_name: str, leaf: str, ndim: int, siblings: Mapping[str, Any]) -> str:
    """Names-only classification for linen (module docstring)."""
    auto = _AUTO_NAME.match(owner_name)
    type_name = auto.group(1) if auto else ""
    if type_name in ("Conv", "ConvTranspose", "DenseGeneral", "Dense", "Embed"):
        return {"Conv": "conv", "ConvTranspose": "conv_transpose", "Embed": "embedding"}.get(
            type_name, "linear"
        )
    if type_name.endswith("Norm"):
        return "norm"
    if leaf == "embedding":
        return "embedding"
    if leaf == "scale" or (leaf == "bias" and "scale" in siblings and "kernel" not in siblings):
        return "norm"
    kernel = siblings.get("kernel")
    kernel_ndim = len(kernel.shape) if kernel is not None else ndim
    if "kernel" in siblings or leaf == "kernel":
        return "linear" if kernel_ndim == 2 else "other"
    return "other"


def _kind_and_layout(
    owner: Owner, leaf: str, siblings: Mapping[str, Any]
) -> tuple[str, LayoutLike]:
    """The parameter's kind and its kernel's layout (used for the kernel and its bias)."""
    if owner.module is None:
        kind = _guess_kind(owner.name, leaf, len(siblings[leaf].shape), siblings)
        if kind == "linear" and "kernel" in siblings and len(siblings["kernel"].shape) != 2:
            return "other", "flax"  # DenseGeneral_N: axes unknown without the module
        return kind, ("embedding" if kind == "embedding" else "flax")
    kind = module_kind(owner.module)
    parent_kind = module_kind(owner.parent) if owner.parent is not None else "other"
    if kind == "linear" and parent_kind == "attention":
        kind = "attention" if owner.name in _ATTENTION_INPUTS else "linear"
    elif kind == "linear" and parent_kind == "rnn":
        kind = "rnn"
    if kind == "embedding":
        return kind, "embedding"
    return kind, kernel_layout(owner.module)


def _hidden_size(owner: Owner) -> int | None:
    parent = owner.parent
    size = getattr(parent, "hidden_features", getattr(parent, "features", None))
    return size if isinstance(size, int) else None


def describe_param(
    parts: Sequence[Any],
    canonical: str,
    framework_path: str,
    owner: Owner,
    siblings: Mapping[str, Any],
    device: str,
) -> ParamInfo:
    """The ``ParamInfo`` of the parameter at ``parts`` (its leaf name is ``parts[-1]``).

    ``siblings``: the owner's parameters by leaf name (arrays or shape/dtype structs), for
    the bias's ``weight_fans`` (the kernel's fans in the kernel's layout).
    """
    leaf = str(parts[-1])
    value = siblings[leaf]
    kind, kernel_lay = _kind_and_layout(owner, leaf, siblings)
    role = param_role(kind, leaf)
    layout: LayoutLike = kernel_lay if role in ("kernel", "embedding") else "flax"
    weight_fans = None
    kernel = siblings.get("kernel")
    if role == "bias" and kernel is not None and len(kernel.shape) >= 2:
        try:
            weight_fans = fans(tuple(kernel.shape), kernel_lay)
        except InitSpecError:
            weight_fans = None
    groups = getattr(owner.module, "feature_group_count", 1) if kind == "conv" else 1
    context = PlanContext(
        weight_fans=weight_fans,
        hidden_size=_hidden_size(owner) if kind == "rnn" else None,
        groups=groups if isinstance(groups, int) and groups >= 1 else 1,
    )
    return ParamInfo(
        path=canonical,
        shape=tuple(int(d) for d in value.shape),
        kind=kind,
        role=role,
        layout=layout,
        dtype=np.dtype(value.dtype).name,
        framework_path=framework_path,
        module_types=module_types(owner.module) if owner.module is not None else (),
        device=device,
        context=context,
    )
