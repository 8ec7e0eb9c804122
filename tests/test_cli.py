"""The ``initspec`` command, run as a subprocess like a user would."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import initspec


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
        (("show", "nope"), "unknown preset", 2),
        (("show", "gtp2"), "did you mean 'gpt2'?", 2),
        (("explain", "gpt2", "--torch", "nomodule"), "MODULE:FACTORY", 2),
        (("explain", "gpt2", "--torch", "no_such_module_xyz:f"), "cannot import", 2),
        (("validate", "/no/such/file.json"), "the file does not exist", 2),
        (("validate", "no-such-file"), "no preset of that name", 2),
        (("validate", '{"initspec": 1,'), "must be valid JSON", 2),
        (("sample", '{"kind": "normal"}', "--shape", "3", "--layout", "nope"), "--layout", 2),
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
    assert res.returncode == 2, res.stderr  # a file that cannot be parsed: could not run
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
    assert res.returncode == 2 and "hunter2" not in res.stderr + res.stdout


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


# Conventions shared by every command (#22 item 6) -------------------------------------------


def _commands():
    import argparse

    from initspec.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return parser, sub.choices


def test_every_command_follows_the_conventions() -> None:
    """Every registered command (the lead's and those plugged in through COMMAND_MODULES):
    help on every option and argument, --json and --debug, a function to run."""
    parser, commands = _commands()
    assert {"validate", "schema", "presets", "show", "explain", "sample"} <= set(commands)
    for action in parser._actions:
        assert action.help, action.dest
    for name, command in commands.items():
        assert command.get_default("func") is not None, name
        assert "--json" in command._option_string_actions, name
        assert "--debug" in command._option_string_actions, name
        for action in command._actions:
            assert action.help and action.help.strip(), (name, action.dest)


def test_version(capsys) -> None:
    from initspec import __version__
    from initspec.cli import main

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out.strip() == f"initspec {__version__}"


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_and_json_anywhere(where, capsys) -> None:
    from initspec.cli import main

    cmd = ["sample", '{"kind": "gaussian"}', "--shape", "3"]
    args = ["--debug", *cmd] if where == "before" else [*cmd, "--debug"]
    with pytest.raises(initspec.SpecError):
        main(args)
    args = ["--json", "presets"] if where == "before" else ["presets", "--json"]
    assert main(args) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {"name": "gpt2", "description": initspec.preset("gpt2").description} in listed
    # the flag given on one side is not reset by the other side's default
    from initspec.cli import build_parser

    ns = build_parser().parse_args(["--debug", "validate", "x"])
    assert ns.debug is True and ns.json is False
    ns = build_parser().parse_args(["validate", "x", "--json"])
    assert ns.debug is False and ns.json is True


def test_json_on_every_command(capsys, tmp_path) -> None:
    from initspec.cli import main

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"initspec": 1, "rules": [{"init": {"kind": "normall"}}]}))
    runs = {
        "validate": (["validate", "gpt2", str(bad), "--json"], 1),
        "schema": (["schema", "spec", "--json"], 0),
        "presets": (["presets", "--json"], 0),
        "show": (["show", "gpt2", "--json"], 0),
        "sample": (["sample", '{"kind": "zeros"}', "--shape", "2,2", "--json"], 0),
    }
    outputs = {}
    for name, (args, code) in runs.items():
        assert main(args) == code, name
        outputs[name] = json.loads(capsys.readouterr().out)
    results = outputs["validate"]["results"]
    assert outputs["validate"]["status"] == 1 and results[0]["valid"] is True
    problem = results[1]["problems"][0]
    assert results[1]["status"] == 1 and results[1]["type"] == "PolicyError"
    assert problem["location"] == "$.rules[0].init.kind" and problem["suggestion"] == "normal"
    assert outputs["schema"]["discriminator"]["propertyName"] == "kind"
    assert outputs["show"]["name"] == "gpt2"
    assert outputs["sample"]["exact"] == {"mean": 0.0, "std": 0.0}
    # an error under --json: one JSON object on stderr, the same exit status
    assert main(["show", "gtp2", "--json"]) == 2
    error = json.loads(capsys.readouterr().err)["error"]
    assert error["type"] == "LoadError" and error["status"] == 2
    assert error["problems"][0]["suggestion"] == "gpt2"


@pytest.mark.parametrize(
    "args,code",
    [
        (["validate", "gpt2"], 0),
        (["validate", '{"initspec": 1, "rules": [{"init": {"kind": "normal", "std": -1}}]}'], 1),
        (["validate", '{"initspec": 1,'], 2),  # not JSON
        (["validate", "./missing.json"], 2),
        (["show", "nope"], 2),
        (["sample", '{"kind": "normal", "std": -1}', "--shape", "2"], 1),
        (["sample", '{"kind": "kaiming_normal"}', "--shape", "7"], 1),  # not plannable
        (["sample", '{"kind": "normal"', "--shape", "2"], 2),
        (["sample", '{"kind": "normal"}', "--shape", "x"], 2),
        (["explain", '{"initspec": 1, "rules": [{"skip": 1}]}', "--torch", "m:f"], 1),
        (["explain", "nope", "--torch", "m:f"], 2),
        (["explain", "gpt2"], 2),  # neither --torch nor --flax
    ],
)
def test_exit_status_is_the_same_for_every_command(args, code, capsys) -> None:
    from initspec.cli import main

    assert main(args) == code, capsys.readouterr().err


def test_explain_without_the_framework_names_the_extra(monkeypatch, capsys) -> None:
    from initspec.cli import main

    for flag, module, extra in (("--torch", "torch", "torch"), ("--flax", "flax", "flax")):
        monkeypatch.setitem(sys.modules, module, None)  # import torch -> ModuleNotFoundError
        assert main(["explain", "torch-defaults", flag, "tests.fixtures.cli_models:mlp"]) == 2
        err = capsys.readouterr().err
        assert f"pip install 'initspec[{extra}]'" in err and "Traceback" not in err, err
        monkeypatch.delitem(sys.modules, module)


def test_a_command_plugged_in_gets_the_conventions(monkeypatch, capsys) -> None:
    """COMMAND_MODULES: a module's add_parser/run become a command with --json, --debug,
    help checked, and the same exit statuses."""
    from initspec import cli

    monkeypatch.setattr(cli, "COMMAND_MODULES", ("tests.fixtures.cli_command",))
    _, commands = _commands()
    echo = commands["echo"]
    assert {"--json", "--debug"} <= set(echo._option_string_actions)
    assert all(a.help for a in echo._actions)
    assert cli.main(["echo", "hi"]) == 0 and capsys.readouterr().out == "hi\n"
    assert cli.main(["--json", "echo", "hi"]) == 0
    assert json.loads(capsys.readouterr().out) == {"word": "hi"}
    assert cli.main(["echo", "hi", "--fail", "mismatch"]) == 1
    assert cli.main(["echo", "hi", "--fail", "invalid"]) == 1
    assert "initspec echo: error: $.word: 'hi' is invalid" in capsys.readouterr().err
    assert cli.main(["echo", "hi", "--fail", "usage", "--json"]) == 2
    assert json.loads(capsys.readouterr().err)["error"]["type"] == "UsageError"
    with pytest.raises(cli.UsageError):
        cli.main(["echo", "hi", "--fail", "usage", "--debug"])
