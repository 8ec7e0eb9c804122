"""muP: init scales and learning-rate multipliers from a model's shapes and a base model's.

The conventions are those of the ``mup`` package (1.0.0), read from its source:

- ``mup.infshape``: a dimension is a width ("infinite") dimension when its size differs
  from the base's (``zip_infshape``); its ``width_mult`` is ``size / base``, a finite one's
  1. A parameter's ``width_mult`` is that of its last width dimension (``InfShape.main``):
  for torch's (out, in) weight the input's when the input is a width dimension.
- ``mup.set_base_shapes(rescale_params=True)``: ``MuReadout`` weight and bias x
  ``sqrt(width_mult)`` (``_rescale_parameters``), every other ``Linear`` / ``_ConvNd``
  bias x ``sqrt(weight.infshape[1].width_mult())`` (``rescale_linear_bias``); nothing
  else changes. ``MuReadout.forward`` multiplies its input by ``output_mult / width_mult``.
- ``mup.optim.MuAdam``: parameters with 2 width dimensions get ``lr / width_mult`` and
  ``weight_decay * width_mult``; others unchanged. ``MuSGD``: 1 width dimension: ``lr *
  width_mult``, ``weight_decay / width_mult``; 2: ``lr / r``, ``weight_decay * r`` with
  ``r = fanin.width_mult() / fanout.width_mult()`` (dims 1 and 0 of the weight); 0:
  unchanged. More than 2 width dimensions: ``mup`` refuses, so does ``lr_multipliers``.

Here the input and output axes come from the parameter's layout, so a Flax (in, out) kernel
is read as torch's (out, in) weight (``mup`` reads stored dims 1 and 0, which matches its
torch modules); an output weight is a ``linear`` kernel whose input axis is a width
dimension and whose output axis is not (what ``mup.shape.assert_hidden_size_inf`` demands
be a ``MuReadout``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from initspec.errors import InitSpecError, printable
from initspec.layout import resolve_axes
from initspec.policy import Width

Kind = Literal["output", "hidden", "input", "output_bias", "bias", "vector", "fixed"]


@dataclass(frozen=True)
class WidthInfo:
    """A parameter's width dimensions and what muP makes of them."""

    path: str
    shape: tuple[int, ...]
    base: tuple[int, ...]
    kind: Kind
    init_factor: float  # on the rule's distribution (x sqrt(m_in) for outputs, biases)
    output_mult: float | None  # MuReadout's forward factor 1 / m_in (output weights)
    lr_adam: float
    wd_adam: float
    lr_sgd: float
    wd_sgd: float


def _mults(path: str, shape: tuple[int, ...], base: tuple[int, ...]) -> list[float]:
    if len(base) != len(shape):
        raise InitSpecError(
            f"width.base gives {printable(path)!r} the shape {list(base)} ({len(base)} dims), "
            f"the parameter has {list(shape)} ({len(shape)} dims)"
        )
    out = []
    for d, (n, b) in enumerate(zip(shape, base, strict=True)):
        if n != b and n % b and b % n:
            raise InitSpecError(
                f"width: {printable(path)!r} dimension {d}: {n} is not a whole multiple of "
                f"its base {b} (nor {b} of {n}); base shape {list(base)}, shape {list(shape)}"
            )
        out.append(n / b)
    return out


def _in_out(shape: tuple[int, ...], layout: object) -> tuple[int, int] | None:
    """The single input and output axes of a weight, or None."""
    if len(shape) < 2:
        return None
    try:
        ax = resolve_axes(shape, layout)  # type: ignore[arg-type]
    except InitSpecError:
        return None
    if len(ax.in_axes) != 1 or len(ax.out_axes) != 1:
        return None
    return ax.in_axes[0], ax.out_axes[0]


def _weight_mults(
    path: str, shape: tuple[int, ...], base: tuple[int, ...], layout: object
) -> tuple[list[float], float, float]:
    """(per-dim multipliers, m_in, m_out) of a weight; m of a finite axis is 1."""
    mult = _mults(path, shape, base)
    axes = _in_out(shape, layout)
    if axes is None:  # as mup: dims 1 and 0
        return mult, mult[1] if len(mult) > 1 else 1.0, mult[0] if mult else 1.0
    return mult, mult[axes[0]], mult[axes[1]]


def width_info(
    width: Width,
    path: str,
    names: tuple[str, ...],
    shape: tuple[int, ...],
    layout: object,
    kind: str,
    role: str,
    sibling: tuple[tuple[str, ...], tuple[int, ...], object] | None,
) -> WidthInfo:
    """What muP gives the parameter ``path`` (known by ``names``); ``sibling``: the names,
    shape and layout of a bias's weight. ``InitSpecError`` for a parameter the base does not
    name, a base of another rank, a size that is no whole multiple of its base, more than 2
    width dimensions."""
    base = _base(width, path, names)
    mult, m_in, m_out = _weight_mults(path, shape, base, layout)
    inf = [m != 1.0 for m in mult]
    ninf = sum(inf)
    if ninf > 2:
        raise InitSpecError(
            f"width: {printable(path)!r} has {ninf} width dimensions (shape {list(shape)}, "
            f"base {list(base)}); muP (and mup's optimizers) define at most 2"
        )
    axes = _in_out(shape, layout)
    in_inf = m_in != 1.0
    out_inf = m_out != 1.0
    output_mult = None
    factor = 1.0
    what: Kind
    if axes is not None and role == "kernel":
        if kind == "linear" and in_inf and not out_inf:
            what, factor, output_mult = "output", math.sqrt(m_in), 1.0 / m_in
        elif in_inf:
            what = "hidden"
        else:
            what = "input" if out_inf else "fixed"
    elif role == "bias" and sibling is not None and kind in ("linear", "conv"):
        s_names, s_shape, s_layout = sibling
        s_base = _base(width, s_names[0], s_names)
        _, s_in, s_out = _weight_mults(s_names[0], s_shape, s_base, s_layout)
        readout = kind == "linear" and s_in != 1.0 and s_out == 1.0
        what = "output_bias" if readout else "bias"
        factor = math.sqrt(s_in)
    else:
        what = "vector" if ninf else "fixed"
    # mup's main dim: the last width dim in torch's (out, in, ...) order: the input's if it
    # is one, else the output's, else the last width dim as stored.
    main = m_in if in_inf and axes is not None else (m_out if out_inf and axes is not None else 1.0)
    if main == 1.0 and ninf:
        main = [m for m in mult if m != 1.0][-1]
    if ninf == 2:
        ratio = m_in / m_out if axes is not None else (mult[1] / mult[0])
        lr_adam, wd_adam, lr_sgd, wd_sgd = 1.0 / main, main, 1.0 / ratio, ratio
    elif ninf == 1:
        lr_adam, wd_adam, lr_sgd, wd_sgd = 1.0, 1.0, main, 1.0 / main
    else:
        lr_adam = wd_adam = lr_sgd = wd_sgd = 1.0
    return WidthInfo(path, shape, base, what, factor, output_mult, lr_adam, wd_adam, lr_sgd, wd_sgd)


def _base(width: Width, path: str, names: tuple[str, ...]) -> tuple[int, ...]:
    for name in (path, *names):
        if name in width.base:
            return tuple(width.base[name])
    raise InitSpecError(
        f"width.base has no shape for {printable(path)!r} (nor for {', '.join(map(repr, names[1:4]))}); "
        f"give every parameter's base shape (report.shapes() of the base model)"
    )
