"""No JSON field is ever imported, evaluated or unpickled.

Known gadget payloads go into every string field of specs, policies and Keras configs while
eval, exec, importlib.import_module (beyond initspec's own presets), pickle, os.system and
subprocess.Popen are watched: none is reached, and no marker file appears.
"""

from __future__ import annotations

import base64
import builtins
import importlib
import json
import os
import pickle
import subprocess
import warnings

import pytest

import initspec


class Boom(Exception):
    pass


# A pickle that would call os.system, made before any test patches os.system.
PICKLED = base64.b64encode(pickle.dumps(os.system)).decode()


def _marker_payload(path) -> list[str]:
    pickled = PICKLED
    return [
        f"__import__('os').system('touch {path}')",
        f"os.system('touch {path}')",
        "os:system",
        "os.system",
        "builtins.eval",
        "subprocess.Popen",
        "!!python/object/apply:os.system ['touch x']",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        pickled,
        "cos\nsystem\n(S'touch x'\ntR.",
        "${jndi:ldap://127.0.0.1/a}",
        "lambda: 1",
    ]


@pytest.fixture
def watch(monkeypatch):
    def forbidden(*args, **kwargs):
        raise Boom("forbidden call")

    real_import_module = importlib.import_module

    def guarded_import_module(name, *args, **kwargs):
        if name not in ("initspec",):  # presets (importlib.resources)
            raise Boom(f"import_module({name})")
        return real_import_module(name, *args, **kwargs)

    # Warm up what the standard library imports lazily (module imports run builtins.exec).
    initspec.presets()
    initspec.load_policy("gpt2")
    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    monkeypatch.setattr(subprocess, "Popen", forbidden)
    monkeypatch.setattr(importlib, "import_module", guarded_import_module)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(os, "system", forbidden)
    return True


def test_gadget_payloads_in_every_string_field_run_nothing(tmp_path, watch) -> None:
    marker = tmp_path / "pwned"
    for payload in _marker_payload(marker):
        docs = [
            {"kind": payload},
            {"kind": "normal", "std": payload},
            {"kind": "kaiming_normal", "nonlinearity": payload},
            {"kind": "variance_scaling", "mode": payload, "distribution": payload},
            {payload: 1, "kind": "zeros"},
        ]
        for doc in docs:
            with pytest.raises(initspec.InitSpecError):
                initspec.parse(doc)
        policies = [
            {
                "initspec": 1,
                "name": payload,
                "description": payload,
                "rules": [
                    {
                        "name": payload,
                        "match": {"module": payload, "path": payload},
                        "init": {"kind": "zeros"},
                    }
                ],
            },
            {"initspec": 1, "rules": [{"match": {"kind": payload}, "skip": True}]},
            {"initspec": 1, "extends": payload, "rules": []},
            {"initspec": 1, "rules": [{"match": {"regex": payload}, "skip": True}]},
            {
                "initspec": 1,
                "rules": [{"init": {"kind": "normal"}, "depth_scale": {"n_layers": payload}}],
            },
        ]
        for pol in policies:
            try:
                loaded = initspec.load_policy(pol)
            except initspec.InitSpecError:
                continue
            # A payload that is valid data (a name, a glob) stays data: matching runs nothing.
            for rule in loaded.rules:
                rule.match.matches("a.b.weight", "linear", ("Linear",), "kernel", 2)
        for config in (
            {"class_name": payload, "config": {}},
            {"class_name": "RandomNormal", "config": {"seed": payload}},
        ):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", initspec.KerasSeedWarning)
                try:
                    initspec.from_keras(config)
                except initspec.InitSpecError:
                    pass
    assert not marker.exists()


def test_module_names_are_compared_not_imported(watch) -> None:
    pol = initspec.load_policy(
        {
            "initspec": 1,
            "rules": [
                {"match": {"module": ["os.system", "subprocess.Popen"]}, "init": {"kind": "zeros"}}
            ],
        }
    )
    assert pol.rules[0].match.matches("x.weight", "linear", ("os.system",), "kernel", 2)
    assert not pol.rules[0].match.matches("x.weight", "linear", ("Linear",), "kernel", 2)


def test_extends_only_reads_json_files_and_presets(tmp_path) -> None:
    py = tmp_path / "evil.py"
    py.write_text("raise SystemExit('executed')\n")
    # A dict has no including file: it extends presets only.
    with pytest.raises(initspec.PolicyError, match="extends presets only"):
        initspec.load_policy({"initspec": 1, "extends": str(py), "rules": []})
    # From a file: a .json file beside it, nothing else.
    child = tmp_path / "child.json"
    child.write_text(json.dumps({"initspec": 1, "extends": "evil.py"}))
    with pytest.raises(initspec.PolicyError, match="relative .json path"):
        initspec.load_policy(child)
    (tmp_path / "evil.json").write_text("raise SystemExit('executed')\n")
    child.write_text(json.dumps({"initspec": 1, "extends": "evil.json"}))
    with pytest.raises(initspec.PolicyError, match="valid JSON") as err:
        initspec.load_policy(child)
    assert "SystemExit" not in str(err.value)  # the file's content is never echoed
