"""Plots of a report (needs matplotlib: ``pip install 'initspec[plot]'``).

- ``histograms(report, values)``: for each initialized parameter, the histogram of its
  values (as a density) and, over it, the density the plan predicts for each bin: the
  plan's probability of the bin, ``cdf(right) - cdf(left)``, divided by the bin's width
  (exact for every plan with a distribution function: uniform, normal, truncated normal);
  a constant plan is a vertical line at its value; structural plans (orthogonal, eye,
  dirac, sparse) have no density to draw and show the histogram with the planned std.
- ``std_chart(report, values=None)``: the planned std of each initialized parameter, in
  model order, with the measured std beside it when ``values`` are given.

Both return a ``matplotlib.figure.Figure`` built without ``pyplot`` (no window, no global
state): ``fig.savefig("init.png")``, or display it in a notebook. ``values`` maps canonical
(or framework) paths to arrays: NumPy, JAX, or torch tensors (read through
``.detach().cpu().double()``; nothing imports torch).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from initspec.errors import MissingExtraError, printable
from initspec.plans import ConstantPlan, Plan

if TYPE_CHECKING:
    from initspec.resolve import Report, ResolvedParam


def _figure(**kwargs: Any) -> Any:
    try:
        figure = importlib.import_module("matplotlib.figure")
    except ModuleNotFoundError as exc:
        if exc.name is not None and exc.name.split(".")[0] != "matplotlib":
            raise
        raise MissingExtraError("initspec.plot", "matplotlib", "plot") from None
    return figure.Figure(**kwargs)


def as_array(value: Any) -> np.ndarray:
    """A float64 NumPy copy of an array or tensor."""
    if hasattr(value, "detach"):  # a torch tensor (bfloat16 has no NumPy dtype)
        value = value.detach().cpu().double().numpy()
    return np.asarray(value, dtype=np.float64)


def _value(values: Mapping[str, Any], p: ResolvedParam) -> np.ndarray | None:
    for name in (p.info.path, p.info.framework_path):
        if name and name in values:
            return as_array(values[name])
    return None


def expected_density(plan: Plan, edges: np.ndarray) -> np.ndarray | None:
    """The plan's mean density over each bin ``[edges[i], edges[i+1]]``, or None for a
    plan without a distribution function."""
    cdf = getattr(plan, "cdf", None)
    if cdf is None:
        return None
    mass = np.diff(np.asarray(cdf(edges), dtype=np.float64))
    return np.asarray(mass / np.diff(edges))


def _selected(report: Report, paths: Sequence[str] | None) -> list[ResolvedParam]:
    todo = [p for p in report.resolution.params if p.plan is not None]
    if paths is None:
        return todo
    wanted = set(paths)
    return [p for p in todo if p.info.path in wanted or p.info.framework_path in wanted]


def histograms(
    report: Report,
    values: Mapping[str, Any],
    *,
    paths: Sequence[str] | None = None,
    bins: int = 60,
    max_plots: int = 24,
    columns: int = 4,
) -> Any:
    """One panel per initialized parameter (``paths``: those only; at most ``max_plots``):
    the values' histogram as a density and the plan's density per bin (see the module
    docstring). Parameters missing from ``values`` are left out."""
    chosen = [(p, x) for p in _selected(report, paths) if (x := _value(values, p)) is not None]
    chosen = chosen[:max_plots]
    rows = max(1, -(-len(chosen) // columns))
    cols = max(1, min(columns, len(chosen)))
    fig = _figure(figsize=(3.2 * cols, 2.4 * rows), layout="constrained")
    if not chosen:
        fig.text(0.5, 0.5, "no initialized parameter with values", ha="center")
        return fig
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat[len(chosen) :]:
        ax.set_visible(False)
    for ax, (p, x) in zip(axes.flat, chosen, strict=False):
        plan = p.plan
        assert plan is not None
        flat = x.ravel()
        finite = flat[np.isfinite(flat)]
        if isinstance(plan, ConstantPlan) or finite.size == 0 or finite.min() == finite.max():
            ax.hist(finite, bins=1, color="0.7")
            ax.axvline(plan.mean, color="C1", label="plan")
        else:
            _, edges, _ = ax.hist(finite, bins=bins, density=True, color="0.7", label="values")
            density = expected_density(plan, edges)
            if density is not None:
                ax.stairs(density, edges, color="C1", linewidth=1.5, label="plan")
        ax.set_title(printable(p.info.path), fontsize=8)
        ax.text(
            0.02,
            0.97,
            f"plan std {plan.std:.3g}\nmeasured {finite.std():.3g}" if finite.size else "",
            transform=ax.transAxes,
            va="top",
            fontsize=7,
        )
        ax.tick_params(labelsize=7)
    axes.flat[0].legend(fontsize=7, loc="upper right")
    return fig


def std_chart(report: Report, values: Mapping[str, Any] | None = None) -> Any:
    """Planned std of every initialized parameter in model order (bars), the measured std
    (dots) when ``values`` are given; a log scale when the stds span over 100x."""
    chosen = [p for p in _selected(report, None) if p.status in ("init", "meta")]
    fig = _figure(figsize=(max(6.0, 0.28 * len(chosen) + 2), 4.0), layout="constrained")
    ax = fig.subplots()
    planned = np.array([p.plan.std if p.plan is not None else np.nan for p in chosen])
    x = np.arange(len(chosen))
    ax.bar(x, planned, color="C0", alpha=0.6, label="planned std")
    if values is not None:
        measured = []
        for p in chosen:
            v = _value(values, p)
            measured.append(float(v.std()) if v is not None and v.size else np.nan)
        ax.plot(x, measured, "o", color="C1", markersize=4, label="measured std")
    positive = planned[np.isfinite(planned) & (planned > 0)]
    if positive.size and positive.max() / positive.min() > 100:
        ax.set_yscale("log")
    ax.set_xticks(x, [printable(p.info.path) for p in chosen], rotation=90, fontsize=7)
    ax.set_ylabel("std")
    ax.set_title(f"policy {printable(report.resolution.policy.name or '(unnamed)')}")
    ax.legend(fontsize=8)
    return fig
