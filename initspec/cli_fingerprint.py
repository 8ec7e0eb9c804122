"""``initspec fingerprint FILE``: the fingerprint of a checkpoint's tensors (docs/fingerprint.md).

Reads ``.safetensors`` (its header, then each tensor's bytes mapped from the file, one at a
time: the values are never converted, so bfloat16 needs neither torch nor ml_dtypes) and
``.npz`` (NumPy's reader, one array at a time, ``allow_pickle=False``). Every tensor is
numbered in ``--layout`` (``torch`` for a torch state dict), except those named with
``--layout-of NAME=LAYOUT``; keys are the file's names (Flax leaf names read as torch's, as
in every fingerprint). Exit status 0 with the fingerprint printed, 2 for a file that cannot
be read or is not such a checkpoint (a truncated file, a header that does not describe its
data, a tensor of a dtype fingerprints do not cover).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np

from initspec.errors import InitSpecError, LoadError
from initspec.fingerprints import Fingerprint, assemble, param_fingerprint, shard_sum
from initspec.jsonload import loads, shown_name
from initspec.layout import LAYOUTS

MAX_HEADER = 100 * 1024 * 1024  # the safetensors format's own limit
_SAFETENSORS_DTYPES = {"F16": "float16", "BF16": "bfloat16", "F32": "float32", "F64": "float64"}
_UINT = {"float16": np.uint16, "bfloat16": np.uint16, "float32": np.uint32, "float64": np.uint64}
_NPZ_DTYPES = ("float16", "float32", "float64")

Tensor = tuple[str, np.ndarray, str]  # (name, bits or values, dtype name)


def _bad(path: str, message: str) -> LoadError:
    return LoadError((), shown_name(path), message)


def _safetensors(path: str) -> Iterator[Tensor]:
    """Each tensor of a safetensors file as its bits, mapped from the file, in file order."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(8)
            n = int.from_bytes(head, "little") if len(head) == 8 else -1
            if not 2 <= n <= min(MAX_HEADER, size - 8):
                raise _bad(path, "not a safetensors file: its first 8 bytes give no header size")
            raw = f.read(n)
    except OSError as exc:
        raise _bad(path, f"cannot read this checkpoint: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _bad(path, "not a safetensors file: its header is not UTF-8 JSON") from None
    header = loads(text, source=shown_name(path), what="safetensors header")
    if not isinstance(header, dict):
        raise _bad(path, "not a safetensors file: its header is not a JSON object")
    data_start, data_size = 8 + n, size - 8 - n
    entries = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        where = f"tensor {name!r}"
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise _bad(path, f"{where}: not a safetensors entry (dtype, shape, data_offsets)")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in _SAFETENSORS_DTYPES:
            raise _bad(
                path,
                f"{where}: dtype {str(dtype)[:20]!r} has no fingerprint; allowed: "
                f"{', '.join(_SAFETENSORS_DTYPES)}",
            )
        if not (
            isinstance(shape, list)
            and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
            and isinstance(offsets, list)
            and len(offsets) == 2
            and all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
        ):
            raise _bad(path, f"{where}: shape and data_offsets must be lists of integers")
        name_dtype = _SAFETENSORS_DTYPES[dtype]
        itemsize = np.dtype(_UINT[name_dtype]).itemsize
        begin, end = offsets
        if not 0 <= begin <= end <= data_size or end - begin != math.prod(shape) * itemsize:
            raise _bad(
                path,
                f"{where}: data_offsets {offsets} do not hold a {dtype} tensor of shape "
                f"{shape} within the file's {data_size} data bytes (truncated?)",
            )
        entries.append((begin, name, name_dtype, tuple(shape)))
    for begin, name, name_dtype, shape in sorted(entries):
        uint = _UINT[name_dtype]
        if math.prod(shape) == 0:
            yield name, np.zeros(shape, uint), name_dtype
            continue
        bits = np.memmap(path, dtype=uint, mode="r", offset=data_start + begin, shape=shape or (1,))
        yield name, bits.reshape(shape), name_dtype


def _npz(path: str) -> Iterator[Tensor]:
    """Each array of an ``.npz`` file, read one at a time."""
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as exc:  # zipfile.BadZipFile, OSError, ValueError: any of them
        raise _bad(path, f"not a readable .npz file ({type(exc).__name__})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise _bad(path, "not an .npz archive (a single .npy array?)")
    with archive:
        for name in archive.files:
            try:
                arr = archive[name]
            except Exception as exc:  # a corrupt member, an object array
                raise _bad(path, f"array {name!r} cannot be read ({type(exc).__name__})") from None
            if arr.dtype.name not in _NPZ_DTYPES:
                raise _bad(
                    path,
                    f"array {name!r}: dtype {arr.dtype.name!r} has no fingerprint; allowed: "
                    f"{', '.join(_NPZ_DTYPES)}",
                )
            yield name, arr, arr.dtype.name


def file_fingerprint(
    path: str, layout: str = "torch", layouts: dict[str, str] | None = None, threads: int = 1
) -> Fingerprint:
    """The fingerprint of a ``.safetensors`` or ``.npz`` checkpoint, one tensor at a time."""
    layouts = dict(layouts or {})
    if path.endswith(".safetensors"):
        tensors = _safetensors(path)
    elif path.endswith(".npz"):
        tensors = _npz(path)
    else:
        raise _bad(path, "not a checkpoint initspec reads: expected a .safetensors or .npz file")
    out = []
    for name, values, dtype in tensors:
        lay = layouts.pop(name, layout)
        total = shard_sum(values, values.shape, lay, dtype=dtype, path=name, threads=threads)
        out.append(param_fingerprint(name, dtype, values.shape, lay, total))
    if layouts:
        raise _bad(path, f"--layout-of names tensors the file does not have: {sorted(layouts)}")
    return assemble(out)


def _layout_of(text: str) -> tuple[str, str]:
    name, sep, layout = text.rpartition("=")
    if not sep or not name or layout not in LAYOUTS:
        raise argparse.ArgumentTypeError(
            f"expected NAME=LAYOUT with a layout among {', '.join(LAYOUTS)}, got {text!r}"
        )
    return name, layout


def add_parser(sub: Any) -> None:
    """Register ``fingerprint`` on the ``initspec`` command's subparsers."""
    p = sub.add_parser("fingerprint", help="the fingerprint of a .safetensors or .npz checkpoint")
    p.add_argument("file", help="a .safetensors or .npz checkpoint")
    p.add_argument(
        "--layout",
        default="torch",
        choices=sorted(LAYOUTS),
        help="the layout the tensors are stored in (default torch; flax for Flax kernels)",
    )
    p.add_argument(
        "--layout-of",
        action="append",
        default=[],
        type=_layout_of,
        metavar="NAME=LAYOUT",
        help="the layout of one tensor (a Flax embedding table: NAME=embedding)",
    )
    p.add_argument("--threads", type=int, default=1, help="hashing threads (default 1)")
    p.add_argument("--json", action="store_true", help="the fingerprints as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.threads < 1:
        raise LoadError((), args.threads, "--threads must be at least 1")
    try:
        fp = file_fingerprint(args.file, args.layout, dict(args.layout_of), args.threads)
    except LoadError:
        raise
    except InitSpecError as exc:  # what the file holds cannot be fingerprinted
        raise _bad(args.file, str(exc)) from None
    text = fp.table()
    if args.json:
        text = json.dumps({"file": shown_name(args.file), **fp.to_dict()}, indent=2)
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except BrokenPipeError:  # a reader that went away (| head)
        pass
    return 0
