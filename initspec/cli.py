"""The ``initspec`` command: validate, schema, presets, show, explain, sample.

Exit status: 0 when everything is valid and done; 1 when an input (a spec, a policy, a
preset name, a shape for a spec) is invalid; 2 when the command could not run (a file that
cannot be read, bad arguments, a model factory that cannot be imported or fails). Errors go
to stderr, tracebacks only with ``--debug``; output and messages never carry terminal
control characters from a policy or a model. The only code the command imports beyond
initspec is what its user names: the ``MODULE:FACTORY`` of ``explain`` and the adapter
package for that framework.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import pathlib
import sys
from collections.abc import Sequence
from typing import Any

from initspec.errors import InitSpecError, LoadError, PolicyError, SpecError, printable
from initspec.jsonload import loads, read_file
from initspec.layout import fans
from initspec.numpy_backend import DTYPES, sample
from initspec.parse import parse, schema
from initspec.policy import load_policy, policy_schema, preset, presets

OK, INVALID, CANNOT_RUN = 0, 1, 2
MAX_SAMPLE = 10**8  # elements `initspec sample` draws (800 MB of float64)


class UsageError(InitSpecError):
    """Bad command-line arguments, or a model factory that cannot be used."""


def _safe(text: str) -> str:
    """Each line of ``text`` with control characters escaped (newlines kept)."""
    return "\n".join(printable(line) for line in str(text).split("\n"))


def _write(stream: Any, text: str) -> None:
    """Print a line; a reader that went away (``| head``) silences the rest of the output."""
    try:
        try:
            print(text, file=stream, flush=True)
        except UnicodeEncodeError:  # a terminal that cannot show a name: escapes instead
            encoding = getattr(stream, "encoding", None) or "ascii"
            print(
                text.encode(encoding, "backslashreplace").decode(encoding),
                file=stream,
                flush=True,
            )
    except BrokenPipeError:
        _silence(stream)


def _silence(stream: Any) -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def out(text: str) -> None:
    _write(sys.stdout, text)


def err(text: str) -> None:
    _write(sys.stderr, _safe(text))


def exit_status(exc: BaseException) -> int:
    """1 for an invalid input, 2 for a command that could not run."""
    if isinstance(exc, (LoadError, UsageError)):
        return CANNOT_RUN
    if isinstance(exc, InitSpecError):
        return INVALID
    return CANNOT_RUN


def _is_json_text(text: str) -> bool:
    return text.lstrip().startswith(("{", "["))


def _load_json_arg(text: str, what: str, error_cls: type[SpecError]) -> Any:
    """JSON given on the command line, or read from the file it names."""
    if _is_json_text(text):
        return loads(text, error_cls, what=what)
    return loads(read_file(text, what, error_cls), error_cls, source=text, what=what)


def _is_spec(doc: Any) -> bool:
    return isinstance(doc, dict) and "kind" in doc and "rules" not in doc and "initspec" not in doc


def cmd_validate(args: argparse.Namespace) -> int:
    status = OK
    for name in args.files:
        try:
            if not _is_json_text(name) and name in presets():
                preset(name)
                what = "policy (built-in preset)"
            else:
                doc = _load_json_arg(name, "policy or spec", PolicyError)
                if _is_spec(doc):
                    parse(doc)
                    what = "spec"
                else:
                    load_policy(doc if _is_json_text(name) else pathlib.Path(name))
                    what = "policy"
            out(f"{printable(name)}: valid {what}")
        except Exception as exc:  # every file is checked, whatever the others do
            if args.debug:
                raise
            status = max(status, exit_status(exc))
            kind = "" if isinstance(exc, InitSpecError) else f"{type(exc).__name__}: "
            err(f"{printable(name)}: {kind}{exc}")
    return status


def cmd_schema(args: argparse.Namespace) -> int:
    out(json.dumps(schema() if args.which == "spec" else policy_schema(), indent=2))
    return OK


def cmd_presets(args: argparse.Namespace) -> int:
    for name in presets():
        out(f"{name:20s} {printable(preset(name).description)}")
    return OK


def cmd_show(args: argparse.Namespace) -> int:
    out(preset(args.name).model_dump_json(indent=2, exclude_none=True))
    return OK


def _factory_ref(ref: str) -> tuple[str, str]:
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"{ref!r}: expected MODULE:FACTORY, e.g. mypkg.models:build_model")
    return module_name, attr


def _factory(ref: str) -> Any:
    module_name, attr = _factory_ref(ref)
    sys.path.insert(0, str(pathlib.Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise UsageError(f"cannot import {module_name!r}: {type(exc).__name__}: {exc}") from None
    factory = getattr(module, attr, None)
    if factory is None or not callable(factory):
        raise UsageError(f"{module_name!r} has no callable {attr!r}")
    try:
        return factory()
    except Exception as exc:
        raise UsageError(f"{ref} failed: {type(exc).__name__}: {exc}") from None


def cmd_explain(args: argparse.Namespace) -> int:
    if bool(args.torch) == bool(args.flax):
        raise UsageError("give exactly one of --torch MODULE:FACTORY and --flax MODULE:FACTORY")
    _factory_ref(args.torch or args.flax)  # before the (slow) adapter import
    policy = load_policy(args.policy)
    try:
        adapter = importlib.import_module("initspec_torch" if args.torch else "initspec_jax")
    except ImportError as exc:
        raise UsageError(f"the {'torch' if args.torch else 'jax'} adapter: {exc}") from None
    model = _factory(args.torch or args.flax)
    # No --seed: the policy's own seed (or 0), as apply would use.
    report = adapter.explain(policy, model, seed=args.seed, strict=True if args.strict else None)
    out(report.to_json() if args.json else report.table())
    return OK


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def cmd_sample(args: argparse.Namespace) -> int:
    spec = parse(_load_json_arg(args.spec, "spec", SpecError))
    try:
        shape = tuple(int(d) for d in args.shape.split(",") if d.strip())
    except ValueError:
        raise UsageError(
            f"--shape {args.shape[:60]!r}: expected integers separated by commas"
        ) from None
    plan = spec.plan(shape, args.layout)
    if math.prod(shape) > MAX_SAMPLE:
        raise UsageError(f"--shape {shape}: at most {MAX_SAMPLE:,} elements are sampled")
    x = sample(spec, shape, args.layout, seed=args.seed, dtype=args.dtype)
    try:
        fan = fans(shape, args.layout)
    except InitSpecError:
        fan = None
    measured: dict[str, float | None] = {"mean": None, "std": None, "min": None, "max": None}
    if x.size:
        import numpy as np

        x64 = np.asarray(x, dtype=np.float64)
        measured = {
            "mean": _finite(float(x64.mean())),
            "std": _finite(float(x64.std())),
            "min": _finite(float(x64.min())),
            "max": _finite(float(x64.max())),
        }
    result = {
        "spec": spec.model_dump(mode="json"),
        "shape": list(shape),
        "layout": args.layout,
        "fans": list(fan) if fan else None,
        "plan": plan.describe(),
        "exact": {"mean": _finite(plan.mean), "std": _finite(plan.std)},
        "measured": measured,
    }
    if args.json:
        out(json.dumps(result, indent=2, allow_nan=False))
    else:
        out(f"plan      {result['plan']}")
        out(f"exact     mean={plan.mean:+.6g} std={plan.std:.6g}")
        if x.size:
            m = {k: (float("nan") if v is None else v) for k, v in measured.items()}
            out(
                f"measured  mean={m['mean']:+.6g} std={m['std']:.6g} min={m['min']:.6g} "
                f"max={m['max']:.6g}  (n={x.size}, {args.dtype})"
            )
    return OK


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse's own exit status 2, no traceback
        self.print_usage(sys.stderr)
        err(f"{self.prog}: error: {message}")
        raise SystemExit(CANNOT_RUN)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="initspec", description="Declarative, portable weight initialization.")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    v = sub.add_parser("validate", help="validate spec or policy files (or presets, JSON text)")
    v.add_argument("files", nargs="+")
    v.set_defaults(func=cmd_validate)
    s = sub.add_parser("schema", help="print the JSON Schema of a spec or a policy")
    s.add_argument("which", nargs="?", choices=["spec", "policy"], default="policy")
    s.set_defaults(func=cmd_schema)
    sub.add_parser("presets", help="list the built-in presets").set_defaults(func=cmd_presets)
    sh = sub.add_parser("show", help="print a preset as JSON")
    sh.add_argument("name")
    sh.set_defaults(func=cmd_show)
    e = sub.add_parser("explain", help="resolve a policy against a model, without initializing")
    e.add_argument("policy", help="a policy file, JSON text or a preset name")
    e.add_argument("--torch", metavar="MODULE:FACTORY")
    e.add_argument("--flax", metavar="MODULE:FACTORY")
    e.add_argument("--seed", type=int, default=None, help="default: the policy's seed, else 0")
    e.add_argument("--json", action="store_true")
    e.add_argument(
        "--strict",
        action="store_true",
        help="a rule that matches nothing or a parameter no rule matches is an error (exit 1)",
    )
    e.set_defaults(func=cmd_explain)
    sa = sub.add_parser("sample", help="plan and sample a spec with NumPy, print the moments")
    sa.add_argument("spec", help="JSON text or a file")
    sa.add_argument("--shape", required=True, help="e.g. 256,128")
    sa.add_argument("--layout", default="torch")
    sa.add_argument("--seed", type=int, default=0)
    sa.add_argument("--dtype", default="float32", choices=sorted(DTYPES))
    sa.add_argument("--json", action="store_true")
    sa.set_defaults(func=cmd_sample)
    from initspec import cli_capture

    cli_capture.add_parser(sub, UsageError, out, _factory_ref)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except Exception as exc:  # a user's factory or file may fail in any way
        if args.debug:
            raise
        kind = "" if isinstance(exc, InitSpecError) else f"{type(exc).__name__}: "
        err(f"initspec {args.command}: error: {kind}{exc}")
        return exit_status(exc)
    finally:
        try:
            sys.stdout.flush()
        except (BrokenPipeError, ValueError, OSError):
            _silence(sys.stdout)
