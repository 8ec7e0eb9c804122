"""Reports as data (#22 item 3): numeric rows, JSON, pandas, HTML, and comparing a model's
report with its port's."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import initspec
from initspec.reporting import ROW_FIELDS
from initspec.resolve import ParamInfo, resolve


def _info(
    path: str, shape: tuple[int, ...], layout: str = "torch", role: str = "kernel"
) -> ParamInfo:
    return ParamInfo(path, shape, "linear", role, layout, "float32")


GPT = {
    "initspec": 1,
    "name": "depth",
    "rules": [
        {
            "name": "proj",
            "match": {"path": ["h.*.c_proj.weight"]},
            "init": {"kind": "normal", "std": 0.02},
            "gain": 0.5,
            "depth_scale": {"factor": 2, "n_layers": "count:h.*"},
        },
        {
            "name": "fc",
            "match": {"path": ["h.*.c_fc.weight"]},
            "init": {"kind": "kaiming_uniform", "nonlinearity": "relu"},
        },
        {
            "match": {"path": ["h.*.ln.weight"]},
            "init": {"kind": "truncated_normal", "std": 1.0, "a": -2.0, "b": 2.0},
        },
        {"match": {"role": "bias"}, "skip": True},
    ],
}


def _params() -> list[ParamInfo]:
    out = []
    for i in range(3):
        out += [
            _info(f"h.{i}.c_proj.weight", (16, 64)),
            _info(f"h.{i}.c_fc.weight", (64, 16)),
            _info(f"h.{i}.ln.weight", (16,)),
            _info(f"h.{i}.c_fc.bias", (64,), role="bias"),
        ]
    return out


def test_rows_hold_the_exact_numbers() -> None:
    report = resolve(GPT, _params()).report()
    rows = {r["path"]: r for r in report.rows()}
    assert set(ROW_FIELDS) == set(rows["h.0.c_proj.weight"])  # every key documented
    proj = rows["h.1.c_proj.weight"]
    # 0.02 * gain 0.5 / sqrt(factor 2 * n 3): n counted over h.0, h.1, h.2
    assert proj["depth_n"] == 3 and proj["depth_factor"] == 1 / math.sqrt(6)
    assert proj["gain"] == 0.5 and proj["std"] == pytest.approx(0.01 / math.sqrt(6), rel=1e-15)
    assert proj["mean"] == 0.0 and proj["low"] is None and proj["high"] is None
    assert (
        proj["distribution"] == "normal" and proj["rule"] == "#0 proj" and proj["status"] == "init"
    )
    assert proj["fan_in"] is None and proj["fans"] == [64, 16] and proj["numel"] == 1024
    fc = rows["h.0.c_fc.weight"]
    bound = math.sqrt(2.0) * math.sqrt(3.0 / 16)  # torch.nn.init.kaiming_uniform_, relu, fan_in 16
    assert fc["distribution"] == "uniform" and (fc["fan_in"], fc["fan_out"]) == (16, 64)
    assert fc["low"] == pytest.approx(-bound, rel=1e-15) and fc["high"] == pytest.approx(
        bound, rel=1e-15
    )
    assert fc["std"] == pytest.approx(bound / math.sqrt(3), rel=1e-15)
    assert fc["gain"] == 1.0 and fc["depth_factor"] is None and fc["depth_n"] is None
    ln = rows["h.2.ln.weight"]
    assert ln["distribution"] == "truncated_normal" and (ln["low"], ln["high"]) == (-2.0, 2.0)
    # the std of N(0, 1) truncated to [-2, 2]: 1 - 2 * 2 * phi(2) / (Phi(2) - Phi(-2))
    phi2 = math.exp(-2.0) / math.sqrt(2 * math.pi)
    assert ln["std"] == pytest.approx(
        math.sqrt(1 - 4 * phi2 / math.erf(2 / math.sqrt(2))), rel=1e-12
    )
    bias = rows["h.0.c_fc.bias"]
    assert bias["status"] == "skip" and bias["mean"] is None and bias["gain"] is None
    assert bias["rule"] == "#3"


def test_json_pandas_and_html() -> None:
    report = resolve(GPT, _params()).report()
    data = json.loads(report.to_json())
    assert data["parameters"] == json.loads(json.dumps(report.rows()))
    assert data["seed"] == 0 and data["policy"] == "depth"
    df = report.to_pandas()
    assert list(df.columns) == list(report.rows()[0]) and len(df) == 12
    assert df.loc[df["path"] == "h.0.c_proj.weight", "std"].item() == report.rows()[0]["std"]
    html = report._repr_html_()
    assert html.startswith("<table>") and html.count("<tr>") == 13  # head + 12 rows
    assert "#0 proj" in html and "truncated_normal" in html


def test_html_escapes_names_from_models_and_policies() -> None:
    policy = {
        "initspec": 1,
        "name": "<b>p</b>",
        "rules": [{"name": "<script>x</script>", "init": {"kind": "zeros"}}],
    }
    report = resolve(policy, [_info("a<img src=x>.weight", (2, 2))]).report()
    html = report._repr_html_()
    assert "<script>" not in html and "<img" not in html and "<b>" not in html
    assert "&lt;script&gt;" in html and "a&lt;img src=x&gt;.weight" in html


def test_to_pandas_without_pandas_names_it(monkeypatch) -> None:
    import sys

    report = resolve(GPT, _params()).report()
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="pip install pandas"):
        report.to_pandas()


def _port(policy: dict) -> tuple[initspec.Report, initspec.Report]:
    torch_side = [
        _info("fc.weight", (8, 4)),
        _info("fc.bias", (8,), role="bias"),
        _info("out.weight", (2, 8)),
    ]
    flax_side = [
        _info("fc.kernel", (4, 8), "flax"),
        _info("fc.bias", (8,), "flax", "bias"),
        _info("out.kernel", (8, 2), "flax"),
    ]
    return resolve(policy, torch_side).report(), resolve(policy, flax_side).report()


PORT = {
    "initspec": 1,
    "rules": [
        {"match": {"role": "bias"}, "init": {"kind": "zeros"}},
        {"init": {"kind": "kaiming_normal", "mode": "fan_out"}},
    ],
}


def test_compare_pairs_torch_and_flax_names_and_finds_the_same_plans() -> None:
    a, b = _port(PORT)
    cmp = initspec.compare(a, b, labels=("torch", "flax"))
    assert [(p["path_a"], p["path_b"]) for p in cmp.pairs] == [
        ("fc.weight", "fc.kernel"),
        ("fc.bias", "fc.bias"),
        ("out.weight", "out.kernel"),
    ]
    assert cmp.ok and cmp.agree == 3
    fc = cmp.pairs[0]
    assert fc["std_a"] == fc["std_b"] == pytest.approx(math.sqrt(2 / 8), rel=1e-15)  # fan_out 8
    assert "3/3 parameters: same rule and same plan in torch and flax" in cmp.table()
    assert json.loads(cmp.to_json())["ok"] is True
    assert len(cmp.to_pandas()) == 3 and cmp._repr_html_().count("<tr>") == 4


def test_compare_finds_a_port_whose_layout_is_wrong() -> None:
    """The Flax kernel read with torch's layout: fan_out is 4 instead of 8, std differs."""
    a, _ = _port(PORT)
    wrong = resolve(
        PORT, [_info("fc.kernel", (4, 8)), _info("fc.bias", (8,), role="bias")]
    ).report()
    cmp = initspec.compare(a, wrong)
    assert not cmp.ok and cmp.agree == 1 and cmp.unpaired == (["out.weight"], [])
    fc = cmp.pairs[0]
    assert fc["same_rule"] and not fc["same_plan"]
    assert fc["std_b"] == pytest.approx(math.sqrt(2 / 4), rel=1e-15)
    assert "  !=  " in cmp.table() and "only in a: out.weight" in cmp.table()


def test_compare_measures_values_when_given() -> None:
    a, b = _port(PORT)
    rng = np.random.default_rng(0)
    va = {"fc.weight": rng.normal(0, 0.5, (8, 4))}
    vb = {"fc.kernel": rng.normal(0, 0.5, (4, 8)), "fc.bias": np.zeros(8)}
    cmp = initspec.compare(a, b, values_a=va, values_b=vb, labels=("torch", "flax"))
    fc, bias, out = cmp.pairs
    assert fc["measured_std_a"] == float(va["fc.weight"].std())
    assert fc["measured_std_b"] == float(vb["fc.kernel"].std())
    assert bias["measured_std_a"] is None and bias["measured_std_b"] == 0.0
    assert out["measured_mean_a"] is None
    head = cmp.table().splitlines()[0].split()
    assert head[-5:] == ["std", "torch", "std", "flax", "exact"]
