"""JSON: round trips for every spec and alias, schema, and error messages for bad input."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

import initspec
from initspec.parse import FIELD_ALIASES, KIND_ALIASES

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("kind", sorted(initspec.SPEC_CLASSES))
def test_every_kind_has_defaults_and_round_trips(kind: str) -> None:
    spec = initspec.parse({"kind": kind})
    text = spec.model_dump_json()
    assert initspec.parse(text) == spec
    assert initspec.parse(json.loads(text)) == spec
    assert initspec.parse(spec) is spec
    # the canonical form writes every field
    assert set(json.loads(text)) == set(type(spec).model_fields)


@pytest.mark.parametrize("alias,kind", sorted(KIND_ALIASES.items()))
def test_kind_aliases(alias: str, kind: str) -> None:
    spec = initspec.parse({"kind": alias})
    assert spec.kind_name() == kind
    assert initspec.parse(initspec.to_json(spec)) == spec


@pytest.mark.parametrize(
    "kind,alias,field",
    [(k, a, f) for k, m in sorted(FIELD_ALIASES.items()) for a, f in sorted(m.items())],
)
def test_field_aliases(kind: str, alias: str, field: str) -> None:
    value = {
        "value": 0.5,
        "low": -3.0,
        "high": 3.0,
        "std": 0.5,
        "a": 0.3,
        "gain": 2.0,
        "scale": 2.0,
    }[field]
    spec = initspec.parse({"kind": kind, alias: value})
    assert getattr(spec, field) == value
    assert initspec.parse(spec.model_dump_json()) == spec


def test_torch_jax_keras_spellings_mean_the_same() -> None:
    assert initspec.parse(
        {"kind": "trunc_normal_", "a": -0.04, "b": 0.04, "std": 0.02}
    ) == initspec.parse(
        {"kind": "truncated_normal", "low": -0.04, "high": 0.04, "std": 0.02, "bounds": "absolute"}
    )
    # jax's truncated_normal(stddev, lower, upper) is in std units.
    jax_style = initspec.parse(
        {"kind": "truncated_normal", "stddev": 0.02, "lower": -2.0, "upper": 2.0}
    )
    assert jax_style.bounds == "std"
    assert initspec.parse({"kind": "random_uniform", "minval": -0.05, "maxval": 0.05}).low == -0.05


def test_schema_is_a_discriminated_union_of_every_kind() -> None:
    schema = initspec.schema()
    assert schema["discriminator"]["propertyName"] == "kind"
    assert set(schema["discriminator"]["mapping"]) == set(initspec.SPEC_CLASSES)
    json.dumps(schema)


BAD = [
    ('{"kind": "gaussian"}', "$.kind", "'gaussian'", "allowed: constant"),
    ('{"kind": "normal", "std": -1}', "$.std", "-1", "must be > 0"),
    ('{"kind": "normal", "std": 0}', "$.std", "0", "must be > 0"),
    ('{"kind": "normal", "mean": NaN}', "$.mean", "nan", "finite"),
    ('{"kind": "normal", "std": Infinity}', "$.std", "inf", "finite"),
    ('{"kind": "uniform", "low": 1, "high": 1}', "$.high", "1", "must be > low"),
    ('{"kind": "normal", "std": "0.1"}', "$.std", "'0.1'", "valid number"),
    ('{"kind": "normal", "std": true}', "$.std", "True", "valid number"),
    ('{"kind": "normal", "sd": 1}', "$.sd", "1", "allowed fields: mean, std"),
    ('{"kind": "kaiming_normal", "nonlinearity": "gelu"}', "$.nonlinearity", "'gelu'", "'relu'"),
    (
        '{"kind": "kaiming_normal", "mode": "fan_avg"}',
        "$.mode",
        "'fan_avg'",
        "'fan_in' or 'fan_out'",
    ),
    (
        '{"kind": "variance_scaling", "distribution": "untruncated"}',
        "$.distribution",
        "'untruncated'",
        "'uniform'",
    ),
    ('{"kind": "sparse", "sparsity": 1.0}', "$.sparsity", "1.0", "must be < 1"),
    ('{"kind": "dirac", "groups": 0}', "$.groups", "0", "must be >= 1"),
    ('{"std": 1}', "$.kind", "{'std': 1}", "needs a 'kind'"),
    ('{"kind": 3}', "$.kind", "3", "string"),
    ("[1, 2]", "$", "[1, 2]", "JSON object"),
    ("{not json", "$", "'{not json'", "valid JSON"),
    ("42", "$", "'42'", "JSON object"),  # the string given (parse never reads files)
]


@pytest.mark.parametrize("text,loc,value,allowed", BAD)
def test_errors_name_location_value_and_allowed(
    text: str, loc: str, value: str, allowed: str
) -> None:
    with pytest.raises(initspec.SpecError) as err:
        initspec.parse(text)
    msg = str(err.value)
    assert msg.startswith(f"{loc}: {value} is invalid: "), msg
    assert allowed in msg, msg
    assert isinstance(err.value, ValueError) and isinstance(err.value, initspec.InitSpecError)


@pytest.mark.parametrize(
    "obj",
    [None, 3.5, ["kind"], {"kind": None}, {"kind": "normal", "std": [1]}, {"kind": "normal", 1: 2}],
)
def test_no_bare_python_errors(obj) -> None:
    with pytest.raises(initspec.InitSpecError):
        initspec.parse(obj)


def test_import_initspec_imports_no_framework() -> None:
    code = (
        "import sys, initspec; initspec.sample({'kind': 'orthogonal'}, (4, 4)); "
        "initspec.preset('torch-defaults'); "
        "bad = [m for m in ('torch', 'jax', 'flax', 'jaxlib', 'tensorflow') if m in sys.modules]; "
        "print(','.join(bad)); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_core_source_never_imports_a_framework() -> None:
    import re

    pattern = re.compile(
        r"^\s*(import|from)\s+(torch|jax|jaxlib|flax|tensorflow|keras|initspec_torch|initspec_jax)\b",
        re.M,
    )
    offenders = [str(p) for p in (REPO / "initspec").rglob("*.py") if pattern.search(p.read_text())]
    assert offenders == []
