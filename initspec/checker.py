"""``check``: test stored tensors against the plans a policy assigns them.

Each parameter is matched to its rule and planned exactly as ``apply`` would
(``initspec.resolve``); its values are then tested against that plan
(``initspec.checkstats``): certain facts (a constant compared exactly, values outside the
plan's bounds, W W^T for an orthogonal plan) and p-values (mean, variance, KS). The p-values
of the whole model are corrected together with Holm's step-down procedure, so a correctly
initialized model is reported ``ok`` with probability at least ``1 - alpha``, however many
parameters it has. ``docs/check.md`` derives the tests and their power.

Descriptions of the parameters come from the adapters (``initspec_torch.check``,
``initspec_jax.check``) or, for a bare mapping of arrays (a checkpoint), from the names and
shapes alone (``describe_tensors``).
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from initspec.checkstats import MIN_ELEMENTS, Outcome, Test, check_values
from initspec.errors import InitSpecError, InitSpecWarning, printable
from initspec.layout import fans
from initspec.plans import NormalPlan, TruncatedNormalPlan, UniformPlan
from initspec.policy import PolicyLike, load_policy
from initspec.resolve import ParamInfo, ResolutionError, ResolvedParam, resolve
from initspec.special import holm
from initspec.specs import PlanContext
from initspec.stored import StoredTensor, as_stored, check_float, float64

ELEMENTWISE = (UniformPlan, NormalPlan, TruncatedNormalPlan)

Verdict = Literal["ok", "mismatch", "unmatched", "skipped", "too small to test"]
CheckpointLayout = Literal["torch", "flax"]


class InitCheckError(InitSpecError, AssertionError):
    """Some parameters do not look initialized as the policy says (``assert_ok``); an
    ``AssertionError`` too, so pytest shows it as a failed assertion. ``report`` is the
    ``CheckReport``; the message carries its table."""

    def __init__(self, report: CheckReport) -> None:
        self.report = report
        bad = [r for r in report.params if not report.passed(r)]
        super().__init__(
            f"{len(bad)} of {len(report.params)} parameter(s) do not match the policy "
            f"{report.policy!r}:\n{report.table(only_failed=True)}"
        )


class CheckResolutionError(ResolutionError):
    """Tensors the policy cannot be checked against (a shape its spec cannot plan, a
    non-float tensor a rule matches); ``problems`` lists them all."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(problems)
        shown = "\n  ".join(self.problems[:20])
        more = f"\n  ... and {len(self.problems) - 20} more" if len(self.problems) > 20 else ""
        self.args = (f"{len(self.problems)} tensor(s) cannot be checked against the policy:\n  {shown}{more}",)


@dataclass
class ParamCheck:
    """The verdict of one parameter: its rule and plan, and the evidence."""

    path: str
    shape: tuple[int, ...]
    dtype: str
    verdict: Verdict
    rule: str | None = None
    plan: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    tests: list[Test] = field(default_factory=list)

    def summary(self) -> str:
        """One line of evidence: what failed, else the measured std ratio and p-values."""
        ev = self.evidence
        parts = list(self.problems)
        parts += [
            f"{t.name} p={t.p:.2g} (Holm {t.adjusted:.2g})" for t in self.tests if t.rejected
        ]
        measured = ""
        if "std_ratio" in ev and math.isfinite(ev["std_ratio"]):
            measured = f"std x{ev['std_ratio']:.4f} mean {ev['mean']:+.3g}"
            if "ks_p" in ev and not parts:
                measured += f" KS p={ev['ks_p']:.2g}"
        elif "orthogonality_error" in ev:
            measured = f"|W W^T - g^2 I| {ev['orthogonality_error']:.2g}"
        if parts:
            return "; ".join(([measured] if measured else []) + parts)
        if self.verdict in ("unmatched", "skipped"):
            return "no rule (not checked)" if self.verdict == "unmatched" else "skip rule"
        if measured:
            return measured
        return "exact" if self.verdict == "ok" else ""


def _json_number(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, list):
        return [_json_number(v) for v in x]
    return x


@dataclass
class CheckReport:
    """Every parameter's verdict. ``ok``: no mismatch (with ``strict``, also no parameter
    left unmatched and no rule matching nothing)."""

    policy: str
    alpha: float
    params: list[ParamCheck]
    unused_rules: list[str]
    strict: bool = False
    source: str = ""

    @property
    def n_tests(self) -> int:
        return sum(len(p.tests) for p in self.params)

    def passed(self, p: ParamCheck) -> bool:
        return p.verdict != "mismatch" and not (self.strict and p.verdict == "unmatched")

    @property
    def ok(self) -> bool:
        return all(self.passed(p) for p in self.params) and not (self.strict and self.unused_rules)

    @property
    def mismatched(self) -> list[ParamCheck]:
        return [p for p in self.params if p.verdict == "mismatch"]

    def counts(self) -> dict[str, int]:
        out = {v: 0 for v in ("ok", "mismatch", "unmatched", "skipped", "too small to test")}
        for p in self.params:
            out[p.verdict] += 1
        return out

    def assert_ok(self) -> None:
        """Raise ``InitCheckError`` (with the table) unless ``ok``."""
        if not self.ok:
            raise InitCheckError(self)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "policy": self.policy,
            "source": self.source,
            "alpha": self.alpha,
            "tests": self.n_tests,
            "counts": self.counts(),
            "unused_rules": list(self.unused_rules),
            "parameters": [
                {
                    "path": p.path,
                    "shape": list(p.shape),
                    "dtype": p.dtype,
                    "verdict": p.verdict,
                    "rule": p.rule,
                    "plan": p.plan,
                    "problems": list(p.problems),
                    "evidence": {k: _json_number(v) for k, v in p.evidence.items()},
                    "tests": [
                        {
                            "name": t.name,
                            "p": _json_number(t.p),
                            "holm_p": _json_number(t.adjusted),
                            "rejected": t.rejected,
                        }
                        for t in p.tests
                    ],
                }
                for p in self.params
            ],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def table(self, only_failed: bool = False) -> str:
        head = ("parameter", "shape", "dtype", "verdict", "plan", "evidence")
        rows = [p for p in self.params if not (only_failed and self.passed(p))]
        body = [
            tuple(
                printable(str(c))
                for c in (
                    p.path,
                    "x".join(map(str, p.shape)) or "()",
                    p.dtype,
                    p.verdict,
                    (p.plan or "-").split("  ")[0],
                    p.summary(),
                )
            )
            for p in rows
        ]
        widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [head, *body]]
        lines.insert(1, "  ".join("-" * w for w in widths))
        c = self.counts()
        lines.append(
            f"{len(self.params)} parameters: {c['ok']} ok, {c['mismatch']} mismatch, "
            f"{c['unmatched']} unmatched, {c['too small to test']} too small to test "
            f"(< {MIN_ELEMENTS} elements), {c['skipped']} skipped; alpha={self.alpha:g}, "
            f"Holm over {self.n_tests} p-values"
        )
        lines += [f"warning: rule {printable(u)} matched no parameter" for u in self.unused_rules]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


# --- descriptions from names and shapes (checkpoints) ---------------------------------

_EMBEDDING_OWNERS = ("wte", "wpe")


def _is_bias(leaf: str) -> bool:
    return leaf == "bias" or leaf.startswith("bias_") or leaf.endswith("_bias")


def _is_embedding_owner(owner: str) -> bool:
    last = owner.rpartition(".")[2].lower()
    return last in _EMBEDDING_OWNERS or "emb" in last


def describe_tensors(
    entries: Mapping[str, tuple[tuple[int, ...], str]], layout: CheckpointLayout = "torch"
) -> list[ParamInfo]:
    """``ParamInfo`` of checkpoint tensors from their names and shapes alone.

    Names are split at ``.`` and ``/`` (a Flax path ``params/Dense_0/kernel`` becomes
    ``params.Dense_0.kernel``); by leaf name and number of dims:

    - ``weight`` / ``kernel`` with 1 dim: a ``norm`` ``scale`` (``weight``) or ``other``;
      2 dims: an ``embedding`` (layout ``embedding``) when its module is named ``wte``,
      ``wpe`` or anything containing ``emb``, else a ``linear`` kernel; 3 or more dims: a
      ``conv`` kernel; kernels are in ``layout`` (torch: out, in, *k; flax: *k, in, out);
    - ``embedding``: an ``embedding``; ``scale``: a ``norm`` scale;
    - ``bias`` (``bias_*``, ``*_bias``): a bias of its module's kind (a sibling 1-dim
      ``weight`` or a ``scale``: norm), with the sibling kernel's fans as context;
    - anything else: kind and role ``other``.

    Module types and enclosing modules are unknown, so rules matching ``module`` or
    ``within`` match nothing; describe from the model (``--model``) for those.
    """
    names = {path: path.replace("/", ".") for path in entries}
    by_owner: dict[str, dict[str, tuple[int, ...]]] = {}
    for path, name in names.items():
        owner, _, leaf = name.rpartition(".")
        by_owner.setdefault(owner, {})[leaf] = tuple(entries[path][0])
    out = []
    for path, name in names.items():
        shape, dtype = tuple(entries[path][0]), entries[path][1]
        owner, _, leaf = name.rpartition(".")
        siblings = by_owner[owner]
        kind, role, lay = _classify(owner, leaf, len(shape), siblings, layout)
        context = PlanContext()
        if role == "bias":
            kernel = siblings.get("weight", siblings.get("kernel"))
            if kernel is not None and len(kernel) >= 2:
                k_kind, _, k_layout = _classify(owner, "weight", len(kernel), siblings, layout)
                try:
                    context = PlanContext(weight_fans=fans(kernel, k_layout))
                except InitSpecError:
                    pass
        out.append(
            ParamInfo(
                path=name,
                shape=shape,
                kind=kind,
                role=role,
                layout=lay,
                dtype=dtype,
                framework_path=path,
                context=context,
            )
        )
    return out


def _classify(
    owner: str, leaf: str, ndim: int, siblings: Mapping[str, tuple[int, ...]], layout: str
) -> tuple[str, str, str]:
    """(kind, role, layout) of a checkpoint tensor (``describe_tensors``)."""
    if leaf in ("weight", "kernel"):
        if ndim == 1:
            return ("norm", "scale", layout) if leaf == "weight" else ("other", "other", layout)
        if ndim == 2 and _is_embedding_owner(owner):
            return "embedding", "embedding", "embedding"
        if ndim >= 2:
            return ("linear" if ndim == 2 else "conv"), "kernel", layout
        return "other", "other", layout
    if leaf == "embedding":
        return "embedding", "embedding", "embedding"
    if leaf == "scale":
        return "norm", "scale", layout
    if _is_bias(leaf):
        weight = siblings.get("weight", siblings.get("kernel"))
        if "scale" in siblings or (weight is not None and len(weight) == 1 and "weight" in siblings):
            return "norm", "bias", layout
        if weight is not None and len(weight) >= 2:
            kind = _classify(owner, "weight", len(weight), siblings, layout)[0]
            return ("other" if kind == "embedding" else kind), "bias", layout
        return "other", "bias", layout
    return "other", "other", layout


# --- the check ------------------------------------------------------------------------


def _check_param(rp: ResolvedParam, tensor: StoredTensor) -> ParamCheck:
    info = rp.info
    assert rp.plan is not None and rp.rule is not None and rp.rule_index is not None
    where = f"parameter {info.path!r}"
    check_float(tensor.dtype, where)
    if tuple(tensor.shape) != tuple(rp.plan.shape):
        raise InitSpecError(
            f"{where}: stored shape {tuple(tensor.shape)} is not the planned {rp.plan.shape}"
        )
    values = tensor.load().reshape(tensor.shape)
    outcome = Outcome()
    plan = rp.plan
    rows = tensor.shape[0] if tensor.shape else 0
    if rp.zero_row is not None and isinstance(plan, ELEMENTWISE) and rows:
        # the padding row is exactly zero; the other rows follow the plan
        row = rp.zero_row % rows
        nonzero = int((float64(values[row], tensor.dtype) != 0).sum())
        if nonzero:
            outcome.problems.append(f"the padding row {row} has {nonzero} nonzero value(s)")
        values = np.delete(values, row, axis=0)
        plan = replace(plan, shape=tuple(values.shape))
    found = check_values(values, tensor.dtype, plan)
    outcome.problems += found.problems
    outcome.evidence.update(found.evidence)
    outcome.tests += found.tests
    outcome.too_small = found.too_small
    verdict: Verdict = "mismatch" if outcome.problems else ("too small to test" if outcome.too_small else "ok")
    return ParamCheck(
        info.path,
        tuple(tensor.shape),
        tensor.dtype,
        verdict,
        rp.rule.label(rp.rule_index),
        rp.plan.describe(),
        outcome.evidence,
        outcome.problems,
        outcome.tests,
    )


def check(
    tensors: Mapping[str, Any],
    policy: PolicyLike,
    *,
    layout: CheckpointLayout = "torch",
    alpha: float = 1e-4,
    params: Sequence[ParamInfo] | None = None,
    strict: bool = False,
    source: str = "",
) -> CheckReport:
    """Check ``tensors`` (name -> NumPy array or ``StoredTensor``) against ``policy``.

    ``params``: descriptions of some or all of the tensors (from an adapter; each
    ``framework_path``, else ``path``, is a key of ``tensors``); the others are described
    from their names and shapes (``describe_tensors(..., layout)``).
    ``alpha``: the probability that a correctly initialized model is reported with a
    mismatch (Holm over every p-value). ``strict``: unmatched parameters and rules that
    match nothing make the report fail. Tensors are loaded one at a time.

    Raises ``ResolutionError`` (a shape the spec cannot plan, a non-float tensor a rule
    matches) and ``InitSpecError`` (a policy matching no tensor at all).
    """
    if not (isinstance(alpha, float | int) and 0 < alpha < 1):
        raise InitSpecError(f"alpha must be a probability in (0, 1), got {alpha!r}")
    stored = {str(k): as_stored(v) for k, v in tensors.items()}
    params = list(params or ())
    described = {p.framework_path or p.path for p in params}
    missing = [p.framework_path or p.path for p in params if (p.framework_path or p.path) not in stored]
    if missing:
        raise InitSpecError(
            f"{len(missing)} described parameter(s) have no tensor"
            + (f" in {source}" if source else "")
            + f": {', '.join(printable(m) for m in missing[:5])}"
        )
    rest = {k: (t.shape, t.dtype) for k, t in stored.items() if k not in described}
    params += describe_tensors(rest, layout)
    pol = load_policy(policy)
    with warnings.catch_warnings():  # the report names unmatched parameters and rules
        warnings.simplefilter("ignore", InitSpecWarning)
        try:
            resolution = resolve(pol, list(params), strict=False)
        except ResolutionError as exc:
            raise CheckResolutionError(exc.problems) from None
    if stored and not any(p.status != "unmatched" for p in resolution.params):
        raise InitSpecError(
            f"policy {pol.name!r} matches none of the {len(stored)} tensor(s)"
            + (f" of {source}" if source else "")
            + f" (first: {printable(next(iter(stored)))!r}): wrong policy, or names it does not expect"
        )
    by_framework = {p.framework_path or p.path: p.path for p in params}
    lookup = {by_framework.get(k, k): t for k, t in stored.items()}
    checks: list[ParamCheck] = []
    for rp in resolution.params:
        info = rp.info
        tensor = lookup.get(info.path)
        if tensor is None:
            raise InitSpecError(f"parameter {info.path!r} is described but has no tensor")
        if rp.status == "init":
            checks.append(_check_param(rp, tensor))
        else:
            verdict: Verdict = "skipped" if rp.status == "skip" else "unmatched"
            label = rp.rule.label(rp.rule_index) if rp.rule and rp.rule_index is not None else None
            checks.append(ParamCheck(info.path, tuple(tensor.shape), tensor.dtype, verdict, label))
    tests = [t for c in checks for t in c.tests]
    for t, adjusted in zip(tests, holm([t.p for t in tests]), strict=True):
        t.adjusted = adjusted
        t.rejected = adjusted <= alpha
    for c in checks:
        if any(t.rejected for t in c.tests):
            c.verdict = "mismatch"
    unused = [r.label(i) for i, r in enumerate(pol.rules) if r.label(i) in resolution.unused_rules and not r.optional]
    return CheckReport(pol.name or "", float(alpha), checks, unused, strict, source)
