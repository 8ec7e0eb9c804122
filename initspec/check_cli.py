"""``initspec check FILE --policy P``: a checkpoint against a policy (``initspec.check``).

Exit status: 0 when every parameter is ok; 1 when any is a mismatch (or, with ``--strict``,
unmatched, or a rule matches nothing); 2 when the check cannot run (a file that is not a
checkpoint, a truncated one, a policy that cannot be read or matches nothing, a shape the
policy cannot plan, a rule matching a non-float tensor, a ``--model`` that fails).

Descriptions of the tensors come from their names and shapes (``checker.describe_tensors``),
or, with ``--model MODULE:FACTORY``, from the module the factory builds: a torch
``nn.Module`` (its ``state_dict`` names) or a Flax ``nnx.Module``.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import pathlib
from collections.abc import Callable
from typing import Any

from initspec.checker import CheckReport, check
from initspec.checkpoint import read_checkpoint
from initspec.errors import InitSpecError, printable
from initspec.resolve import ParamInfo

OK, MISMATCH, BAD_INPUT = 0, 1, 2


class CheckInputError(InitSpecError):
    """The check could not run on this input (exit status 2)."""


Factory = Callable[[str], Any]
Write = Callable[[str], None]


def add_parser(sub: Any, *, factory: Factory, out: Write, err: Write) -> None:
    """Register ``check`` on the ``initspec`` command's subparsers. ``factory`` builds the
    model of a ``MODULE:FACTORY`` reference; ``out`` / ``err`` print a line (the command's
    own helpers, passed in so this module does not import ``initspec.cli``)."""
    c = sub.add_parser("check", help="check a checkpoint's tensors against a policy")
    c.add_argument("file", help=".safetensors, .npz, or a torch.save state dict")
    c.add_argument("--policy", required=True, help="a policy file, JSON text or a preset name")
    c.add_argument("--layout", choices=["torch", "flax"], default="torch", help="kernel layout")
    c.add_argument("--alpha", type=float, default=1e-4, help="false-alarm probability (Holm)")
    c.add_argument("--json", action="store_true", help="the report as JSON")
    c.add_argument(
        "--strict",
        action="store_true",
        help="unmatched tensors and rules matching nothing fail the check (exit 1)",
    )
    c.add_argument("--model", metavar="MODULE:FACTORY", help="describe tensors from this model")
    c.set_defaults(func=functools.partial(run, factory=factory, out=out, err=err))


def _model_params(ref: str, factory: Factory) -> list[ParamInfo]:
    model = factory(ref)
    kind = type(model).__module__.split(".")[0]
    if kind == "torch" or any(c.__module__.startswith("torch.") for c in type(model).__mro__):
        adapter = importlib.import_module("initspec_torch.describe")
        return [p.info for p in adapter.describe(model)]
    try:
        nnx = importlib.import_module("flax.nnx")
    except ImportError:
        nnx = None
    if nnx is not None and isinstance(model, nnx.Module):
        traverse = importlib.import_module("initspec_jax.traverse")
        return [p.info for p in traverse.describe_nnx(model)]
    raise CheckInputError(
        f"--model {printable(ref)}: built a {type(model).__name__}; expected a torch "
        f"nn.Module or a Flax nnx.Module"
    )


def _run_check(args: argparse.Namespace, factory: Factory) -> CheckReport:
    source = printable(str(args.file))
    tensors = read_checkpoint(pathlib.Path(args.file))
    params: list[ParamInfo] | None = None
    if args.model:
        params = _model_params(args.model, factory)
    try:
        return check(
            tensors,
            args.policy,
            layout=args.layout,
            alpha=args.alpha,
            params=params,
            strict=args.strict,
            source=source,
        )
    except InitSpecError as exc:
        if source in str(exc):
            raise
        raise CheckInputError(f"{source}: {exc}") from None


def run(args: argparse.Namespace, *, factory: Factory, out: Write, err: Write) -> int:
    try:
        report = _run_check(args, factory)
    except InitSpecError as exc:
        if getattr(args, "debug", False):
            raise
        err(f"initspec check: error: {exc}")
        return BAD_INPUT
    out(report.to_json() if args.json else report.table())
    return OK if report.ok else MISMATCH
