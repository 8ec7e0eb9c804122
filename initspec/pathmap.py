"""``path_map``: a part of a model (a pipeline stage, an expert shard) named as the whole.

A pipeline stage holds some of the model's layers under its own, local names (``layers.0``
of stage 2 is ``layers.4`` of the model); expert parallelism gives each rank experts
``[a, b)`` of a stacked tensor. Seeds, portable-stream keys and rule matching all go by a
parameter's canonical path, so a stage initialized under its local names gets other values
than the whole model. ``path_map`` renames each described parameter to its global name
before anything is resolved; with a ``GlobalShard``, it also says which part of the
global tensor the local one is, so fans come from the global shape and the portable
stream computes that part from its global indices. Every parameter of a stage then gets
exactly the values it has in the whole model initialized at once.

The map is a mapping from local canonical paths (``layers.0.attn.wq.weight``; Flax's
``layers_0.attn.wq.kernel`` is canonically ``layers_0.attn.wq.kernel``, as the report's
``path`` shows) to global paths or ``GlobalShard`` values, or a function from a local path
to one of those (None: unchanged). Paths it does not name stay as they are. Two local
parameters may not get one global name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from initspec.errors import InitSpecError, printable
from initspec.layout import check_shape
from initspec.resolve import ParamInfo

T = TypeVar("T")


@dataclass(frozen=True)
class GlobalShard:
    """The local tensor is the part at ``offset`` (one start per dimension) of the
    parameter ``path`` of global ``shape``: ``GlobalShard("layers.1.moe.w1", (8, 64, 32),
    (2, 0, 0))`` for a rank holding experts 2 and 3 of 8 (local shape (2, 64, 32))."""

    path: str
    shape: tuple[int, ...]
    offset: tuple[int, ...]


PathMap = Mapping[str, "str | GlobalShard"] | Callable[[str], "str | GlobalShard | None"]


def _target(path_map: PathMap, local: str) -> str | GlobalShard | None:
    if isinstance(path_map, Mapping):
        return path_map.get(local)
    if callable(path_map):
        return path_map(local)
    raise InitSpecError(
        f"path_map must be a mapping or a function of the local path, got {type(path_map).__name__}"
    )


def _heads(local: str, glob: str) -> tuple[str, str]:
    """The dotted prefixes that differ between a local and a global path (their common
    dotted suffix removed): ``layers.0.attn.wq.weight`` -> ``layers.4.attn.wq.weight``
    gives ``("layers.0", "layers.4")``, used to rename the enclosing modules' paths."""
    a, b = local.split("."), glob.split(".")
    while len(a) > 1 and len(b) > 1 and a[-1] == b[-1]:
        a, b = a[:-1], b[:-1]
    return ".".join(a), ".".join(b)


def _rename(name: str, heads: tuple[str, str]) -> str:
    head, new = heads
    if name == head:
        return new
    if name.startswith(head + "."):
        return new + name[len(head) :]
    return name


def _shard(info: ParamInfo, part: GlobalShard) -> tuple[tuple[int, ...], tuple[slice, ...]]:
    where = (
        f"path_map: {printable(info.path)!r} (local shape {info.shape}) -> {printable(part.path)!r}"
    )
    try:
        shape = check_shape(part.shape)
        offset = check_shape(part.offset)
    except InitSpecError as exc:
        raise InitSpecError(f"{where}: {exc}") from None
    if len(shape) != len(info.shape) or len(offset) != len(info.shape):
        raise InitSpecError(
            f"{where}: global shape {shape} and offset {offset} need one entry per dimension "
            f"of the local shape {info.shape}"
        )
    for d, (o, n, g) in enumerate(zip(offset, info.shape, shape, strict=True)):
        if o + n > g:
            raise InitSpecError(
                f"{where}: dimension {d}: offset {o} + local size {n} = {o + n} exceeds the "
                f"global size {g}"
            )
    return shape, tuple(slice(o, o + n) for o, n in zip(offset, info.shape, strict=True))


def map_paths(
    params: list[ParamInfo], targets: Mapping[str, T], path_map: PathMap | None
) -> tuple[list[ParamInfo], dict[str, T]]:
    """``params`` renamed to their global names (and shapes, for a ``GlobalShard``),
    ``targets`` keyed by them; ``framework_path`` keeps the local name. ``InitSpecError``
    when two parameters would get one global name, or a shard does not fit."""
    if path_map is None:
        return params, dict(targets)
    out: list[ParamInfo] = []
    owner: dict[str, str] = {}
    problems = []
    for info in params:
        to = _target(path_map, info.path)
        if to is None:
            out.append(info)
            glob = info.path
        else:
            glob = to.path if isinstance(to, GlobalShard) else to
            if not isinstance(glob, str) or not glob:
                raise InitSpecError(
                    f"path_map: {printable(info.path)!r} maps to {printable(repr(to))}, not a "
                    f"path or a GlobalShard"
                )
            heads = _heads(info.path, glob)
            changes: dict[str, Any] = {
                "path": glob,
                "framework_path": info.framework_path or info.path,
                "shared_with": tuple(_rename(n, heads) for n in info.shared_with),
                "aliases": tuple(
                    replace(a, path=_rename(a.path, heads), ancestors=_ancestors(a, heads))
                    for a in info.aliases
                ),
                "ancestors": _ancestors(info, heads),
            }
            if isinstance(to, GlobalShard):
                changes["shape"], changes["shard"] = _shard(info, to)
            out.append(replace(info, **changes))
        if glob in owner:
            problems.append(
                f"path_map maps {printable(owner[glob])!r} and {printable(info.path)!r} to one "
                f"global name {printable(glob)!r}"
            )
        owner[glob] = info.path
    if problems:
        raise InitSpecError("; ".join(problems) + "; nothing was written")
    renamed = {o.path: targets[i.path] for i, o in zip(params, out, strict=True)}
    return out, renamed


def _ancestors(info: ParamInfo, heads: tuple[str, str]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return tuple((_rename(path, heads), types) for path, types in info.ancestors)
