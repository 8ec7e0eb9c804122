"""``initspec fingerprint FILE``: the fingerprint of a checkpoint's tensors (docs/fingerprint.md).

Reads what ``initspec check`` reads, with the same reader (``initspec.checkpoint``: one
tensor at a time; bfloat16 as its bit patterns, so it needs neither torch nor ml_dtypes):
``.safetensors`` (the ``safetensors`` package, ``initspec[check]``), ``.npz`` (no pickles)
and ``torch.save`` state dicts (``weights_only=True``). Every tensor is
numbered in ``--layout`` (``torch`` for a torch state dict), except those named with
``--layout-of NAME=LAYOUT``; keys are the file's names (Flax leaf names read as torch's, as
in every fingerprint). Exit status 0 with the fingerprint printed, 2 for a file that cannot
be read or is not such a checkpoint (a truncated file, a header that does not describe its
data, a tensor of a dtype fingerprints do not cover).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from initspec.checkpoint import read_checkpoint
from initspec.errors import InitSpecError, LoadError
from initspec.fingerprints import Fingerprint, assemble, param_fingerprint, shard_sum
from initspec.jsonload import shown_name
from initspec.layout import LAYOUTS

FINGERPRINT_DTYPES = ("float16", "bfloat16", "float32", "float64")


def _bad(path: str, message: str) -> LoadError:
    return LoadError((), shown_name(path), message)


def file_fingerprint(
    path: str, layout: str = "torch", layouts: dict[str, str] | None = None, threads: int = 1
) -> Fingerprint:
    """The fingerprint of a checkpoint (``.safetensors``, ``.npz``, a ``torch.save`` state
    dict), read one tensor at a time by the reader ``initspec check`` uses
    (``initspec.checkpoint``)."""
    layouts = dict(layouts or {})
    out = []
    for name, stored in read_checkpoint(path).items():
        if stored.dtype not in FINGERPRINT_DTYPES:
            raise _bad(
                path,
                f"tensor {name!r}: dtype {stored.dtype!r} has no fingerprint; allowed: "
                f"{', '.join(FINGERPRINT_DTYPES)}",
            )
        values = stored.load()  # bfloat16 as its uint16 bit patterns
        lay = layouts.pop(name, layout)
        total = shard_sum(values, values.shape, lay, dtype=stored.dtype, path=name, threads=threads)
        out.append(param_fingerprint(name, stored.dtype, values.shape, lay, total))
        del values
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
        text = str(exc)
        named = f"{shown_name(args.file)}: "
        raise _bad(args.file, text[len(named):] if text.startswith(named) else text) from None
    text = fp.table()
    if args.json:
        text = json.dumps({"file": shown_name(args.file), **fp.to_dict()}, indent=2)
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except BrokenPipeError:  # a reader that went away (| head)
        pass
    return 0
