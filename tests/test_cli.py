"""The ``initspec`` command, run as a subprocess like a user would."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def run(*args: str, cwd=None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "initspec", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def test_validate_good_and_bad_files(tmp_path) -> None:
    good = tmp_path / "good.json"
    good.write_text(
        json.dumps(
            {"initspec": 1, "rules": [{"match": {"role": "bias"}, "init": {"kind": "zeros"}}]}
        )
    )
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"kind": "kaiming_normal", "nonlinearity": "relu"}))
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {"initspec": 1, "rules": [{"match": {"kind": "dense"}, "init": {"kind": "zeros"}}]}
        )
    )
    ok = run("validate", str(good), str(spec))
    assert ok.returncode == 0 and "valid policy" in ok.stdout and "valid spec" in ok.stdout
    res = run("validate", str(good), str(bad))
    assert res.returncode == 1
    assert "$.rules[0].match.kind[0]: 'dense' is invalid" in res.stderr
    assert "Traceback" not in res.stderr


def test_schema_presets_show() -> None:
    spec_schema = json.loads(run("schema", "spec").stdout)
    assert spec_schema["discriminator"]["propertyName"] == "kind"
    policy_schema = json.loads(run("schema", "policy").stdout)
    assert "rules" in policy_schema["properties"]
    listing = run("presets").stdout
    assert "torch-defaults" in listing and "gpt2" in listing
    shown = json.loads(run("show", "gpt2").stdout)
    assert shown["name"] == "gpt2" and shown["initspec"] == 1


def test_sample_prints_plan_and_moments() -> None:
    res = run(
        "sample", '{"kind": "he_normal"}', "--shape", "3,3,64,128", "--layout", "flax", "--json"
    )
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["fans"] == [576, 1152]
    assert out["exact"]["std"] == pytest.approx((2 / 576) ** 0.5)
    assert abs(out["measured"]["std"] / out["exact"]["std"] - 1) < 0.02
    text = run("sample", '{"kind": "normal", "std": 0.02}', "--shape", "100,100").stdout
    assert text.startswith("plan      normal(mean=0, std=0.02)")


@pytest.mark.parametrize(
    "args,needle",
    [
        (("sample", '{"kind": "gaussian"}', "--shape", "3,3"), "$.kind: 'gaussian' is invalid"),
        (("sample", '{"kind": "kaiming_normal"}', "--shape", "7"), "too few for layout 'torch'"),
        (("sample", '{"kind": "normal"}', "--shape", "a,b"), "expected integers"),
        (("show", "nope"), "unknown preset"),
        (("explain", "gpt2", "--torch", "nomodule"), "MODULE:FACTORY"),
        (("explain", "gpt2", "--torch", "no_such_module_xyz:f"), "cannot import"),
        (("validate", "/no/such/file.json"), "neither a JSON file nor JSON text"),
    ],
)
def test_errors_go_to_stderr_with_exit_1(args, needle) -> None:
    res = run(*args)
    assert res.returncode == 1
    assert needle in res.stderr, res.stderr
    assert "Traceback" not in res.stderr


def test_debug_shows_traceback() -> None:
    res = run("--debug", "sample", '{"kind": "gaussian"}', "--shape", "3")
    assert res.returncode == 1 and "Traceback" in res.stderr


def test_explain_torch_table_and_json() -> None:
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    res = run("explain", "torch-defaults", "--torch", "tests.fixtures.cli_models:mlp", cwd=repo)
    assert res.returncode == 0, res.stderr
    assert "0.weight" in res.stdout and "uniform(low=-0.2236" in res.stdout  # 1/sqrt(20)
    out = json.loads(
        run(
            "explain",
            "torch-defaults",
            "--torch",
            "tests.fixtures.cli_models:mlp",
            "--json",
            cwd=repo,
        ).stdout
    )
    assert out["policy"] == "torch-defaults" and len(out["parameters"]) == 4
    bad = run("explain", "torch-defaults", "--torch", "tests.fixtures.cli_models:broken", cwd=repo)
    assert (
        bad.returncode == 1
        and "factory failed on purpose" in bad.stderr
        and "Traceback" not in bad.stderr
    )


def test_explain_flax_nnx() -> None:
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    res = run("explain", "torch-defaults", "--flax", "tests.fixtures.cli_models:nnx_mlp", cwd=repo)
    assert res.returncode == 0, res.stderr
    assert "fc1.kernel" in res.stdout and "uniform(low=-0.2236" in res.stdout  # torch's 1/sqrt(20)
