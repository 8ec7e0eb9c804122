"""Logical blocks of fused parameters: where each block lies, its shape, layout and key.

A rule's ``blocks`` (``initspec.policy.Blocks``) partitions a parameter along one stored
axis; its ``slices`` (``initspec.policy.Slice``) are ranges written over the parameter's own
values. Each becomes a ``Region`` of the parameter: the engine makes one job per region
(``initspec.engine.jobs``), planned on the region's shape and keyed in the portable stream
by ``stream_path(parameter path) + "." + name``. A fused parameter then holds, block by
block, the values the separate parameters of the unfused model get when they are keyed by
those names (``path_map``): the concatenation is bit-identical.

Shards: a region is given in the parameter's global coordinates; ``Region.locate`` maps it
to the part a shard holds (a DTensor's local tensor, an expert shard) and the index of that
part inside the block, so each shard's values come from global indices alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from initspec.errors import BackendError, InitSpecError
from initspec.layout import Layout, LayoutLike, resolve_axes, resolve_layout
from initspec.plans import Plan
from initspec.policy import Axis, Blocks, Slice
from initspec.seeding import stream_path
from initspec.specs import SpecBase
from initspec.stream import check_index


@dataclass(frozen=True)
class Region:
    """Block ``name`` of a parameter of global shape ``shape``: ``[start, stop)`` along the
    stored ``axis``, or, with ``squeeze``, the single index ``start`` with the axis removed
    (one expert of a stack). ``overlay``: a slice written over values already there."""

    name: str
    shape: tuple[int, ...]
    axis: int
    start: int
    stop: int
    squeeze: bool = False
    overlay: bool = False

    @property
    def block_shape(self) -> tuple[int, ...]:
        if self.squeeze:
            return self.shape[: self.axis] + self.shape[self.axis + 1 :]
        return self.shape[: self.axis] + (self.stop - self.start,) + self.shape[self.axis + 1 :]

    def key_path(self, path: str) -> str:
        """The path the block is keyed by: ``c_attn.kernel`` -> ``c_attn.weight.q``."""
        return f"{stream_path(path)}.{self.name}"

    def locate(
        self, shard: tuple[slice, ...] | None = None
    ) -> tuple[tuple[slice | int, ...], tuple[slice, ...] | None] | None:
        """``(where, index)``: the part of the block held by ``shard`` (one slice per
        dimension of ``shape``; None: the whole parameter), as an index into the shard's
        local tensor (``where``; an int on a squeezed axis) and the same elements as an
        index into the block (``index``; None: the whole block). None if the shard holds
        none of the block. ``BackendError`` for a shard outside the shape or with a step."""
        ndim = len(self.shape)
        if shard is None:
            here: slice | int = self.start if self.squeeze else slice(self.start, self.stop)
            return tuple(here if d == self.axis else slice(None) for d in range(ndim)), None
        parts = check_index(self.shape, shard)
        if any(step != 1 for _, step, n in parts if n > 1):
            raise BackendError(
                f"block {self.name!r}: a shard of a blocked parameter needs unit steps, "
                f"got {shard!r}"
            )
        s0, _, n = parts[self.axis]
        lo, hi = max(s0, self.start), min(s0 + n, self.stop)
        if hi <= lo and self.stop > self.start:
            return None
        where: list[slice | int] = []
        index: list[slice] = []
        for d, (start, _, length) in enumerate(parts):
            if d != self.axis:
                where.append(slice(None))
                index.append(slice(start, start + length))
            elif self.squeeze:
                where.append(lo - s0)
            else:
                where.append(slice(lo - s0, hi - s0))
                index.append(slice(lo - self.start, hi - self.start))
        return tuple(where), tuple(index)


def resolve_axis(axis: Axis, shape: tuple[int, ...], layout: LayoutLike) -> int:
    """The stored axis ``axis`` names: ``"out"`` / ``"in"`` in ``layout`` (axis 0 of a 1-D
    parameter for ``"out"``), or an index; ``InitSpecError`` saying why not."""
    ndim = len(shape)
    if isinstance(axis, int):
        if not -ndim <= axis < ndim:
            raise InitSpecError(f"axis {axis} is outside the {ndim} dimension(s) of {shape}")
        return axis % ndim
    if ndim == 1 and axis == "out":
        return 0
    if ndim < 2:
        raise InitSpecError(f"axis {axis!r} needs a parameter of 2 or more dims, not {shape}")
    ax = resolve_axes(shape, layout)
    axes = ax.out_axes if axis == "out" else ax.in_axes
    if len(axes) != 1:
        raise InitSpecError(
            f"axis {axis!r} is {len(axes)} axes {list(axes)} in layout "
            f"{resolve_layout(layout).label()!r}; give the stored axis index"
        )
    return axes[0]


def _equal(n: int, parts: int, what: str) -> int:
    if parts == 0 or n % parts:
        raise InitSpecError(f"{what}: {n} is not divisible into {parts} equal parts")
    return n // parts


def regions(blocks: Blocks, shape: tuple[int, ...], layout: LayoutLike) -> list[Region]:
    """The regions of ``blocks`` on a parameter of ``shape``: ``InitSpecError`` naming the
    numbers when the sizes do not add up to the axis or it does not divide evenly."""
    default: Axis = 0 if blocks.experts is not None else "out"
    axis = resolve_axis(blocks.axis if blocks.axis is not None else default, shape, layout)
    n = shape[axis]
    names = blocks.names()
    if blocks.experts is not None:
        if n != blocks.experts:
            raise InitSpecError(
                f"experts: {blocks.experts} but axis {axis} of {shape} has {n} entries"
            )
        return [Region(name, shape, axis, e, e + 1, squeeze=True) for e, name in enumerate(names)]
    sizes = blocks.sizes()
    if sizes is None:
        sizes = [
            _equal(n, len(names), f"split into {len(names)} along axis {axis} of {shape}")
        ] * len(names)
    elif sum(sizes) != n:
        shown = " + ".join(map(str, sizes[:12])) + (" + ..." if len(sizes) > 12 else "")
        raise InitSpecError(
            f"blocks {shown} = {sum(sizes)} do not add up to axis {axis} of {shape} ({n})"
        )
    out, start = [], 0
    for name, size in zip(names, sizes, strict=True):
        out.append(Region(name, shape, axis, start, start + size))
        start += size
    return out


def slice_region(sl: Slice, shape: tuple[int, ...], layout: LayoutLike) -> Region:
    """The region of a slice: ``InitSpecError`` naming the numbers if it lies outside."""
    axis = resolve_axis(sl.axis, shape, layout)
    n = shape[axis]
    if sl.part is not None:
        k, parts = sl.part
        size = _equal(n, parts, f"slice {sl.name!r}: part [{k}, {parts}] of axis {axis} of {shape}")
        start, stop = k * size, (k + 1) * size
    else:
        assert sl.start is not None and sl.stop is not None
        start, stop = sl.start, sl.stop
        if stop > n:
            raise InitSpecError(
                f"slice {sl.name!r} [{start}, {stop}) lies outside axis {axis} of {shape} "
                f"(size {n})"
            )
    return Region(sl.name, shape, axis, start, stop, overlay=True)


def block_layout(layout: LayoutLike, region: Region) -> LayoutLike:
    """The layout of a block: the parameter's, or, for one expert of a stack, the
    parameter's axes with the expert axis removed (``InitSpecError`` if the layout names
    it as an in, out or batch axis, or does not fit the parameter)."""
    if not region.squeeze:
        return layout
    shape, axis = region.shape, region.axis
    try:
        ax = resolve_axes(shape, layout)
    except InitSpecError:
        return layout  # a layout that does not fit: the block's plan says so, or needs none
    named = {"in": ax.in_axes, "out": ax.out_axes, "batch": ax.batch_axes}
    for role, axes in named.items():
        if axis in axes and role != "batch":  # the expert axis may be a batch axis
            raise InitSpecError(
                f"experts: axis {axis} of {shape} is the {role} axis of layout "
                f"{resolve_layout(layout).label()!r}; give the rule a layout whose in and "
                f'out axes are an expert\'s (e.g. {{"in": [2], "out": [1]}} for (E, out, in))'
            )
    moved = {role: [a - (a > axis) for a in axes if a != axis] for role, axes in named.items()}
    return Layout.model_validate({"in": moved["in"], "out": moved["out"], "batch": moved["batch"]})


@dataclass(frozen=True)
class ResolvedBlock:
    """A region of a parameter with what it receives: its spec and plan (on the region's
    shape, in ``layout``, scaled by the rule's gain and depth_scale) and the seed of its
    key path."""

    region: Region
    layout: LayoutLike
    spec: SpecBase
    plan: Plan
    seed: int
