"""Reports as data: the numbers of each row, tables for notebooks and pandas, and the
comparison of two reports (a model and its port to another framework).

``numbers`` gives the numeric columns of ``Report.rows()``; ``compare(a, b)`` pairs the
parameters of two reports by name (a torch ``fc.weight`` and a Flax ``fc.kernel`` are one
parameter, as policies match them: ``initspec.resolve.match_names``) and says, for each,
whether both got the same rule and the same distribution, with measured moments when the
values are given.
"""

from __future__ import annotations

import html
import importlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from initspec.errors import MissingExtraError, printable
from initspec.plans import NormalPlan, Plan, UniformPlan

if TYPE_CHECKING:
    from initspec.resolve import Report, ResolvedParam

# The keys of a row of ``Report.rows()``, and what each holds.
ROW_FIELDS: dict[str, str] = {
    "path": "canonical dotted path (fc.weight)",
    "framework_path": "the framework's own path (fc/kernel in Flax)",
    "shape": "the stored shape",
    "dtype": "dtype name",
    "device": "device name",
    "kind": "module kind (linear, conv, embedding, norm, ...)",
    "role": "kernel, bias, embedding, scale or other",
    "layout": "how the axes are read (torch, flax, ...)",
    "fans": "[fan_in, fan_out] of the shape in its layout, or None",
    "status": "init, skip, unmatched or meta (resolved, not written)",
    "rule_index": "index of the rule in the policy, or None",
    "rule_name": "the rule's name, or None",
    "spec": "the rule's spec as JSON, or None",
    "plan": "the plan in one line, or None",
    "shared_with": "the other names of a tied parameter",
    "names": "every name a rule may match it by",
    "rule": "the rule's label (#2 attention), or None",
    "distribution": "constant, uniform, normal, truncated_normal, orthogonal, eye, dirac, "
    "delta_orthogonal or sparse; None without a plan",
    "mean": "exact mean of the planned distribution",
    "std": "exact standard deviation of the planned distribution",
    "low": "lower bound of a bounded plan (uniform, truncated normal), else None",
    "high": "upper bound of a bounded plan, else None",
    "fan_in": "fan_in the plan used (None when it uses none: see fans for the shape's)",
    "fan_out": "fan_out the plan used",
    "numel": "number of elements",
    "gain": "the rule's gain (1.0 by default; None without a plan)",
    "depth_factor": "depth_scale's multiplier 1 / sqrt(factor * n), or None",
    "depth_n": "the n of that multiplier (counted n_layers, or layer_id + offset), or None",
}


def spread(plan: Plan) -> tuple[float, float]:
    """(mean, std) of ``plan``; NaN where float64 cannot hold them."""
    try:
        mean = float(plan.mean)
    except (OverflowError, ValueError, ZeroDivisionError):
        mean = math.nan
    try:
        if isinstance(plan, NormalPlan):  # std = sqrt(scale**2) underflows below 1e-154
            std = abs(float(plan.scale))
        elif isinstance(plan, UniformPlan):
            std = (float(plan.high) - float(plan.low)) / math.sqrt(12.0)
        else:
            std = float(plan.std)
    except ValueError:  # a variance rounded a hair below 0
        std = 0.0
    except (OverflowError, ZeroDivisionError):
        std = math.nan
    return mean, std


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def distribution(plan: Plan) -> str:
    """The plan's family, as its one-line description names it (``normal``, ...)."""
    return plan._body().split("(", 1)[0]


def numbers(p: ResolvedParam) -> dict[str, Any]:
    """The numeric columns of a report row (``ROW_FIELDS``) for one resolved parameter."""
    plan = p.plan
    label = p.rule.label(p.rule_index) if p.rule is not None and p.rule_index is not None else None
    out: dict[str, Any] = {
        "rule": label,
        "distribution": None,
        "mean": None,
        "std": None,
        "low": None,
        "high": None,
        "fan_in": None,
        "fan_out": None,
        "numel": math.prod(p.info.shape),
        "gain": None,
        "depth_factor": p.depth_factor,
        "depth_n": p.depth_n,
    }
    if plan is None:
        return out
    mean, std = spread(plan)
    bounds = plan.bounds
    out.update(
        distribution=distribution(plan),
        mean=_finite(mean),
        std=_finite(std),
        low=_finite(bounds[0]) if bounds else None,
        high=_finite(bounds[1]) if bounds else None,
        gain=p.gain,
    )
    if plan.fans is not None:
        out["fan_in"], out["fan_out"] = plan.fans
    return out


def to_pandas(rows: Sequence[Mapping[str, Any]]) -> Any:
    """Rows as a ``pandas.DataFrame`` (pandas is imported here, only here)."""
    try:
        pd = importlib.import_module("pandas")
    except ModuleNotFoundError as exc:
        if exc.name != "pandas":
            raise
        raise MissingExtraError("to_pandas()", "pandas", None) from None
    return pd.DataFrame([dict(r) for r in rows])


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return "x".join(map(str, value)) if all(isinstance(v, int) for v in value) else str(value)
    return str(value)


def html_table(
    head: Sequence[str], body: Sequence[Sequence[Any]], caption: str = "", notes: Sequence[str] = ()
) -> str:
    """A plain HTML table, every cell escaped (paths come from models, names from
    policies: no markup or script from either reaches the notebook)."""
    esc = html.escape
    lines = ["<table>"]
    if caption:
        lines.append(f"<caption>{esc(caption)}</caption>")
    lines.append("<thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr></thead>")
    lines.append("<tbody>")
    for row in body:
        cells = "".join(
            f'<td style="text-align:{"right" if isinstance(c, (int, float)) else "left"}">'
            f"{esc(printable(_cell(c)))}</td>"
            for c in row
        )
        lines.append(f"<tr>{cells}</tr>")
    lines.append("</tbody></table>")
    lines.extend(f"<p>{esc(printable(n))}</p>" for n in notes)
    return "\n".join(lines)


_HTML_COLUMNS = (
    ("parameter", "path"),
    ("shape", "shape"),
    ("dtype", "dtype"),
    ("status", "status"),
    ("rule", "rule"),
    ("distribution", "distribution"),
    ("mean", "mean"),
    ("std", "std"),
    ("low", "low"),
    ("high", "high"),
    ("fan_in", "fan_in"),
    ("fan_out", "fan_out"),
    ("gain", "gain"),
    ("depth factor", "depth_factor"),
)


def report_html(report: Report) -> str:
    rows = report.rows()
    body = [[r[key] for _, key in _HTML_COLUMNS] for r in rows]
    res = report.resolution
    caption = f"policy {res.policy.name or '(unnamed)'}, seed {res.seed}"
    notes = [f"{len(rows)} parameters, {report.unmatched} unmatched"]
    notes += [f"warning: {w}" for w in report.warnings]
    return html_table([h for h, _ in _HTML_COLUMNS], body, caption, notes)


# Comparing two reports ------------------------------------------------------------------

# Two plans are the same distribution when these agree (floats to 1e-12 relative: the same
# formula evaluated on fans read from two layouts).
_SAME = ("distribution", "numel", "mean", "std", "low", "high", "fan_in", "fan_out")


def _close(x: Any, y: Any) -> bool:
    if isinstance(x, float) and isinstance(y, float):
        return math.isclose(x, y, rel_tol=1e-12, abs_tol=0.0)
    return bool(x == y)


def _measured(values: Mapping[str, Any] | None, *names: str) -> tuple[float | None, float | None]:
    """(mean, std) in float64 of the first of ``names`` in ``values``, else (None, None).
    A value may be a NumPy or JAX array, anything ``numpy.asarray`` reads, or a torch
    tensor (read through ``.detach().cpu().double().numpy()``; nothing imports torch)."""
    if values is None:
        return None, None
    import numpy as np

    for name in names:
        if name in values:
            x = values[name]
            if hasattr(x, "detach"):  # a torch tensor (bfloat16 has no NumPy dtype)
                x = x.detach().cpu().double().numpy()
            arr = np.asarray(x, dtype=np.float64)
            if arr.size == 0:
                return None, None
            return _finite(float(arr.mean())), _finite(float(arr.std()))
    return None, None


@dataclass
class Comparison:
    """Parameters of two reports paired by name: the same rule, the same distribution."""

    labels: tuple[str, str]
    pairs: list[dict[str, Any]]
    unpaired: tuple[list[str], list[str]] = field(default_factory=lambda: ([], []))

    @property
    def agree(self) -> int:
        """Pairs with the same rule and the same distribution."""
        return sum(p["same_rule"] and p["same_plan"] for p in self.pairs)

    @property
    def ok(self) -> bool:
        """Every parameter paired, every pair the same."""
        return self.agree == len(self.pairs) and not any(self.unpaired)

    def rows(self) -> list[dict[str, Any]]:
        return [dict(p) for p in self.pairs]

    def to_dict(self) -> dict[str, Any]:
        a, b = self.labels
        return {
            "labels": [a, b],
            "pairs": self.rows(),
            "agree": self.agree,
            f"unpaired_{a}": self.unpaired[0],
            f"unpaired_{b}": self.unpaired[1],
            "ok": self.ok,
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def to_pandas(self) -> Any:
        return to_pandas(self.rows())

    def _columns(self) -> list[tuple[str, Any]]:
        a, b = self.labels

        def std(x: float | None) -> str:
            return "" if x is None else f"{x:.5f}"

        measured = any(p["measured_std_a"] is not None for p in self.pairs)
        cols: list[tuple[str, Any]] = [
            (a, lambda p: p["path_a"]),
            (b, lambda p: p["path_b"]),
            (
                "rule",
                lambda p: p["rule_a"] if p["same_rule"] else f"{p['rule_a']} vs {p['rule_b']}",
            ),
            (
                "plan (both)",
                lambda p: p["plan_a"] if p["same_plan"] else f"{p['plan_a']}  !=  {p['plan_b']}",
            ),
        ]
        if measured:
            cols += [
                (f"std {a}", lambda p: std(p["measured_std_a"])),
                (f"std {b}", lambda p: std(p["measured_std_b"])),
            ]
        cols.append(("exact", lambda p: std(p["std_a"])))
        return cols

    def table(self) -> str:
        cols = self._columns()
        head = [c for c, _ in cols]
        body = [
            [printable(str(f(p) if f(p) is not None else "-")) for _, f in cols] for p in self.pairs
        ]
        widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
        lines = [
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
            for r in [head, *body]
        ]
        lines.insert(1, "  ".join("-" * w for w in widths))
        a, b = self.labels
        lines.append(
            f"{self.agree}/{len(self.pairs)} parameters: same rule and same plan in {a} and {b}"
        )
        for label, names in zip(self.labels, self.unpaired, strict=True):
            if names:
                shown = ", ".join(printable(n) for n in names[:10])
                more = f" and {len(names) - 10} more" if len(names) > 10 else ""
                lines.append(f"only in {label}: {shown}{more}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def _repr_html_(self) -> str:
        cols = self._columns()
        body = [[f(p) for _, f in cols] for p in self.pairs]
        return html_table(
            [c for c, _ in cols],
            body,
            notes=self.table().splitlines()[-1 - sum(map(bool, self.unpaired)) :],
        )


def compare(
    a: Report,
    b: Report,
    *,
    values_a: Mapping[str, Any] | None = None,
    values_b: Mapping[str, Any] | None = None,
    labels: tuple[str, str] = ("a", "b"),
) -> Comparison:
    """Pair the parameters of two reports by name and compare what each received.

    A parameter of ``b`` pairs with one of ``a`` when they share a name a policy matches
    them by (canonical path, tied names, the leaf in either framework's spelling: torch's
    ``conv1.weight`` is Flax's ``conv1.kernel``). Each pair says whether both got the same
    rule (index) and the same distribution (family, element count, exact mean and std,
    bounds and fans; floats to 1e-12 relative), which is what a faithful port gives.
    ``values_a`` / ``values_b`` (path -> array or tensor, by canonical or framework path)
    add the measured mean and std of each side. ``labels`` name the two sides in the table
    (``("torch", "flax")``).
    """
    rows_a, rows_b = a.rows(), b.rows()
    index_b: dict[str, int] = {}
    for k, row in enumerate(rows_b):
        for name in row["names"]:
            index_b.setdefault(name, k)
    used: set[int] = set()
    pairs = []
    unpaired_a: list[str] = []
    for r in rows_a:
        j: int | None = next(
            (index_b[n] for n in r["names"] if n in index_b and index_b[n] not in used), None
        )
        if j is None:
            unpaired_a.append(r["path"])
            continue
        used.add(j)
        s = rows_b[j]
        mean_a, std_a = _measured(values_a, r["path"], r["framework_path"])
        mean_b, std_b = _measured(values_b, s["path"], s["framework_path"])
        pairs.append(
            {
                "path_a": r["path"],
                "path_b": s["path"],
                "status_a": r["status"],
                "status_b": s["status"],
                "rule_a": r["rule"],
                "rule_b": s["rule"],
                "same_rule": r["rule_index"] == s["rule_index"] and r["status"] == s["status"],
                "plan_a": r["plan"],
                "plan_b": s["plan"],
                "same_plan": all(_close(r[k], s[k]) for k in _SAME),
                "mean_a": r["mean"],
                "mean_b": s["mean"],
                "std_a": r["std"],
                "std_b": s["std"],
                "measured_mean_a": mean_a,
                "measured_mean_b": mean_b,
                "measured_std_a": std_a,
                "measured_std_b": std_b,
            }
        )
    unpaired_b = [r["path"] for k, r in enumerate(rows_b) if k not in used]
    return Comparison(labels, pairs, (unpaired_a, unpaired_b))
