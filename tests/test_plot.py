"""initspec.plot (#22 item 4): histograms against the planned density, the std chart."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

import initspec
from initspec.errors import MissingExtraError
from initspec.plot import expected_density, histograms, std_chart
from initspec.resolve import ParamInfo, resolve

pytest.importorskip("matplotlib")

POLICY = {
    "initspec": 1,
    "name": "plots",
    "rules": [
        {"match": {"role": "bias"}, "init": {"kind": "zeros"}},
        {"match": {"path": ["a.weight"]}, "init": {"kind": "normal", "std": 0.5}},
        {
            "match": {"path": ["b.weight"]},
            "init": {"kind": "truncated_normal", "std": 1.0, "a": -1.0, "b": 1.5},
        },
        {"init": {"kind": "orthogonal"}},
    ],
}


def _report_and_values():
    params = [
        ParamInfo("a.weight", (64, 32), "linear", "kernel", "torch", "float32"),
        ParamInfo("a.bias", (64,), "linear", "bias", "torch", "float32"),
        ParamInfo("b.weight", (50, 40), "linear", "kernel", "torch", "float32"),
        ParamInfo("c.weight", (16, 16), "linear", "kernel", "torch", "float32"),
    ]
    report = resolve(POLICY, params).report()
    values = {
        p.info.path: initspec.sample(
            p.spec, p.info.shape, "torch", seed=1, path=p.info.path, dtype="float64"
        )
        for p in report.resolution.params
    }
    return report, values


def test_histograms_draw_the_values_and_the_planned_density_per_bin() -> None:
    report, values = _report_and_values()
    fig = histograms(report, values, bins=30)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["a.weight", "a.bias", "b.weight", "c.weight"]
    plans = {p.info.path: p.plan for p in report.resolution.params}
    for ax in (axes[0], axes[2]):
        path = ax.get_title()
        heights = np.array([r.get_height() for r in ax.patches if type(r).__name__ == "Rectangle"])
        density, edges = np.histogram(values[path].ravel(), bins=30, density=True)
        np.testing.assert_allclose(heights, density, rtol=1e-12)
        (stairs,) = [a for a in ax.get_children() if type(a).__name__ == "StepPatch"]
        got = stairs.get_data().values
        np.testing.assert_allclose(got, expected_density(plans[path], edges), rtol=1e-12)
    # the planned density is the plan's probability per bin over its width
    plan = plans["a.weight"]
    edges = np.linspace(-1.0, 1.0, 5)
    mass = np.diff([0.5 * (1 + math.erf(e / (0.5 * math.sqrt(2)))) for e in edges])
    np.testing.assert_allclose(expected_density(plan, edges), mass / 0.5, rtol=1e-12)
    # truncated normal: no mass outside [a, b]
    assert expected_density(plans["b.weight"], np.array([-3.0, -1.0, 1.5, 3.0]))[
        [0, 2]
    ].tolist() == [0.0, 0.0]
    # orthogonal: no density to draw, only the histogram
    assert not [a for a in axes[3].get_children() if type(a).__name__ == "StepPatch"]
    assert expected_density(plans["c.weight"], edges) is None


def test_std_chart_bars_are_the_planned_std_and_dots_the_measured() -> None:
    report, values = _report_and_values()
    fig = std_chart(report, values)
    (ax,) = fig.axes
    heights = [r.get_height() for r in ax.patches]
    assert heights == [r["std"] for r in report.rows()]
    (dots,) = ax.get_lines()
    np.testing.assert_allclose(dots.get_ydata(), [values[r["path"]].std() for r in report.rows()])
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        "a.weight",
        "a.bias",
        "b.weight",
        "c.weight",
    ]


def test_plots_without_matplotlib_name_the_extra(monkeypatch) -> None:
    report, values = _report_and_values()
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'initspec\[plot\]'"):
        std_chart(report)


def test_the_plot_example_writes_both_figures(tmp_path, monkeypatch, capsys) -> None:
    from test_examples import EXAMPLES

    monkeypatch.syspath_prepend(str(EXAMPLES))  # in this process: torch is imported already
    import plot_init

    assert plot_init.main(["--small", "--out", str(tmp_path)]) == 0
    for name in ("init_histograms.png", "init_std.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "6 parameters, 0 unmatched" in capsys.readouterr().out
