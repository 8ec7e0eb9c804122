"""Verifying a policy against a model's own init, parameter by parameter (#18 items 5 and 6).

``check_model(original, policy)`` applies ``policy`` (a captured policy, or a preset) to a copy
of ``original`` whose every parameter was first overwritten with a sentinel (NaN), so a
parameter the policy leaves untouched cannot go unseen, and compares each parameter, with the
plan the policy gave it, against the ORIGINAL model's values:

- a constant plan: the applied values and the original values equal it exactly;
- an identity plan (eye/dirac): the applied values equal the original exactly;
- an orthogonal plan: both are orthogonal with the plan's gain (W W^T = gain^2 I on the short
  side, to float32 rounding);
- a random plan (uniform, normal, truncated normal): both lie within the plan's bounds (if it
  has any); the rows that are exactly zero (a padding row) are the same rows in both, and are
  left out of the tests below; an original that is one repeated value under a random plan is a
  failure (a zero bias captured as a distribution); and for >= ``KS_MIN`` elements, a
  one-sample Kolmogorov-Smirnov test of the applied values AND of the original values against
  the plan's exact CDF, with z tests of their mean and variance against the plan's exact
  moments (see ``_tests``). The original passing the tests is what shows the capture (or
  preset) is right; the applied passing them shows the policy does what it says.

The p-values of a model form one family, corrected by Holm's step-down procedure at
family-wise level ``ALPHA`` = 1e-4 (PyTorch's own init tests use KS p > 1e-4 for one test), so
a model with 300 parameters is not flaky: under the hypotheses the chance that any test of the
model rejects is at most 1e-4, whatever the number of tests.

Each parameter is counted as ``exact`` (a spec with fixed numbers: the plan is the recorded
one by construction), ``fan-generalized`` (a fan-based spec: the plan follows the layer's
fans, so the policy fits other widths), ``skipped`` (a ``skip`` rule: its name is the reason)
or ``unmatched`` (no rule: not reproduced).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import initspec_torch
import numpy as np
import torch
from initspec_torch.describe import describe
from scipy import stats
from torch import nn

from initspec.plans import ConstantPlan, IdentityPlan, OrthogonalPlan

ALPHA = 1e-4  # family-wise level per model
KS_MIN = 200  # tensors of at least this many (non-padding) elements are KS-tested
KS_MAX = 20_000  # KS on a sample of this many elements (the moment tests use all)
SENTINEL = float("nan")
# Kinds whose plan depends on the parameter's shape beyond fixed numbers, besides the
# catalog's `fan_based` specs: torch's Linear bias bound 1/sqrt(fan_in of the weight), and
# torch's RNN bound 1/sqrt(hidden_size).
SHAPE_BASED_KINDS = frozenset({"torch_linear_bias", "torch_rnn"})
# float32 rounding of a value drawn at (or clamped to) a bound can land up to half an ulp
# beyond the float64 bound: 2**-24 relative.
BOUND_SLACK = 2.0**-23


@dataclass
class ParamResult:
    path: str
    names: tuple[str, ...]  # every name (ties)
    numel: int
    category: str  # exact | fan-generalized | skipped | unmatched
    rule: str = ""
    plan: str = ""
    problems: list[str] = field(default_factory=list)  # exact checks that failed
    pvalues: dict[str, float] = field(default_factory=dict)
    rejected: list[str] = field(default_factory=list)  # tests Holm rejected

    @property
    def reproduced(self) -> bool:
        return self.category in ("exact", "fan-generalized") and not (
            self.problems or self.rejected
        )


@dataclass
class ModelResult:
    name: str
    params: list[ParamResult]
    rules: int  # rules in the policy
    errors: list[str] = field(default_factory=list)  # the model could not be checked at all
    unused_rules: list[str] = field(default_factory=list)  # non-optional rules matching nothing

    def count(self, category: str) -> int:
        return sum(p.category == category for p in self.params)

    @property
    def failing(self) -> list[ParamResult]:
        return [p for p in self.params if not p.reproduced and p.category != "skipped"]

    @property
    def skipped(self) -> list[ParamResult]:
        return [p for p in self.params if p.category == "skipped"]

    @property
    def reproduced(self) -> bool:
        """Every parameter reproduced: none skipped, none failing, nothing in error."""
        return not self.errors and all(p.reproduced for p in self.params)

    def summary(self) -> str:
        lines = [
            f"{self.name}: {len(self.params)} parameters, {self.count('exact')} exact, "
            f"{self.count('fan-generalized')} fan-generalized, {self.count('skipped')} skipped, "
            f"{len(self.failing)} failing; {self.rules} rules"
        ]
        lines += [f"  error: {e}" for e in self.errors]
        for p in self.params:
            if p.category == "skipped":
                lines.append(f"  skipped {p.path}: {p.rule}")
            elif not p.reproduced:
                why = p.problems + [f"rejected: {r}" for r in p.rejected]
                if p.category == "unmatched":
                    why = ["no rule matched", *why]
                lines.append(f"  FAIL {p.path} [{p.rule}] {p.plan}: " + "; ".join(why))
        return "\n".join(lines)


def holm(pvalues: dict[str, float], alpha: float = ALPHA) -> dict[str, float]:
    """Holm's step-down procedure: the hypotheses rejected at family-wise level alpha."""
    ordered = sorted(pvalues.items(), key=lambda kv: kv[1])
    m = len(ordered)
    rejected: dict[str, float] = {}
    for i, (name, p) in enumerate(ordered):
        if p > alpha / (m - i):
            break
        rejected[name] = p
    return rejected


def sentinel_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every parameter overwritten by the sentinel (NaN)."""
    fresh = copy.deepcopy(model)
    with torch.no_grad():
        for p in fresh.parameters():
            p.fill_(SENTINEL)
    return fresh


def _as64(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float64).cpu().numpy()


def _zero_rows(x: np.ndarray) -> set[int]:
    if x.ndim < 2:
        return set()
    flat = x.reshape(x.shape[0], -1)
    return {int(i) for i in np.flatnonzero(~flat.any(axis=1))}


def _category(rp: Any) -> str:
    spec = rp.spec
    if spec is None:
        return "exact"
    if getattr(type(spec), "fan_based", False) or spec.kind in SHAPE_BASED_KINDS:
        return "fan-generalized"
    return "exact"


def _check_orthogonal(label: str, x: np.ndarray, gain: float) -> list[str]:
    m = x.reshape(x.shape[0], -1)
    if m.shape[0] > m.shape[1]:
        m = m.T
    gram = m @ m.T
    # float32 entries: each Gram entry sums n products of magnitude ~gain^2/n, rounding
    # ~1e-7 relative each; 1e-4 * gain^2 is far above that and far below an error of the
    # distribution (a non-orthogonal matrix has off-diagonal entries ~gain^2/sqrt(n)).
    err = float(np.abs(gram - gain**2 * np.eye(gram.shape[0])).max())
    return (
        []
        if err <= 1e-4 * gain**2
        else [f"{label} is not orthogonal (max |WW^T - g^2 I| {err:.2e})"]
    )


def _check_random(
    res: ParamResult, plan: Any, zero_row: int | None, ours: np.ndarray, orig: np.ndarray
) -> None:
    zo, zt = _zero_rows(orig), _zero_rows(ours)
    if zero_row is not None and zero_row not in zt:
        res.problems.append(f"applied padding row {zero_row} is not zero")
    if zo != zt:
        res.problems.append(
            f"zero rows differ: original {sorted(zo)[:5]}, applied {sorted(zt)[:5]}"
        )
    keep = sorted(set(range(orig.shape[0])) - (zo | zt)) if orig.ndim >= 2 else None
    a = (ours[keep] if keep is not None else ours).ravel()
    b = (orig[keep] if keep is not None else orig).ravel()
    if b.size > 1 and np.all(b == b[0]):
        res.problems.append(f"original is the constant {b[0]!r}, the plan random")
        return
    bounds = plan.bounds
    if bounds is not None:
        low, high = bounds
        for label, x in (("applied", a), ("original", b)):
            slack = BOUND_SLACK * max(abs(low), abs(high))
            if x.size and (x.min() < low - slack or x.max() > high + slack):
                res.problems.append(
                    f"{label} outside the plan's bounds [{low:.6g}, {high:.6g}]: "
                    f"[{x.min():.6g}, {x.max():.6g}]"
                )
    if b.size >= KS_MIN:
        for label, x in (("applied", a), ("original", b)):
            res.pvalues.update(_tests(f"{res.path}: {label}", x, plan))


def _tests(label: str, x: np.ndarray, plan: Any) -> dict[str, float]:
    """KS against the plan's CDF (on at most ``KS_MAX`` of the elements, drawn without
    replacement with a fixed seed: iid elements stay iid), and z tests of the sample mean and
    variance against the plan's exact moments on all elements. Standard errors at n iid draws
    with std sigma and kurtosis kappa: mean sigma / sqrt(n); variance
    sigma^2 sqrt((kappa - 1) / n) (Var[s^2] = (mu_4 - sigma^4) / n + O(1/n^2)). The variance
    test is the one that sees a scale error: at Holm's level with ~100 tests per model
    (|z| < ~4.9), a 2% std error (4.04% in variance) is caught from n ~ 30,000 normal
    elements; KS sees a wrong shape (uniform for normal, a missing truncation)."""
    n = x.size
    sample = x if n <= KS_MAX else np.random.default_rng(0).choice(x, KS_MAX, replace=False)
    out = {f"{label} KS vs {plan.describe()}": float(stats.kstest(sample, plan.cdf).pvalue)}
    if plan.std > 0:
        z_mean = (x.mean() - plan.mean) / (plan.std / math.sqrt(n))
        z_var = (x.var() - plan.var) / (plan.var * math.sqrt((plan.kurtosis - 1.0) / n))
        out[f"{label} mean z={z_mean:.2f}"] = float(2 * stats.norm.sf(abs(z_mean)))
        out[f"{label} var z={z_var:.2f} (std ratio {x.std() / plan.std:.4f})"] = float(
            2 * stats.norm.sf(abs(z_var))
        )
    return out


def check_model(original: nn.Module, policy: Any, *, name: str = "", seed: int = 1) -> ModelResult:
    """Apply ``policy`` to a sentinel-filled copy of ``original`` and compare every parameter
    with its plan and with ``original``'s own values (see the module docstring)."""
    import warnings

    import initspec

    fresh = sentinel_copy(original)
    pol = initspec.load_policy(policy) if not isinstance(policy, initspec.Policy) else policy
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", initspec.InitSpecWarning)  # unused rules: counted below
        # atomic=False: no restore copy (the copy is ours, and a failure fails the check)
        report = initspec_torch.apply(pol, fresh, seed=seed, atomic=False)
    resolved = {rp.info.path: rp for rp in report.resolution.params}
    theirs = {tp.info.path: tp for tp in describe(original)}
    results: list[ParamResult] = []
    errors: list[str] = []
    covered: set[int] = set()
    for tp in describe(fresh):
        path = tp.info.path
        rp = resolved[path]
        orig_tp = theirs[path]
        covered.add(id(tp.tensor))
        res = ParamResult(
            path=path,
            names=(path, *tp.info.shared_with),
            numel=tp.tensor.numel(),
            category="exact",
            rule=rp.rule.label(rp.rule_index)
            if rp.rule is not None and rp.rule_index is not None
            else "",
            plan=rp.plan.describe() if rp.plan is not None else "",
        )
        results.append(res)
        if rp.status == "skip":
            res.category = "skipped"
            continue
        if rp.status != "init":
            res.category = "unmatched"
            continue
        res.category = _category(rp)
        ours, orig = _as64(tp.tensor), _as64(orig_tp.tensor)
        if np.isnan(ours).any():
            res.problems.append("applied still holds the sentinel (NaN)")
            continue
        plan = rp.plan
        if isinstance(plan, ConstantPlan):
            # the constant as the tensor's dtype holds it (2.6592 is 2.65919995... in float32)
            value = float(torch.tensor(plan.value, dtype=tp.tensor.dtype).double())
            for label, x in (("applied", ours), ("original", orig)):
                bad = x != value
                if bad.any():
                    res.problems.append(
                        f"{label} is not the constant {value!r} ({int(bad.sum())} elements "
                        f"differ, e.g. {x[bad].ravel()[0]!r})"
                    )
        elif isinstance(plan, IdentityPlan):
            if not np.array_equal(ours, orig):
                res.problems.append("applied differs from the original (a deterministic plan)")
        elif isinstance(plan, OrthogonalPlan):
            res.problems += _check_orthogonal("applied", ours, plan.gain)
            res.problems += _check_orthogonal("original", orig, plan.gain)
        elif hasattr(plan, "cdf"):
            _check_random(res, plan, rp.zero_row, ours, orig)
        else:
            res.problems.append(f"no check for a {type(plan).__name__}")
        if tp.magnitude is not None:  # weight_norm: g must be the norm of v, in both
            for label, t, g in (
                ("applied", tp.tensor, tp.magnitude[0]),
                ("original", orig_tp.tensor, orig_tp.magnitude[0] if orig_tp.magnitude else None),
            ):
                if g is None:
                    continue
                norm = torch.norm_except_dim(t.detach(), 2, tp.magnitude[1])
                if not torch.allclose(g.detach(), norm.reshape(g.shape), rtol=1e-5, atol=0):
                    res.problems.append(f"{label} weight_norm magnitude g is not ||v||")
            covered.add(id(tp.magnitude[0]))
    for pname, p in fresh.named_parameters():
        if id(p) not in covered:
            errors.append(f"{pname}: not described (never checked)")
    family = {k: v for r in results for k, v in r.pvalues.items()}
    rejected = holm(family)
    for r in results:
        r.rejected = [k for k in r.pvalues if k in rejected]
    optional = {r.label(i) for i, r in enumerate(pol.rules) if r.optional}
    return ModelResult(
        name=name,
        params=results,
        rules=len(pol.rules),
        errors=errors,
        unused_rules=[u for u in report.resolution.unused_rules if u not in optional],
    )


@dataclass
class ZooResult:
    """One zoo model: the captured policy checked on the model it was captured from, and on
    the same architecture at a third width (neither of the two builds capture saw)."""

    name: str
    policy: Any  # initspec.Policy
    result: ModelResult
    third: ModelResult
    seconds: float


def run_zoo_model(z: Any, seed: int = 0) -> ZooResult:
    """Build ``z`` (a ``zoo.ZooModel``) with its own init, capture it (``also`` = the second
    width), check the captured policy against the build and against a third width."""
    import time

    start = time.perf_counter()
    torch.manual_seed(seed)
    original = z.build()
    policy = initspec_torch.capture(z.build, also=z.also)
    result = check_model(original, policy, name=z.name)
    torch.manual_seed(seed + 1)
    third = check_model(z.third(), policy, name=f"{z.name} (third width)")
    return ZooResult(z.name, policy, result, third, time.perf_counter() - start)
