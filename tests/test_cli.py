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
    "args,needle,code",
    [
        (("sample", '{"kind": "gaussian"}', "--shape", "3,3"), "$.kind: 'gaussian' is invalid", 1),
        (("sample", '{"kind": "kaiming_normal"}', "--shape", "7"), "too few for layout 'torch'", 1),
        (("sample", '{"kind": "normal"}', "--shape", "a,b"), "expected integers", 2),
        (("sample", '{"kind": "normal"}', "--shape", "100000,100000"), "at most", 2),
        (("show", "nope"), "unknown preset", 1),
        (("explain", "gpt2", "--torch", "nomodule"), "MODULE:FACTORY", 2),
        (("explain", "gpt2", "--torch", "no_such_module_xyz:f"), "cannot import", 2),
        (("validate", "/no/such/file.json"), "No such file", 2),
        (("validate", "no-such-file"), "No such file", 2),
        (("validate",), "required", 2),
        (("presets", "--nope"), "unrecognized arguments", 2),
        (("frobnicate",), "invalid choice", 2),
    ],
)
def test_errors_go_to_stderr_with_exit_1_invalid_2_could_not_run(args, needle, code) -> None:
    res = run(*args)
    assert res.returncode == code, (res.returncode, res.stderr)
    assert needle in res.stderr, res.stderr
    assert "Traceback" not in res.stderr


def test_validate_checks_every_file_and_reports_the_worst(tmp_path) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"initspec": 1}))
    binary = tmp_path / "bad.bin"
    binary.write_bytes(b"\x80\x81\x00\xff")
    missing = tmp_path / "missing.json"
    res = run("validate", str(binary), str(good))
    assert res.returncode == 1, res.stderr
    assert f"{good}: valid policy" in res.stdout and "not UTF-8" in res.stderr
    res = run("validate", str(binary), str(missing), str(good), "gpt2")
    assert res.returncode == 2, res.stderr
    assert f"{good}: valid policy" in res.stdout and "gpt2: valid policy" in res.stdout
    assert "Traceback" not in res.stderr
    assert run("validate", str(good), "gpt2", '{"kind": "zeros"}').returncode == 0


def test_validate_never_echoes_a_files_content(tmp_path) -> None:
    secret = tmp_path / "notes.json"
    secret.write_text("password=hunter2, not JSON")
    res = run("validate", str(secret))
    assert res.returncode == 1 and "hunter2" not in res.stderr + res.stdout


def test_output_into_a_closed_pipe_is_quiet() -> None:
    for args in (("schema",), ("presets",), ("show", "gpt2")):
        proc = subprocess.Popen(
            [sys.executable, "-m", "initspec", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.read(10)
        proc.stdout.close()  # like `| head -c 10`
        stderr = proc.stderr.read().decode()
        assert proc.wait(timeout=120) == 0, stderr
        assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr


def test_explain_seed_defaults_to_the_policys_seed(tmp_path) -> None:
    from pathlib import Path

    from initspec.cli import build_parser

    args = build_parser().parse_args(["explain", "gpt2", "--torch", "m:f"])
    assert args.seed is None
    repo = Path(__file__).resolve().parents[1]
    policy = tmp_path / "seeded.json"
    policy.write_text(json.dumps({"initspec": 1, "seed": 1234, "extends": "torch-defaults"}))
    base = ("explain", str(policy), "--torch", "tests.fixtures.cli_models:mlp", "--json")
    res = run(*base, cwd=repo)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["seed"] == 1234
    assert json.loads(run(*base, "--seed", "7", cwd=repo).stdout)["seed"] == 7


def test_explain_table_escapes_rule_names(tmp_path) -> None:
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    policy = tmp_path / "evil.json"
    evil = "x\x1b[2J\rforged\nrow"
    policy.write_text(
        json.dumps({"initspec": 1, "rules": [{"name": evil, "init": {"kind": "zeros"}}]})
    )
    res = run("explain", str(policy), "--torch", "tests.fixtures.cli_models:mlp", cwd=repo)
    assert res.returncode == 0, res.stderr
    assert "\x1b" not in res.stdout and "\r" not in res.stdout
    assert "x\\x1b[2J\\x0dforged\\x0arow" in res.stdout


def test_debug_shows_traceback() -> None:
    res = run("--debug", "sample", '{"kind": "gaussian"}', "--shape", "3")
    assert res.returncode != 0 and "Traceback" in res.stderr


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
        bad.returncode == 2
        and "factory failed on purpose" in bad.stderr
        and "Traceback" not in bad.stderr
    )


def test_explain_flax_nnx() -> None:
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    res = run("explain", "torch-defaults", "--flax", "tests.fixtures.cli_models:nnx_mlp", cwd=repo)
    assert res.returncode == 0, res.stderr
    assert "fc1.kernel" in res.stdout and "uniform(low=-0.2236" in res.stdout  # torch's 1/sqrt(20)


def test_names_a_terminal_cannot_encode_are_escaped(tmp_path) -> None:
    import os

    policy = tmp_path / "p.json"
    policy.write_text(
        json.dumps({"initspec": 1, "name": "é", "rules": [{"name": "ünï", "skip": True}]})
    )
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    res = subprocess.run(
        [sys.executable, "-m", "initspec", "validate", str(policy), str(tmp_path / "é.json")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert res.returncode == 2, res.stderr
    assert "valid policy" in res.stdout and "Traceback" not in res.stderr
    assert "\\xe9" in res.stderr  # the missing file's name, escaped


def test_explain_strict_exits_1_and_warns_without_it(tmp_path) -> None:
    """A rule that matches nothing: a warning on stderr and exit 0; with --strict, an error
    naming it and exit 1."""
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    policy = tmp_path / "unused.json"
    policy.write_text(json.dumps({"initspec": 1, "rules": [
        {"name": "attention", "match": {"kind": "attention"}, "init": {"kind": "zeros"}},
        {"init": {"kind": "zeros"}},
    ]}))  # fmt: skip
    base = ("explain", str(policy), "--torch", "tests.fixtures.cli_models:mlp")
    res = run(*base, cwd=repo)
    assert res.returncode == 0, res.stderr
    assert "InitSpecWarning" in res.stderr and "#0 attention" in res.stderr
    res = run(*base, "--strict", cwd=repo)
    assert res.returncode == 1
    assert "#0 attention matched no parameter (strict)" in res.stderr
