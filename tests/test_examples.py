"""Smoke tests of the runnable examples: each runs as a subprocess at its small size, as a user
would run it, and the test checks the measurements it prints (or writes) rather than only its
exit status."""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def run_example(name: str, *args: str, timeout: float = 300) -> str:
    """Run ``examples/<name>`` and return its stdout; fail with its output if it fails.

    The timeout is generous: the examples take seconds on an idle machine (JAX compiles a few
    programs), but CI machines can be shared.
    """
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONHASHSEED": "0"}
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
        env=env,
    )
    assert proc.returncode == 0, f"{name} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def number(pattern: str, text: str) -> float:
    m = re.search(pattern, text)
    assert m, f"no match for {pattern!r} in:\n{text}"
    return float(m.group(1))


# policy_to_torch.py ------------------------------------------------------------------------


def test_policy_to_torch_applies_every_policy_and_checks_moments() -> None:
    out = run_example("policy_to_torch.py", "--small")
    policies = sorted((EXAMPLES / "policies").glob("*.json"))
    assert len(policies) >= 3
    assert out.count("== policy ") == len(policies)
    # every initialized tensor matched its plan's mean and std
    assert len(re.findall(r"^check: all \d+ initialized tensors match", out, re.M)) == len(policies)
    # GPT-2-like: the residual projections scaled by 1/sqrt(2 * n_layers), n_layers=2 counted
    residual = [line for line in out.splitlines() if ".c_proj.weight" in line]
    assert residual and all("normal(mean=0, std=0.01)" in line for line in residual)
    # the tied lm_head is reported once, with its other name
    assert "transformer.wte.weight (= lm_head.weight)" in out
    # the policy extending torch-defaults: its own rules first, the preset's after
    bn2 = [line for line in out.splitlines() if re.match(r"\S*bn2\.weight\s", line)]
    assert bn2 and all("constant(0)" in line for line in bn2)
    assert re.search(r"^\d+\.weight\s+10x16\s.*linear/conv weight\s+uniform", out, re.M)


def test_policy_to_torch_json_report() -> None:
    out = run_example(
        "policy_to_torch.py", "--small", "--json", str(EXAMPLES / "policies" / "relu_mlp.json")
    )
    start = out.index("{")
    report, _ = json.JSONDecoder().raw_decode(out[start:])
    assert report["policy"] == "relu-net" and report["unmatched"] == 0
    rules = {p["path"]: p["rule_name"] for p in report["parameters"]}
    assert rules["head.weight"] == "output layer" and rules["fc1.weight"] == "hidden kernels"


# port_to_flax.py ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def port() -> str:
    return run_example("port_to_flax.py", "--small")


def test_port_to_flax_same_distributions(port: str) -> None:
    out = port
    assert out.count("== ") == 2  # the example policy and the torch-defaults preset
    assert "preset torch-defaults" in out
    rows = [line for line in out.splitlines() if re.match(r"^\w+\.(weight|bias)\s", line)]
    assert len(rows) == 16
    assert all(" yes " in line for line in rows), "torch and Flax plans differ"
    # native streams: every measured std within 5 standard errors of the plan
    zs = re.findall(r"largest deviation of a measured std from the plan: ([\d.]+)", out)
    assert len(zs) == 2 and all(float(z) < 5 for z in zs)


def test_port_to_flax_portable_same_numbers(port: str) -> None:
    out = port
    # one key per pair of twins: identical weights after the layout transpose, equal outputs
    diffs = re.findall(
        r"keyed by the torch name .*: max \|torch weight - flax weight\| = (\S+)", out
    )
    assert diffs == ["0.0", "0.0"]
    outputs = re.findall(r"max \|torch\(x\) - flax\(x\)\| on a batch of \d+ inputs: (\S+)", out)
    assert len(outputs) == 2 and all(float(d) < 1e-5 for d in outputs)


def test_port_to_flax_adapters_portable_twins_equal(port: str) -> None:
    diffs = re.findall(
        r"adapters \(.*rng='portable'\): max \|torch weight - flax weight\| = (\S+)", port
    )
    if not diffs:
        pytest.skip("the adapters' apply has no rng='portable' in this version")
    assert diffs == ["0.0", "0.0"]


# portable_seed.py --------------------------------------------------------------------------


def test_portable_seed_same_numbers() -> None:
    out = run_example("portable_seed.py", "--small")
    assert "numpy: initspec.sample" in out
    # whichever adapters have the stream agree with NumPy bit for bit; the others say pending
    for backend in ("torch", "jax"):
        line = next(x for x in out.splitlines() if x.startswith(f"  {backend}: "))
        if "pending" not in line:
            assert re.search(rf"measured: .*{backend}.* vs numpy: every element identical", out)
    assert "NOT all identical" not in out
    assert number(r"max \|torch - flax transposed\| = (\S+)", out) == 0.0
    assert number(r"max \|shard - full\[64:128\]\| = (\S+)", out) == 0.0
    # the native stream draws other numbers
    assert number(r"max \|native - portable\| = ([\d.e+-]+)", out) > 0.01


# four_techniques.py ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def four(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict, pathlib.Path]:
    out_dir = tmp_path_factory.mktemp("four_techniques")
    out = run_example("four_techniques.py", "--small", "--out", str(out_dir))
    summary = json.loads((out_dir / "four_techniques.json").read_text())
    return out, summary, out_dir


def test_four_techniques_variances_match_formulas(four) -> None:
    out, summary, _ = four
    var = summary["variances"]
    fan_in, fan_out = 256, 64
    assert var["Xavier / Glorot"]["formula"] == pytest.approx(2 / (fan_in + fan_out))
    assert var["LeCun"]["formula"] == pytest.approx(1 / fan_in)
    assert var["He / Kaiming"]["formula"] == pytest.approx(2 / fan_in)
    for name, v in var.items():
        assert v["plan"] == pytest.approx(v["formula"], rel=1e-9), name
        # measured within 5 standard errors of the formula
        assert abs(v["measured"] - v["formula"]) < 5 * v["se"], name
    # Xavier's variance is not 1/n
    assert abs(var["Xavier / Glorot"]["measured"] - 1 / fan_in) > 20 * var["Xavier / Glorot"]["se"]
    assert "2 / (fan_in + fan_out)" in out and "not 1/n = 1/256" in out


def test_four_techniques_signal_propagation(four) -> None:
    _, summary, _ = four
    sig = {k: np.array(v["act_std"]) for k, v in summary["signal"].items()}
    assert all(len(s) == 30 for s in sig.values())
    # zero init: nothing propagates
    assert sig["relu/zero"].max() == 0 and sig["tanh/zero"].max() == 0
    # He keeps ReLU activations within a factor of 2 over 30 layers
    he = sig["relu/He"]
    assert 0.5 < he.min() / he[0] and he.max() / he[0] < 2
    # N(0, 0.01) collapses by more than 1e3 (with ReLU and with tanh)
    assert sig["relu/N(0, 0.01)"][0] / sig["relu/N(0, 0.01)"][-1] > 1e3
    assert sig["tanh/N(0, 0.01)"][0] / sig["tanh/N(0, 0.01)"][-1] > 1e3
    # ... and so do its weight gradients (measured in float64: not an underflow to 0)
    for act in ("relu", "tanh"):
        g = np.array(summary["signal"][f"{act}/N(0, 0.01)"]["grad_norm"])
        assert 0 < g.max() < 1e-10
    # Xavier with ReLU halves the variance per layer: 2**(29/2) ~ 2e4 over 29 layers
    xr = sig["relu/Xavier"]
    assert 1e3 < xr[0] / xr[-1] < 1e6
    # Xavier with tanh: weight gradients of similar size at every layer
    g = np.array(summary["signal"]["tanh/Xavier"]["grad_norm"])
    assert g.max() / g.min() < 4


def test_four_techniques_training_and_symmetry(four) -> None:
    out, summary, _ = four
    runs = summary["training"]

    def runs_of(technique: str) -> list[dict]:
        return [r for r in runs if r["technique"] == technique]

    assert {r["seed"] for r in runs_of("He")} == {0, 1, 2}  # three seeds per technique
    # zero init never breaks symmetry: all hidden units of a layer stay identical
    for r in runs_of("zero"):
        assert r["unit_spread"] == [0.0, 0.0]
        assert r["weight_change"] == [0.0, 0.0]
        assert r["accuracy"] < 0.2  # chance is 0.1
    # constant init: the weights move, and still every unit of a layer is the same
    for r in runs_of("constant 0.05"):
        assert r["unit_spread"] == [0.0, 0.0] and max(r["weight_change"]) > 0
    # random inits break it
    for r in runs_of("He") + runs_of("Xavier"):
        assert min(r["unit_spread"]) > 0.1
    # even the short smoke-test run learns with He / Xavier
    for act in ("relu", "tanh"):
        for technique in ("He", "Xavier"):
            acc = [r["accuracy"] for r in runs_of(technique) if r["act"] == act]
            assert np.mean(acc) > 0.5, (act, technique, acc)
    assert "max unit difference after training = 0.0" in out


def test_four_techniques_writes_readable_pngs(four) -> None:
    _, _, out_dir = four
    for name in ("signal_propagation.png", "training_loss.png"):
        data = (out_dir / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert len(data) > 20_000  # four panels / two panels of lines, not an empty canvas


# mup_coord_check.py ------------------------------------------------------------------------


@pytest.mark.slow  # ~25 s on a shared 2-core machine: 12 small trainings
def test_mup_coord_check_is_flat_under_mup_and_grows_under_sp(tmp_path) -> None:
    out_png = tmp_path / "coord.png"
    out = run_example("mup_coord_check.py", "--small", "--out", str(out_png))
    assert out_png.stat().st_size > 10_000
    # Fixed seeds (torch's and the policy's): the run is deterministic on the CPU, so these
    # are bounds on fixed numbers, not statistical tolerances. Flat under muP at step 0:
    # |slope| of log scale vs log width below 0.25 for every layer (measured <= 0.16 here,
    # <= 0.08 on the full run); SP's readout after one Adam step grows with width.
    for layer in ("fc1", "fc2", "fc3", "out"):
        assert abs(number(rf"muP step 0: .*?{layer} ([+-][0-9.]+)", out)) < 0.25, out
    assert number(r"SP step 1: .*?out ([+-][0-9.]+)", out) > 1.0, out
