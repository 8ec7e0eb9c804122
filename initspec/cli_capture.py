"""``initspec capture``: a PyTorch model's own init, recorded while it is built, as a policy.

``initspec capture --torch MODULE:FACTORY [--also MODULE:FACTORY] [-o policy.json] [--json]
[--device meta|cpu]`` imports ``FACTORY`` (a zero-argument callable that builds the model the
way its users do, running its own init) and runs ``initspec_torch.capture_report`` on it;
prints the rules and the per-parameter table (recorded calls -> rule -> plan), or with
``--json`` the report as JSON; ``-o`` writes the policy to a file. Exit status as for every
subcommand (``initspec.cli``): 1 for an invalid input, 2 when the factory cannot be imported,
raises, returns no module or initializes nothing.

``initspec.cli`` registers it with ``add_parser(sub, UsageError, out, _factory_ref)``: its
error class (exit status 2), its printer (control characters escaped, a closed pipe
silenced) and its ``MODULE:FACTORY`` parser are passed in, so this module imports nothing
from ``initspec.cli`` (which imports it) and the core keeps no import cycle.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import os
import pathlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from initspec.capture import BuildError
from initspec.errors import require

OK = 0


@dataclass(frozen=True)
class _Cli:
    """What the command takes from ``initspec.cli``."""

    usage_error: type[Exception]
    out: Callable[[str], None]
    factory_ref: Callable[[str], tuple[str, str]]


def add_parser(
    sub: Any,
    usage_error: type[Exception],
    out: Callable[[str], None],
    factory_ref: Callable[[str], tuple[str, str]],
) -> None:
    """Register the ``capture`` subcommand on ``sub`` (argparse subparsers)."""
    c = sub.add_parser(
        "capture", help="record a torch model's own init while it is built, as a policy"
    )
    c.add_argument(
        "--torch", metavar="MODULE:FACTORY", required=True, help="builds the model (no arguments)"
    )
    c.add_argument(
        "--also",
        metavar="MODULE:FACTORY",
        help="the same architecture at another width: stds that follow a fan become fan-based",
    )
    c.add_argument("-o", "--output", metavar="FILE", help="write the policy (JSON) to FILE")
    c.add_argument("--json", action="store_true", help="print the whole report as JSON")
    c.add_argument(
        "--device",
        default="meta",
        help="where to build: meta (default; no memory; falls back to cpu where the init "
        "needs values) or a torch device such as cpu",
    )
    c.set_defaults(func=functools.partial(run, cli=_Cli(usage_error, out, factory_ref)))


def _callable(ref: str, cli: _Cli) -> Any:
    """The object ``MODULE:FACTORY`` names, imported (the current directory on the path,
    as ``initspec explain`` does), not called."""
    module_name, attr = cli.factory_ref(ref)
    if str(pathlib.Path.cwd()) not in sys.path:
        sys.path.insert(0, str(pathlib.Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise cli.usage_error(
            f"cannot import {module_name!r}: {type(exc).__name__}: {exc}"
        ) from None
    factory = getattr(module, attr, None)
    if factory is None or not callable(factory):
        raise cli.usage_error(f"{module_name!r} has no callable {attr!r}")
    return factory


def run(args: argparse.Namespace, cli: _Cli) -> int:
    cli.factory_ref(args.torch)  # before the (slow) torch import
    if args.also:
        cli.factory_ref(args.also)
    # By name: the core never imports an adapter at module level, and a missing torch is
    # the extra to install (exit 2).
    capture_report = require(
        "initspec_torch.capture_build", "torch", "initspec capture --torch"
    ).capture_report

    build = _callable(args.torch, cli)
    also = _callable(args.also, cli) if args.also else None
    try:
        report = capture_report(build, also=also, device=args.device)
    except BuildError as exc:
        raise cli.usage_error(str(exc)) from None
    if args.output:
        text = report.policy.model_dump_json(indent=2, exclude_none=True)
        try:
            with open(os.fspath(args.output), "w", encoding="utf-8") as f:
                f.write(text + "\n")
        except OSError as exc:
            raise cli.usage_error(f"cannot write {args.output!r}: {exc.strerror}") from None
    cli.out(report.to_json() if args.json else str(report))
    return OK
