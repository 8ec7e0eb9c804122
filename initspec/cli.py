"""The ``initspec`` command: validate, schema, presets, show, explain, sample.

Errors go to stderr with exit code 1; tracebacks only with ``--debug``. The only code the
command imports beyond initspec is what its user names: the ``MODULE:FACTORY`` of
``explain`` and the adapter package for that framework.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pathlib
import sys
from collections.abc import Sequence
from typing import Any

from initspec.errors import InitSpecError
from initspec.layout import fans
from initspec.numpy_backend import DTYPES, sample
from initspec.parse import parse, schema
from initspec.policy import load_policy, policy_schema, preset, presets


class UsageError(InitSpecError):
    """Bad command-line arguments."""


def _load_json_arg(text: str) -> Any:
    path = pathlib.Path(text)
    if not text.lstrip().startswith(("{", "[")) and path.is_file():
        text = path.read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{text[:60]!r} is neither a JSON file nor JSON text ({exc})") from None


def cmd_validate(args: argparse.Namespace) -> int:
    failed = 0
    for name in args.files:
        try:
            doc = _load_json_arg(name)
            if isinstance(doc, dict) and "kind" in doc and "rules" not in doc:
                parse(doc)
                what = "spec"
            else:
                load_policy(pathlib.Path(name) if pathlib.Path(name).is_file() else doc)
                what = "policy"
            print(f"{name}: valid {what}")
        except InitSpecError as exc:
            failed += 1
            print(f"{name}: {exc}", file=sys.stderr)
    return 1 if failed else 0


def cmd_schema(args: argparse.Namespace) -> int:
    print(json.dumps(schema() if args.which == "spec" else policy_schema(), indent=2))
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    for name in presets():
        print(f"{name:20s} {preset(name).description}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    print(preset(args.name).model_dump_json(indent=2, exclude_none=True))
    return 0


def _factory(ref: str) -> Any:
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"{ref!r}: expected MODULE:FACTORY, e.g. mypkg.models:build_model")
    sys.path.insert(0, str(pathlib.Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"cannot import {module_name!r}: {exc}") from None
    factory = getattr(module, attr, None)
    if factory is None or not callable(factory):
        raise UsageError(f"{module_name!r} has no callable {attr!r}")
    return factory()


def cmd_explain(args: argparse.Namespace) -> int:
    policy = load_policy(args.policy)
    if bool(args.torch) == bool(args.flax):
        raise UsageError("give exactly one of --torch MODULE:FACTORY and --flax MODULE:FACTORY")
    adapter = importlib.import_module("initspec_torch" if args.torch else "initspec_jax")
    model = _factory(args.torch or args.flax)
    report = adapter.explain(policy, model, seed=args.seed)
    print(report.to_json() if args.json else report.table())
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    spec = parse(_load_json_arg(args.spec))
    try:
        shape = tuple(int(d) for d in args.shape.split(",") if d.strip())
    except ValueError:
        raise UsageError(f"--shape {args.shape!r}: expected integers separated by commas") from None
    plan = spec.plan(shape, args.layout)
    x = sample(spec, shape, args.layout, seed=args.seed, dtype=args.dtype)
    try:
        fan = fans(shape, args.layout)
    except InitSpecError:
        fan = None
    out = {
        "spec": spec.model_dump(mode="json"),
        "shape": list(shape),
        "layout": args.layout,
        "fans": list(fan) if fan else None,
        "plan": plan.describe(),
        "exact": {"mean": plan.mean, "std": plan.std},
        "measured": {
            "mean": float(x.mean()) if x.size else None,
            "std": float(x.std()) if x.size else None,
            "min": float(x.min()) if x.size else None,
            "max": float(x.max()) if x.size else None,
        },
    }
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"plan      {out['plan']}")
        print(f"exact     mean={plan.mean:+.6g} std={plan.std:.6g}")
        m = out["measured"]
        if x.size:
            print(
                f"measured  mean={m['mean']:+.6g} std={m['std']:.6g} min={m['min']:.6g} max={m['max']:.6g}  (n={x.size}, {args.dtype})"
            )
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="initspec", description="Declarative, portable weight initialization."
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True)
    v = sub.add_parser("validate", help="validate spec or policy files")
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
    e.add_argument("policy", help="a policy file or a preset name")
    e.add_argument("--torch", metavar="MODULE:FACTORY")
    e.add_argument("--flax", metavar="MODULE:FACTORY")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_explain)
    sa = sub.add_parser("sample", help="plan and sample a spec with NumPy, print the moments")
    sa.add_argument("spec", help="JSON text or a file")
    sa.add_argument("--shape", required=True, help="e.g. 256,128")
    sa.add_argument("--layout", default="torch")
    sa.add_argument("--seed", type=int, default=0)
    sa.add_argument("--dtype", default="float32", choices=sorted(DTYPES))
    sa.add_argument("--json", action="store_true")
    sa.set_defaults(func=cmd_sample)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except InitSpecError as exc:
        if args.debug:
            raise
        print(f"initspec {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # a user's factory or file may fail in any way
        if args.debug:
            raise
        print(f"initspec {args.command}: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
