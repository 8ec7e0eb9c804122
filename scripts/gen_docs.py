"""Write docs/catalog.md and docs/policy.md from the code and its JSON Schema.

`make docs` runs this before `mkdocs build --strict`; a test checks the committed pages are
what this script writes, so the reference cannot drift from the code.
"""

from __future__ import annotations

import inspect
import json
import pathlib
import sys

import initspec
from initspec.parse import FIELD_ALIASES, KIND_ALIASES

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs"

# torch / jax / flax / keras equivalents, and the trap to know about.
EQUIV: dict[str, tuple[str, str, str, str]] = {
    "zeros": ("zeros_", "zeros", "Zeros", ""),
    "ones": ("ones_", "ones", "Ones", ""),
    "constant": ("constant_(val)", "constant(value)", "Constant(value)", ""),
    "uniform": (
        "uniform_(a=0, b=1)",
        "uniform(scale) is U[0, scale)",
        "RandomUniform(-0.05, 0.05)",
        "defaults differ: torch U[0,1), jax U[0,0.01), keras U(+-0.05)",
    ),
    "normal": (
        "normal_(mean=0, std=1)",
        "normal(stddev=0.01), no mean",
        "RandomNormal(0, 0.05)",
        "defaults differ per framework",
    ),
    "truncated_normal": (
        "trunc_normal_(a, b): absolute bounds",
        "truncated_normal(lower, upper): std units",
        "TruncatedNormal: +-2 std",
        "bounds='absolute' vs 'std'; none correct the variance",
    ),
    "variance_scaling": (
        "(kaiming_*/xavier_* are special cases)",
        "variance_scaling",
        "VarianceScaling",
        "keras 'normal' = truncated; here 'normal' is untruncated (keras 'untruncated_normal')",
    ),
    "fan_truncated_normal": (
        "trunc_normal_(std=sqrt(s/fan), a=-c*std, b=c*std)",
        "-",
        "-",
        "torchtitan's output layer: cutoff 3, no correction",
    ),
    "glorot_uniform": (
        "xavier_uniform_",
        "glorot_uniform / xavier_uniform",
        "GlorotUniform",
        "same distribution as torch xavier_uniform",
    ),
    "glorot_normal": (
        "-",
        "glorot_normal / xavier_normal",
        "GlorotNormal",
        "truncated; torch's xavier_normal_ is not",
    ),
    "he_uniform": (
        "kaiming_uniform_(nonlinearity='relu')",
        "he_uniform / kaiming_uniform",
        "HeUniform",
        "",
    ),
    "he_normal": (
        "-",
        "he_normal / kaiming_normal",
        "HeNormal",
        "truncated; torch's kaiming_normal_ is not",
    ),
    "lecun_uniform": (
        "kaiming_uniform_(nonlinearity='linear')",
        "lecun_uniform",
        "LecunUniform",
        "",
    ),
    "lecun_normal": ("-", "lecun_normal (Flax's default kernel init)", "LecunNormal", "truncated"),
    "xavier_uniform": (
        "xavier_uniform_(gain)",
        "variance_scaling(gain**2, 'fan_avg', 'uniform')",
        "VarianceScaling(gain**2, 'fan_avg', 'uniform')",
        "",
    ),
    "xavier_normal": (
        "xavier_normal_(gain)",
        "variance_scaling(gain**2, 'fan_avg', 'normal')",
        "VarianceScaling(..., 'untruncated_normal')",
        "jax's xavier_normal is truncated: use glorot_normal for that",
    ),
    "kaiming_uniform": (
        "kaiming_uniform_(a, mode, nonlinearity)",
        "variance_scaling(gain**2, mode, 'uniform')",
        "VarianceScaling(gain**2, mode, 'uniform')",
        "torch default gain is sqrt(2) (a=0), not calculate_gain('leaky_relu')",
    ),
    "kaiming_normal": (
        "kaiming_normal_(a, mode, nonlinearity)",
        "variance_scaling(gain**2, mode, 'normal')",
        "VarianceScaling(..., 'untruncated_normal')",
        "jax's kaiming_normal is truncated: use he_normal for that",
    ),
    "torch_linear_weight": (
        "Linear/Conv reset_parameters: kaiming_uniform_(a=sqrt(5))",
        "variance_scaling(1/3, 'fan_in', 'uniform')",
        "VarianceScaling(1/3, 'fan_in', 'uniform')",
        "= U(+-1/sqrt(fan_in)); ConvTranspose: mode='fan_out' with torch_transposed",
    ),
    "torch_linear_bias": (
        "Linear/Conv bias: U(+-1/sqrt(fan_in of the weight))",
        "-",
        "-",
        "needs the weight's fans (adapters pass them)",
    ),
    "torch_rnn": (
        "RNN/LSTM/GRU: U(+-1/sqrt(hidden_size))",
        "-",
        "-",
        "needs the hidden size (adapters pass it)",
    ),
    "orthogonal": (
        "orthogonal_(gain)",
        "orthogonal(scale, column_axis=-1)",
        "Orthogonal(gain)",
        "built in float64, so bf16/fp16 work (torch's raises)",
    ),
    "delta_orthogonal": (
        "-",
        "delta_orthogonal(scale)",
        "-",
        "centre (k-1)//2; torch's dirac_ uses k//2",
    ),
    "eye": ("eye_", "-", "Identity(gain)", "keras does not serialize gain; initspec does"),
    "dirac": ("dirac_(groups)", "-", "-", "centre k//2"),
    "sparse": (
        "sparse_(sparsity, std=0.01)",
        "-",
        "-",
        "torch has no default sparsity; torch's zero pattern ignores the generator",
    ),
}


def _default(field) -> str:
    return json.dumps(field.default)


def catalog() -> str:
    lines = [
        "# Spec catalog",
        "",
        "Generated by `scripts/gen_docs.py` from the code; do not edit by hand.",
        "",
        'Every field has a default, so `{"kind": "normal"}` is valid. Aliases are accepted on input and',
        "written back under the canonical names.",
        "",
        "| kind | torch | jax / flax | keras 3 | note |",
        "|---|---|---|---|---|",
    ]
    for kind in sorted(initspec.SPEC_CLASSES):
        t, j, k, note = EQUIV[kind]
        lines.append(f"| `{kind}` | {t} | {j} | {k} | {note} |")
    for kind, cls in sorted(initspec.SPEC_CLASSES.items()):
        lines += [
            "",
            f"## `{kind}`",
            "",
            inspect.cleandoc(cls.__doc__ or "").replace("\n", "\n"),
            "",
        ]
        fields = [(n, f) for n, f in cls.model_fields.items() if n != "kind"]
        if fields:
            lines += ["| field | default | type |", "|---|---|---|"]
            for name, f in fields:
                ann = getattr(f.annotation, "__name__", None) or str(f.annotation).replace(
                    "typing.", ""
                )
                lines.append(f"| `{name}` | `{_default(f)}` | `{ann}` |")
        else:
            lines.append("No fields.")
        aliases = sorted(a for a, c in KIND_ALIASES.items() if c == kind)
        renames = FIELD_ALIASES.get(kind, {})
        if aliases or renames:
            lines.append("")
            lines.append(
                "Aliases: "
                + ", ".join(
                    [f"kind `{a}`" for a in aliases]
                    + [f"`{a}` for `{b}`" for a, b in sorted(renames.items())]
                )
                + "."
            )
        example = initspec.parse({"kind": kind}).model_dump_json()
        lines += ["", "```json", example, "```"]
    return "\n".join(lines) + "\n"


def policy() -> str:
    schema = initspec.policy_schema()
    defs = schema.get("$defs", {})
    lines = [
        "# Policy language",
        "",
        "Generated by `scripts/gen_docs.py` from the policy schema; do not edit by hand.",
        "",
        inspect.cleandoc(initspec.policy.__doc__ or ""),
        "",
    ]
    for title, props, doc in [
        ("Policy", schema["properties"], initspec.Policy.__doc__),
        ("Rule", defs["Rule"]["properties"], initspec.Rule.__doc__),
        ("Match", defs["Match"]["properties"], initspec.Match.__doc__),
        ("DepthScale", defs["DepthScale"]["properties"], initspec.policy.DepthScale.__doc__),
    ]:
        lines += [
            f"## {title}",
            "",
            inspect.cleandoc(doc or ""),
            "",
            "| field | schema |",
            "|---|---|",
        ]
        for name, prop in props.items():
            text = json.dumps({k: v for k, v in prop.items() if k != "title"}, sort_keys=True)
            lines.append(f"| `{name}` | `{text}` |")
        lines.append("")
    lines += ["## Presets", ""]
    for name in initspec.presets():
        pol = initspec.preset(name)
        lines += [
            f"### `{name}`",
            "",
            pol.description,
            "",
            "```json",
            pol.model_dump_json(indent=2, exclude_none=True),
            "```",
            "",
        ]
    return "\n".join(lines)


PAGES = {"catalog.md": catalog, "policy.md": policy}


def main() -> int:
    check = "--check" in sys.argv
    stale = []
    for name, fn in PAGES.items():
        text = fn()
        path = DOCS / name
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print(f"stale generated docs: {', '.join(stale)}; run `make docs`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
