"""Layouts say which axes of a stored parameter are ``out``, ``in`` and ``batch``.

All other axes form the receptive field. Fans follow ``jax.nn.initializers``'s
``_compute_fans`` with the receptive field made explicit:

    rf = prod(shape) / (prod(in) * prod(out) * prod(batch))
    fan_in = prod(shape[in_axes]) * rf,   fan_out = prod(shape[out_axes]) * rf

computed with integers (JAX divides in floats; the values are the same). Named layouts:

========================  ==================  =========================================
name                      axes                used for
========================  ==================  =========================================
``torch``                 (out, in, *k)       torch Linear / Conv weights
``torch_transposed``      (in, out, *k)       torch ConvTranspose weights (true in/out)
``flax`` / ``keras``      (*k, in, out)       Flax / Keras Dense and Conv kernels
``flax_transposed``       (*k, out, in)       Flax ConvTranspose with transpose_kernel
``embedding``             (vocab, features)   fan_in = features, fan_out = vocab
========================  ==================  =========================================

``torch_transposed`` labels the axes by what they mean: a ConvTranspose2d(8, 16, 3) weight
(8, 16, 3, 3) has fans (72, 144), like the Flax kernel of the same layer. torch's own
``_calculate_fan_in_and_fan_out`` reads the same tensor with the ``torch`` layout and gets
(144, 72); PyTorch's default init of that layer is therefore ``mode="fan_out"`` here.

Zero-size shapes: fans are computed as usual and may be 0; a fan of 0 only occurs when the
shape has no elements, and plans then clamp the fan to 1 (nothing is sampled).
"""

from __future__ import annotations

import math
import operator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from initspec.errors import ShapeError, SpecError, _short_repr

Shape = tuple[int, ...]

MAX_NDIM = 64
MAX_DIM = 2**63 - 1  # what NumPy, torch and JAX can index


def check_shape(shape: Any) -> Shape:
    """``shape`` as a tuple of ints, or ``ShapeError``: a sequence (tuple, list,
    ``torch.Size``, ...) of at most 64 integers (Python or NumPy ints; not bools, floats or
    the characters of a string) from 0 to 2**63 - 1."""
    if isinstance(shape, (str, bytes, bytearray, dict, set, frozenset)) or not hasattr(
        shape, "__iter__"
    ):
        raise ShapeError(f"shape must be a sequence of ints, got {_shape_repr(shape)}")
    out = []
    try:
        for i, d in enumerate(shape):
            if i >= MAX_NDIM:
                raise ShapeError(f"shape has more than {MAX_NDIM} dimensions")
            if isinstance(d, bool):
                raise TypeError
            out.append(operator.index(d))
    except (TypeError, ValueError):
        raise ShapeError(f"shape must be a sequence of ints, got {_shape_repr(shape)}") from None
    if any(d < 0 for d in out):
        raise ShapeError(f"shape {tuple(out)} has a negative dimension")
    if any(d > MAX_DIM for d in out):
        raise ShapeError(f"shape {_shape_repr(tuple(out))} has a dimension above 2**63 - 1")
    return tuple(out)


def _shape_repr(shape: Any) -> str:
    return _short_repr(shape)


class Layout(BaseModel):
    """Explicit axes, as JAX's ``in_axis`` / ``out_axis`` / ``batch_axis`` (negatives allowed)."""

    # Not strict as a whole: JSON gives lists where tuples are stored; the ints are strict.
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    in_axes: tuple[StrictInt, ...] = Field(default=(-2,), alias="in")
    out_axes: tuple[StrictInt, ...] = Field(default=(-1,), alias="out")
    batch_axes: tuple[StrictInt, ...] = Field(default=(), alias="batch")
    name: StrictStr | None = None

    def label(self) -> str:
        if self.name is not None:
            return self.name
        return f"in={list(self.in_axes)} out={list(self.out_axes)} batch={list(self.batch_axes)}"


def _named(name: str, in_axes: tuple[int, ...], out_axes: tuple[int, ...]) -> Layout:
    return Layout.model_validate({"in": in_axes, "out": out_axes, "name": name})


LAYOUTS: dict[str, Layout] = {
    "torch": _named("torch", (1,), (0,)),
    "torch_transposed": _named("torch_transposed", (0,), (1,)),
    "flax": _named("flax", (-2,), (-1,)),
    "keras": _named("keras", (-2,), (-1,)),
    "flax_transposed": _named("flax_transposed", (-1,), (-2,)),
    "embedding": _named("embedding", (1,), (0,)),
}
"""The named layouts: which axes are "in" and "out" (the rest are receptive field).
``torch`` ``(out, in, *k)``; ``torch_transposed`` ``(in, out, *k)``, torch's ConvTranspose;
``flax`` / ``keras`` ``(*k, in, out)``; ``flax_transposed`` ``(*k, out, in)``, Flax's
``transpose_kernel=True``; ``embedding`` (vocab, features): fan_in = features, fan_out = vocab."""

LayoutLike = str | Layout | dict[str, Any]
"""A layout name (a key of ``LAYOUTS``), a ``Layout``, or explicit axes
``{"in": [0], "out": [1, 2]}``."""


def resolve_layout(layout: LayoutLike) -> Layout:
    """A named layout, a ``Layout``, or a dict ``{"in": [...], "out": [...], "batch": [...]}``."""
    if isinstance(layout, Layout):
        return layout
    if isinstance(layout, str):
        try:
            return LAYOUTS[layout]
        except KeyError:
            raise SpecError(("layout",), layout, f"allowed: {', '.join(LAYOUTS)}") from None
    if isinstance(layout, dict):
        from initspec.validation import validate_model

        return validate_model(Layout, layout, ("layout",))
    raise SpecError(("layout",), layout, "must be a layout name, a Layout or a dict of axes")


class ResolvedAxes(BaseModel):
    """A layout's axes made non-negative for one shape."""

    model_config = ConfigDict(frozen=True)

    in_axes: tuple[int, ...]
    out_axes: tuple[int, ...]
    batch_axes: tuple[int, ...]
    rf_axes: tuple[int, ...]


def resolve_axes(shape: Shape, layout: LayoutLike) -> ResolvedAxes:
    """Check the layout's axes against ``shape``; raise ``ShapeError`` naming both."""
    lay = resolve_layout(layout)
    ndim = len(shape)
    groups: list[tuple[int, ...]] = []
    for axes in (lay.in_axes, lay.out_axes, lay.batch_axes):
        fixed = []
        for axis in axes:
            if not -ndim <= axis < ndim:
                raise ShapeError(
                    f"shape {tuple(shape)} has {ndim} dims, too few for layout {lay.label()!r} "
                    f"(axis {axis}); a fan-based spec needs at least "
                    f"{_min_ndim(lay)} dims in this layout"
                )
            fixed.append(axis % ndim)
        groups.append(tuple(fixed))
    used = [a for g in groups for a in g]
    if len(set(used)) != len(used):
        raise ShapeError(f"layout {lay.label()!r} names an axis twice for shape {tuple(shape)}")
    rf = tuple(a for a in range(ndim) if a not in used)
    return ResolvedAxes(in_axes=groups[0], out_axes=groups[1], batch_axes=groups[2], rf_axes=rf)


def _min_ndim(lay: Layout) -> int:
    axes = [*lay.in_axes, *lay.out_axes, *lay.batch_axes]
    return max((a + 1 if a >= 0 else -a) for a in axes) if axes else 0


def fans(shape: Shape, layout: LayoutLike = "torch") -> tuple[int, int]:
    """``(fan_in, fan_out)`` of ``shape`` in ``layout``.

    ``fans((16, 8, 3, 3), "torch") == (72, 144)`` like torch's
    ``_calculate_fan_in_and_fan_out``; ``fans((3, 3, 8, 16), "flax") == (72, 144)`` like
    ``jax._src.nn.initializers._compute_fans``.
    """
    shape = check_shape(shape)
    ax = resolve_axes(shape, layout)
    rf = math.prod(shape[a] for a in ax.rf_axes)
    fan_in = math.prod(shape[a] for a in ax.in_axes) * rf
    fan_out = math.prod(shape[a] for a in ax.out_axes) * rf
    return fan_in, fan_out


def canonical_perm(shape: Shape, layout: LayoutLike) -> tuple[int, ...]:
    """Axis order (out..., in..., batch..., rf...) that puts ``shape`` in torch's order.

    Structural plans (orthogonal, dirac, sparse) are built in this order and transposed back,
    so a Flax kernel (3, 3, 8, 16) gets the same structure as the torch weight (16, 8, 3, 3).
    """
    ax = resolve_axes(shape, layout)
    return (*ax.out_axes, *ax.in_axes, *ax.batch_axes, *ax.rf_axes)
