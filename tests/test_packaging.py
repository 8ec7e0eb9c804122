"""Packaging (#22 item 5): license, metadata, extras, typed public signatures without
private parameters; the built wheel in a fresh venv without torch or jax (slow)."""

from __future__ import annotations

import inspect
import os
import pathlib
import subprocess
import sys

import pytest
import tomllib

import initspec

REPO = pathlib.Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def test_license_and_metadata() -> None:
    text = (REPO / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
    assert PROJECT["license"] == "Apache-2.0" and PROJECT["license-files"] == ["LICENSE"]
    assert "Typing :: Typed" in PROJECT["classifiers"]
    assert not any(c.startswith("License ::") for c in PROJECT["classifiers"])  # PEP 639
    for url in PROJECT["urls"].values():
        assert url.startswith("https://github.com/initspec/initspec"), url


def test_extras() -> None:
    extras = PROJECT["optional-dependencies"]
    assert not any(d.startswith("flax") for d in extras["jax"])  # the initializer needs JAX only
    assert "flax>=0.8" in extras["flax"] and "initspec[jax]" in extras["flax"]
    assert extras["plot"] == ["matplotlib>=3.7"]
    assert extras["all"] == ["initspec[torch,flax,plot]"]


def test_the_version_is_written_once() -> None:
    assert "version" in PROJECT["dynamic"] and "version" not in PROJECT
    assert initspec.__version__ == "0.1.0"


def _public_callables():
    import initspec_jax
    import initspec_torch

    for module in (initspec, initspec_torch, initspec_jax):
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isfunction(obj):
                yield f"{module.__name__}.{name}", obj


def test_public_signatures_are_typed_and_have_no_private_parameters() -> None:
    seen = 0
    for name, fn in _public_callables():
        sig = inspect.signature(fn)
        for param in sig.parameters.values():
            assert not param.name.startswith("_"), f"{name}({param.name})"
            assert param.annotation is not inspect.Parameter.empty, f"{name}({param.name})"
            # load_policy's source is a policy; check's source only names what was checked
            if param.name == "policy" or (param.name == "source" and name.endswith("load_policy")):
                assert "PolicyLike" in str(param.annotation), f"{name}: {param.annotation}"
                seen += 1
    # load_policy, initspec_torch.apply/explain, initspec_jax.apply/apply_nnx/explain/resolve_params
    assert seen >= 7


@pytest.mark.slow
def test_the_wheel_installs_and_runs_without_torch_or_jax() -> None:
    """scripts/check_wheel.sh: build, fresh venv, numpy + pydantic + google-re2 from the
    registry, the wheel; import, validate, sample, and the extra named without torch."""
    # the base interpreter, not this venv's: the fresh venv starts from nothing
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PY"] = os.path.join(sys.base_prefix, "bin", "python3")
    res = subprocess.run(
        ["bash", str(REPO / "scripts" / "check_wheel.sh")],
        capture_output=True, text=True, timeout=1200, env=env,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    assert "wheel check: ok" in res.stdout


def test_an_adapter_without_its_framework_names_the_extra() -> None:
    code = """
import sys
sys.modules["torch"] = sys.modules["jax"] = None  # import torch -> ModuleNotFoundError
for package in ("initspec_torch", "initspec_jax"):
    try:
        __import__(package)
    except ImportError as exc:
        print(type(exc).__name__, exc)
"""
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert res.stdout.splitlines() == [
        "MissingExtraError initspec_torch needs torch, which is not installed: pip install 'initspec[torch]'",
        "MissingExtraError initspec_jax needs jax, which is not installed: pip install 'initspec[jax]'",
    ], res.stdout + res.stderr
