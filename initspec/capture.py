"""Capture, framework-free: what a model's init did to each parameter -> an ordered policy.

An adapter (``initspec_torch.capture``) records, per parameter, the value its init code left:
a catalog spec times a gain (``Drawn``), or a reason it has none (``Inexpressible``), with the
calls it saw. This module holds the algebra those records are built with (the distribution
after ``mul_``, ``add_``, ``clamp_``, ``erfinv_``; a fan-based spec read in torch's layout and
re-read in the parameter's own), and ``synthesize``: the records -> a ``Policy`` whose
rules give every parameter exactly the plan its record says, in as few ordered rules as
the policy language allows, verified by resolving the policy against the same parameters.

Nothing is approximated: a number is kept as recorded, up to float noise (``tidy``: the
shortest decimal within 4 ulps, so ``0.02 * sqrt(2) / sqrt(2)`` is written 0.02); a value
outside the catalog becomes a ``skip`` rule whose name says why.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from initspec.errors import InitSpecError, printable
from initspec.layout import LayoutLike, fans
from initspec.numeric import FLOAT_DTYPES
from initspec.plans import (
    ConstantPlan,
    NormalPlan,
    Plan,
    TruncatedNormalPlan,
    UniformPlan,
)
from initspec.policy import DepthScale, Match, Policy, Rule
from initspec.resolve import ParamInfo, match_names, resolve
from initspec.specs import (
    TRUNC_STD_2SIGMA,
    Constant,
    Dirac,
    Eye,
    FanTruncatedNormal,
    Normal,
    Ones,
    SpecBase,
    TorchLinearBias,
    TorchRnn,
    TruncatedNormal,
    Uniform,
    VarianceScaling,
    Zeros,
)

# Relative tolerance for "the same number" between two float computations of one value
# (torch's gain / sqrt(fan) vs a spec's formula, erfinv(erf(x)) vs x): a few ulps in
# float64 are 1e-15; 1e-9 leaves room for a chain of ops and is far below any difference
# between two intended values.
REL_TOL = 1e-9

_PLAIN = (Zeros, Ones, Constant, Normal, Uniform, TruncatedNormal)
# Structural plans whose gain is a scale only for positive factors.
_POSITIVE_GAIN_ONLY = (Eye, Dirac)


def tidy(x: float) -> float:
    """``x`` as the shortest decimal within 4 ulps of it (float noise of a computation that
    meant that decimal, e.g. ``0.02 * math.sqrt(2) / math.sqrt(2)``); else ``x``."""
    if x == 0.0 or not math.isfinite(x):
        return x
    for digits in range(1, 18):
        y = float(f"{x:.{digits}g}")
        if abs(y - x) <= 4 * math.ulp(x):
            return y
    return x


def close(a: float, b: float, rel: float = REL_TOL) -> bool:
    return a == b or abs(a - b) <= rel * max(abs(a), abs(b))


class BuildError(InitSpecError):
    """The model's build could not be captured: it raised, returned no module, or
    initialized nothing."""


# Values ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Drawn:
    """A catalog spec times ``gain``, applied to a tensor of ``shape`` whose axes were read
    in ``layout`` (torch.nn.init reads (out, in, *k): ``torch``)."""

    spec: SpecBase
    gain: float = 1.0
    shape: tuple[int, ...] = ()
    layout: LayoutLike = "torch"
    global_rng: bool = False  # drawn by torch.randn & co. (then copied), not in place

    def describe(self) -> str:
        body = _spec_text(self.spec)
        return body if self.gain == 1.0 else f"{body} x {self.gain:.6g}"


@dataclass(frozen=True)
class Inexpressible:
    """No catalog spec has this value: ``reason`` says why (it names the skip rule)."""

    reason: str

    def describe(self) -> str:
        return f"not expressible: {self.reason}"


Value = Drawn | Inexpressible

UNINITIALIZED = Inexpressible("never initialized (created by torch.empty and never written)")


def _spec_text(spec: SpecBase) -> str:
    fields = spec.model_dump(mode="json")
    kind = fields.pop("kind")
    defaults = type(spec).model_validate({}).model_dump(mode="json")
    shown = [
        f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in fields.items()
        if defaults.get(k) != v
    ]
    return f"{kind}({', '.join(shown)})"


def constant(value: float) -> Drawn:
    value = tidy(float(value))
    if value == 0.0:
        return Drawn(Zeros())
    if value == 1.0:
        return Drawn(Ones())
    return Drawn(Constant(value=value))


def const_value(v: Value) -> float | None:
    if not isinstance(v, Drawn):
        return None
    if isinstance(v.spec, Zeros):
        return 0.0
    if isinstance(v.spec, Ones):
        return 1.0
    if isinstance(v.spec, Constant):
        return v.spec.value
    return None


def _rebuild(spec: SpecBase, **changes: Any) -> SpecBase | Inexpressible:
    fields = {
        k: tidy(v) if isinstance(v, float) else v for k, v in {**dict(spec), **changes}.items()
    }
    try:
        return type(spec).model_validate(fields)
    except Exception as exc:  # a bound or std outside what the catalog accepts
        return Inexpressible(
            f"{spec.kind_name()} with {changes} is outside the catalog ({exc.__class__.__name__})"
        )


def _wrap(spec: SpecBase | Inexpressible, like: Drawn) -> Value:
    return spec if isinstance(spec, Inexpressible) else replace(like, spec=spec, gain=1.0)


def scale(v: Value, c: float) -> Value:
    """The value of ``x * c`` (``mul_``, ``div_``, ``x * std``)."""
    if isinstance(v, Inexpressible):
        return v
    if not math.isfinite(c):
        return Inexpressible(f"multiplied by {c}")
    k = const_value(v)
    if k is not None:
        return constant(k * c)
    if c == 0.0:
        return constant(0.0)
    s = v.spec
    if isinstance(s, Normal):
        return _wrap(_rebuild(s, mean=s.mean * c, std=s.std * abs(c)), v)
    if isinstance(s, Uniform):
        lo, hi = sorted((s.low * c, s.high * c))
        return _wrap(_rebuild(s, low=lo, high=hi), v)
    if isinstance(s, TruncatedNormal):
        if s.bounds == "absolute":
            lo, hi = sorted((s.low * c, s.high * c))
        else:
            lo, hi = (s.low, s.high) if c > 0 else (-s.high, -s.low)
        return _wrap(_rebuild(s, mean=s.mean * c, std=s.std * abs(c), low=lo, high=hi), v)
    if isinstance(s, _POSITIVE_GAIN_ONLY) and c < 0:
        return Inexpressible(f"{s.kind_name()} multiplied by a negative number ({c:.6g})")
    # Every other kind is zero-mean and symmetric (fan-based, orthogonal, sparse, torch's
    # bias and RNN uniforms): -x has the distribution of x, so |c| is the gain.
    return replace(v, gain=tidy(v.gain * abs(c)))


def shift(v: Value, c: float) -> Value:
    """The value of ``x + c`` (``add_``, ``sub_``)."""
    if isinstance(v, Inexpressible) or c == 0.0:
        return v
    if not math.isfinite(c):
        return Inexpressible(f"shifted by {c}")
    k = const_value(v)
    if k is not None:
        return constant(k + c)
    s = v.spec
    if isinstance(s, Normal):
        return _wrap(_rebuild(s, mean=s.mean + c), v)
    if isinstance(s, Uniform):
        return _wrap(_rebuild(s, low=s.low + c, high=s.high + c), v)
    if isinstance(s, TruncatedNormal):
        if s.bounds == "absolute":
            return _wrap(_rebuild(s, mean=s.mean + c, low=s.low + c, high=s.high + c), v)
        return _wrap(_rebuild(s, mean=s.mean + c), v)
    return Inexpressible(f"{s.kind_name()} shifted by {c:.6g}: the catalog's kind has no mean")


def clamp(v: Value, low: float | None, high: float | None) -> Value:
    """The value of ``x.clamp(low, high)``: a constant clamped, a bounded distribution whose
    support lies inside (its bounds set to ``low`` / ``high`` where they agree to float
    noise, as timm's and torch's ``trunc_normal_`` clamp to the bounds they drew in)."""
    if isinstance(v, Inexpressible):
        return v
    k = const_value(v)
    if k is not None:
        if low is not None:
            k = max(k, low)
        if high is not None:
            k = min(k, high)
        return constant(k)
    s = v.spec
    if v.gain == 1.0 and isinstance(s, Normal) and low is not None and high is not None:
        # torch's and timm's trunc_normal_ with bounds far out (std 0.02 in +-2): U(-1, 1)
        # -> erfinv_ is the normal itself, and the clamp cuts a mass below 2**-53, which no
        # float draw reaches (the uniform's resolution): the truncated normal it is.
        from initspec.plans import normal_mass

        outside = 1.0 - normal_mass((low - s.mean) / s.std, (high - s.mean) / s.std)
        if low < high and outside < 2.0**-53:
            return _wrap(_rebuild(TruncatedNormal(), mean=s.mean, std=s.std, low=low, high=high), v)
        return Inexpressible(
            f"clamp_({low:.6g}, {high:.6g}) cuts a normal(std={s.std:.6g}): mass at the bounds"
        )
    if v.gain == 1.0 and isinstance(s, (Uniform, TruncatedNormal)):
        lo, hi = (s.low, s.high) if isinstance(s, Uniform) else s.absolute_bounds()
        new_lo, new_hi = lo, hi
        if low is not None:
            if not (low <= lo or close(low, lo)):
                return Inexpressible(
                    f"clamp_(min={low:.6g}) cuts {s.kind_name()} (mass at the bound)"
                )
            new_lo = low if close(low, lo) else lo
        if high is not None:
            if not (high >= hi or close(high, hi)):
                return Inexpressible(
                    f"clamp_(max={high:.6g}) cuts {s.kind_name()} (mass at the bound)"
                )
            new_hi = high if close(high, hi) else hi
        if isinstance(s, Uniform):
            return _wrap(_rebuild(s, low=new_lo, high=new_hi), v)
        if s.bounds == "absolute":
            return _wrap(_rebuild(s, low=new_lo, high=new_hi), v)
        return v
    return Inexpressible(
        f"clamp_ of {s.kind_name()}: point masses at the bounds, outside the catalog"
    )


def erfinv(x: float) -> float:
    """The inverse of ``math.erf`` on (-1, 1), by Newton's method from a close start (to
    the last ulp or two: the error of ``math.erf`` itself)."""
    if not -1.0 < x < 1.0:
        raise ValueError(f"erfinv needs -1 < x < 1, got {x}")
    if x == 0.0:
        return 0.0
    # Start: the inverse of the logistic-like approximation (Winitzki 2008), then Newton.
    a = 0.147
    ln = math.log1p(-x * x)
    t = 2.0 / (math.pi * a) + ln / 2.0
    y = math.copysign(math.sqrt(math.sqrt(t * t - ln / a) - t), x)
    for _ in range(60):
        step = (math.erf(y) - x) / (2.0 / math.sqrt(math.pi) * math.exp(-y * y))
        y -= step
        if abs(step) <= 1e-17 * max(1.0, abs(y)):
            break
    return y


def apply_erfinv(v: Value) -> Value:
    """The value of ``x.erfinv_()``: for U(l, h) inside [-1, 1] (the first step of torch's and
    timm's ``trunc_normal_``), N(0, 1/2) truncated to [erfinv(l), erfinv(h)]."""
    if isinstance(v, Drawn) and isinstance(v.spec, Uniform) and v.gain == 1.0:
        lo, hi = v.spec.low, v.spec.high
        if lo == -1.0 and hi == 1.0:
            return replace(v, spec=Normal(mean=0.0, std=math.sqrt(0.5)))
        if -1.0 < lo < hi < 1.0:
            spec = TruncatedNormal(mean=0.0, std=math.sqrt(0.5), low=erfinv(lo), high=erfinv(hi))
            return replace(v, spec=spec)
    what = v.reason if isinstance(v, Inexpressible) else v.describe()
    return Inexpressible(f"erfinv_ of {what}")


# Plans and specs -------------------------------------------------------------------------


def plan_of(
    v: Drawn, shape: tuple[int, ...], layout: LayoutLike, info: ParamInfo | None = None
) -> Plan:
    plan = v.spec.plan(shape, layout, info.context if info is not None else None)
    return plan if v.gain == 1.0 else plan.scaled(v.gain)


def plans_close(a: Plan, b: Plan) -> bool:
    """Same plan type, shape and parameters, numbers equal to ``REL_TOL`` (fans ignored:
    they describe, they do not change the distribution)."""
    if type(a) is not type(b) or a.shape != b.shape:
        return False
    da, db = dict(vars(a)), dict(vars(b))
    for key in ("fans", "shape"):
        da.pop(key, None)
        db.pop(key, None)
    if da.keys() != db.keys():
        return False
    for key, x in da.items():
        y = db[key]
        if isinstance(x, float) and isinstance(y, float):
            if not close(x, y):
                return False
        elif x != y:
            return False
    return True


def literal_spec(plan: Plan) -> SpecBase | None:
    """The plain spec (constant, normal, uniform, truncated normal) with this plan, or None."""
    if isinstance(plan, ConstantPlan):
        return constant(plan.value).spec
    if isinstance(plan, NormalPlan):
        return Normal(mean=tidy(plan.loc), std=tidy(abs(plan.scale)))
    if isinstance(plan, UniformPlan):
        return Uniform(low=tidy(plan.low), high=tidy(plan.high))
    if isinstance(plan, TruncatedNormalPlan):
        return TruncatedNormal(
            mean=tidy(plan.loc), std=tidy(plan.scale), low=tidy(plan.low), high=tidy(plan.high)
        )
    return None


def _mode_swapped(spec: SpecBase) -> SpecBase | None:
    mode = getattr(spec, "mode", None)
    swap = {"fan_in": "fan_out", "fan_out": "fan_in"}.get(str(mode))
    return spec.model_copy(update={"mode": swap}) if swap else None


def settle(v: Value, info: ParamInfo) -> tuple[Value, str]:
    """``v`` (as recorded, fans read in ``v.layout`` on ``v.shape``) as a value whose spec,
    read in the parameter's own layout, has the same plan; and a note on how (empty when
    nothing changed). A spec read in another layout gets its mode swapped (HF ``Conv1D``
    stores (in, out): torch's ``fan_in`` is its ``fan_out``) or is written as the literal
    plan; a plain spec has its gain folded in."""
    if isinstance(v, Inexpressible):
        return v, ""
    spec, note = v.spec, ""
    if isinstance(spec, _PLAIN):
        if v.gain != 1.0:
            folded = scale(replace(v, gain=1.0), v.gain)
            return folded, ""
        return replace(v, shape=info.shape, layout=info.layout), ""
    try:
        recorded = plan_of(v, v.shape or info.shape, v.layout, info)
    except InitSpecError as exc:
        return Inexpressible(f"{v.describe()} cannot be planned: {exc}"), ""
    if tuple(v.shape or info.shape) == tuple(info.shape):
        for candidate in (spec, _mode_swapped(spec)):
            if candidate is None:
                continue
            moved = replace(v, spec=candidate, shape=info.shape, layout=info.layout)
            try:
                if plans_close(plan_of(moved, info.shape, info.layout, info), recorded):
                    if candidate is not spec:
                        note = f"mode swapped ({getattr(spec, 'mode', '')} in torch's reading of this layout)"
                    return moved, note
            except InitSpecError:
                continue
    lit = literal_spec(recorded)
    if lit is None:
        return Inexpressible(
            f"{v.describe()} on a tensor of shape {v.shape}, not the parameter's {info.shape}"
        ), ""
    return Drawn(
        lit, 1.0, info.shape, info.layout, v.global_rng
    ), f"written as its plan ({recorded.describe()})"


# Records and the report -------------------------------------------------------------------


@dataclass
class ParamRecord:
    """One parameter: its description, its final value, the padding row its init zeroed
    (the embedding's ``padding_idx``), and the calls that wrote it, in order."""

    info: ParamInfo
    value: Value
    zero_row: bool = False
    calls: tuple[str, ...] = ()
    note: str = ""


@dataclass
class CaptureReport:
    """What ``capture`` recorded and wrote: ``policy``, one row per parameter (``rows``),
    the parameters skipped with their reasons (``skipped``), and how the capture ran
    (``notes``: the device, a fallback, fan generalization)."""

    policy: Policy
    records: list[ParamRecord]
    expected: dict[str, str]  # path -> the plan, described
    rule_of: dict[str, str]  # path -> rule label
    notes: list[str] = field(default_factory=list)

    @property
    def skipped(self) -> dict[str, str]:
        return {
            r.info.path: r.value.reason for r in self.records if isinstance(r.value, Inexpressible)
        }

    def rows(self) -> list[dict[str, Any]]:
        out = []
        for r in self.records:
            out.append(
                {
                    "path": r.info.path,
                    "shared_with": list(r.info.shared_with),
                    "shape": list(r.info.shape),
                    "calls": list(r.calls),
                    "value": r.value.describe() + (" (padding row zero)" if r.zero_row else ""),
                    "rule": self.rule_of.get(r.info.path),
                    "plan": self.expected.get(r.info.path),
                    "note": r.note,
                }
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy.model_dump(mode="json", exclude_none=True),
            "parameters": self.rows(),
            "skipped": self.skipped,
            "notes": list(self.notes),
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def table(self) -> str:
        head = ("parameter", "shape", "recorded", "rule", "plan")
        body = []
        for row in self.rows():
            calls = _last_calls(row["calls"])
            plan = row["plan"] or f"skipped: {self.skipped.get(row['path'], '')}"
            cells = (
                row["path"]
                + (f" (= {', '.join(row['shared_with'])})" if row["shared_with"] else ""),
                "x".join(map(str, row["shape"])) or "()",
                calls,
                row["rule"] or "-",
                plan,
            )
            body.append(tuple(printable(str(c)) for c in cells))
        widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
        lines = [
            "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            for row in [head, *body]
        ]
        lines.insert(1, "  ".join("-" * w for w in widths))
        lines.append(
            f"{len(body)} parameters, {len(self.policy.rules)} rules, {len(self.skipped)} skipped"
        )
        lines.extend(f"note: {printable(n)}" for n in self.notes)
        return "\n".join(lines)

    def rules_text(self) -> str:
        lines = []
        for i, rule in enumerate(self.policy.rules):
            match = json.dumps(rule.match.model_dump(mode="json", exclude_none=True))
            what = (
                "skip"
                if rule.skip
                else json.dumps(rule.init.model_dump(mode="json") if rule.init else {})
            )
            extra = ""
            if rule.gain != 1.0:
                extra += f" gain={rule.gain:.6g}"
            if rule.depth_scale is not None:
                extra += f" depth_scale={json.dumps(rule.depth_scale.model_dump(mode='json', exclude_none=True))}"
            if rule.zero_padding_row:
                extra += " zero_padding_row"
            lines.append(printable(f"#{i} {rule.name}: {match} -> {what}{extra}"))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.rules_text() + "\n\n" + self.table()


def _last_calls(calls: list[str], width: int = 70) -> str:
    """The calls joined by ``->``; when longer than ``width``, the last ones that fit (the
    last writes are the ones that count) after ``...``."""
    text = " -> ".join(calls) or "-"
    if len(text) <= width:
        return text
    kept: list[str] = []
    for call in reversed(calls):
        if kept and len(" -> ".join([call, *kept])) > width - 7:
            break
        kept.insert(0, call)
    return "... -> " + " -> ".join(kept)


# Synthesis --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    """What one parameter must receive: ``init`` (spec, gain, depth scale, padding row)
    or a skip with its reason."""

    spec: SpecBase | None
    gain: float = 1.0
    depth: DepthScale | None = None
    zero_row: bool = False
    reason: str = ""

    def key(self) -> str:
        if self.spec is None:
            return json.dumps(["skip", self.reason])
        depth = self.depth.model_dump(mode="json", exclude_none=True) if self.depth else None
        return json.dumps(
            [self.spec.model_dump(mode="json"), self.gain, depth, self.zero_row], sort_keys=True
        )


def _target(record: ParamRecord) -> _Target:
    v = record.value
    if isinstance(v, Inexpressible):
        return _Target(None, reason=v.reason)
    return _Target(v.spec, v.gain, None, record.zero_row)


# Fan generalization ------------------------------------------------------------------------

_MODES = ("fan_in", "fan_out", "fan_avg")


def _fan(info: ParamInfo, mode: str) -> float | None:
    try:
        fi, fo = fans(info.shape, info.layout)
    except InitSpecError:
        return None
    return {"fan_in": fi, "fan_out": fo, "fan_avg": (fi + fo) / 2.0}[mode] or None


@dataclass
class _Fit:
    spec: SpecBase
    how: str


def generalize(pairs: Sequence[tuple[ParamInfo, SpecBase]]) -> _Fit | None:
    """A fan-based spec giving, on every parameter of ``pairs``, the plan of its literal
    spec, where the literal std follows ``sqrt(scale / fan)`` with one scale for all and the
    fans take at least two values; else None. Tried: a bias U(+-1/sqrt(fan_in of its
    weight)) (``torch_linear_bias``, one parameter is enough: the bound names the fan);
    normal, uniform and 2-sigma truncated normal by fan_in, fan_out, fan_avg
    (``variance_scaling``); a truncated normal cut at c std (``fan_truncated_normal``)."""
    specs = [s for _, s in pairs if s is not None]
    kinds = {type(s) for s in specs}
    if len(kinds) != 1:
        return None
    # torch's Linear/Conv bias (ConvTranspose: torch's "fan_in" is the weight's fan_out).
    if all(isinstance(s, Uniform) for s in specs):
        for i, mode in enumerate(("fan_in", "fan_out")):
            ok = True
            for info, s in pairs:
                assert isinstance(s, Uniform)
                wf = info.context.weight_fans
                if (
                    info.role != "bias"
                    or wf is None
                    or wf[i] <= 0
                    or not close(s.high, 1 / math.sqrt(wf[i]))
                    or not close(s.low, -s.high)
                ):
                    ok = False
                    break
            if ok:
                return _Fit(
                    TorchLinearBias.model_validate({"mode": mode}),
                    f"bound = 1/sqrt({mode} of the weight)",
                )
    fits = [fit for mode in _MODES if (fit := _fit_mode(pairs, mode)) is not None]
    if not fits:
        return None
    # Where the fans scale together (in and out channels both doubled), several modes fit:
    # the scale that is a known constant (He 2, LeCun and Glorot 1, torch's 1/3, ...) names
    # the intended one; else the roundest. The report says the others fit too.
    best = min(fits, key=lambda f: _scale_rank(getattr(f.spec, "scale", 1.0)))
    if len(fits) > 1:
        others = ", ".join(f.how for f in fits if f is not best)
        best = _Fit(best.spec, f"{best.how} (also fits: {others}; chose the known constant)")
    return best


_KNOWN_SCALES = (1.0, 2.0, 1.0 / 3.0, 0.5, 3.0, 0.4, 0.25, 4.0)


def _scale_rank(x: float) -> tuple[int, int]:
    """(0, index) for a known scale, else (1, significant digits needed)."""
    for i, k in enumerate(_KNOWN_SCALES):
        if close(x, k, 1e-7):
            return 0, i
    digits = next((d for d in range(1, 18) if close(x, float(f"{x:.{d}g}"), 1e-9)), 17)
    return 1, digits


def _fit_mode(pairs: Sequence[tuple[ParamInfo, SpecBase]], mode: str) -> _Fit | None:
    fan_values = [_fan(info, mode) for info, _ in pairs]
    if any(f is None for f in fan_values) or len(set(fan_values)) < 2:
        return None
    scales: list[float] = []
    dists: set[str] = set()
    for (_, s), f in zip(pairs, fan_values, strict=True):
        assert f is not None
        if isinstance(s, Normal) and s.mean == 0.0:
            scales.append(s.std**2 * f)
            dists.add("normal")
        elif isinstance(s, Uniform) and close(s.low, -s.high):
            scales.append(s.high**2 / 3.0 * f)
            dists.add("uniform")
        elif isinstance(s, TruncatedNormal) and s.mean == 0.0:
            lo, hi = s.absolute_bounds()
            cut = hi / s.std
            if not (close(lo, -hi) and close(cut, round(cut * 1e6) / 1e6)):
                return None
            scales.append(s.std**2 * f)
            dists.add(f"{round(cut * 1e6) / 1e6}")
        else:
            return None
    if len(dists) != 1 or not all(close(x, scales[0], 1e-7) for x in scales):
        return None
    sc, dist = tidy(scales[0]), dists.pop()
    fit: SpecBase
    if dist in ("normal", "uniform"):
        fit = VarianceScaling.model_validate({"scale": sc, "mode": mode, "distribution": dist})
    elif float(dist) == 2.0:
        fit = VarianceScaling.model_validate(
            {
                "scale": tidy(sc * TRUNC_STD_2SIGMA**2),
                "mode": mode,
                "distribution": "truncated_normal",
            }
        )
    else:
        fit = FanTruncatedNormal.model_validate({"scale": sc, "mode": mode, "cutoff": float(dist)})
    # The fitted spec's plan on each parameter must be its literal plan.
    for info, s in pairs:
        try:
            if not plans_close(
                fit.plan(info.shape, info.layout, info.context),
                s.plan(info.shape, info.layout, info.context),
            ):
                return None
        except InitSpecError:
            return None
    return _Fit(fit, f"std**2 x {mode} = {sc:.6g}")


def _literal_fan_family(t: _Target) -> bool:
    s = t.spec
    if t.gain != 1.0 or t.depth is not None or t.zero_row:
        return False
    return (
        (isinstance(s, Normal) and s.mean == 0.0)
        or (isinstance(s, Uniform) and close(s.low, -s.high))
        or (isinstance(s, TruncatedNormal) and s.mean == 0.0)
    )


def generalize_within(records: Sequence[ParamRecord], targets: dict[str, _Target]) -> list[str]:
    """In one build: parameters of one kind and role (then: of one leaf path, ``*.q.weight``)
    whose literal stds differ and follow ``sqrt(scale / fan)`` with one scale, over at least
    two fans, get the fan-based spec (T5's ``f / sqrt(fan_in)``). Returns notes."""
    notes: list[str] = []
    infos = {r.info.path: r.info for r in records}

    def attempt(paths: list[str], what: str) -> bool:
        values = {targets[p].key() for p in paths}
        if len(paths) < 2 or len(values) < 2:
            return False
        pairs = []
        for p in paths:
            spec = targets[p].spec
            assert spec is not None
            pairs.append((infos[p], spec))
        fit = generalize(pairs)
        if fit is None or isinstance(fit.spec, TorchLinearBias):
            return False
        for p in paths:
            targets[p] = replace(targets[p], spec=fit.spec)
        fitted.append(fit.spec)
        notes.append(f"{len(paths)} {what} parameters fan-generalized within the build: {fit.how}")
        return True

    def adopt(paths: list[str]) -> None:
        """A literal left over (a lone stem conv) whose plan is that of a spec fitted on
        other parameters of its kind and role takes that spec."""
        for p in paths:
            t, info = targets[p], infos[p]
            if not _literal_fan_family(t) or t.spec is None:
                continue
            for spec in fitted:
                try:
                    same = plans_close(
                        spec.plan(info.shape, info.layout, info.context),
                        t.spec.plan(info.shape, info.layout, info.context),
                    )
                except InitSpecError:
                    same = False
                if same:
                    targets[p] = replace(t, spec=spec)
                    notes.append(
                        f"{p}: the fan-based spec fitted on its kind and role has its plan"
                    )
                    break

    buckets: dict[tuple[str, ...], list[str]] = {}
    for path, t in targets.items():
        if _literal_fan_family(t):
            info = infos[path]
            buckets.setdefault((info.kind, info.role, type(t.spec).__name__), []).append(path)
    for key, paths in buckets.items():
        fitted: list[SpecBase] = []
        if attempt(paths, f"{key[0]}/{key[1]}"):
            continue
        by_leaf: dict[str, list[str]] = {}
        for p in paths:
            by_leaf.setdefault(".".join(_generalized(p)[-2:]), []).append(p)
        for leaf, sub in by_leaf.items():
            attempt(sub, f"*.{leaf}")
        adopt(paths)
    return notes


# Grouping into rules ----------------------------------------------------------------------


def _matches(match: Match, info: ParamInfo) -> bool:
    """Whether ``match`` matches the parameter under any of its names, as ``resolve`` does."""
    for desc in (info, *info.aliases):
        if not match.matches_attributes(desc.kind, desc.module_types, desc.role, len(desc.shape)):
            continue
        if any(match.matches_path(n) for n in match_names(desc)) and match.matches_within(
            desc.ancestors
        ):
            return True
    return False


def _glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def _generalized(path: str) -> list[str]:
    return ["*" if part.isdigit() else _glob_escape(part) for part in path.split(".")]


def _suffix_glob(parts: list[str], k: int) -> str:
    """The last ``k`` components of a generalized path, under any prefix."""
    tail = ".".join(parts[-k:])
    return tail if k >= len(parts) else f"*.{tail}"


def _candidates(members: list[ParamInfo], rest: list[ParamInfo]) -> Iterable[tuple[int, Match]]:
    """Matchers for a class of parameters, simplest first, as (complexity, match)."""
    roles = sorted({m.role for m in members})
    kinds = sorted({m.kind for m in members})
    types = sorted({m.module_types[0] for m in members if m.module_types})
    if len(roles) == 1:
        yield 1, Match(role=roles)  # type: ignore[arg-type]
    if len(kinds) <= 2:
        yield 2, Match(kind=kinds)  # type: ignore[arg-type]
    if len(roles) == 1 and len(kinds) <= 2:
        yield 3, Match(kind=kinds, role=roles)  # type: ignore[arg-type]
    # Path globs: per member the shortest generalized suffix that matches no other parameter.
    # Members with one generalized path (the same leaf in every layer) share their glob.
    globs: set[str] = set()
    for general in {tuple(_generalized(m.path)): m.path for m in members}.items():
        parts, path = list(general[0]), general[1]
        chosen = None
        for k in range(1, len(parts) + 1):
            if k < len(parts) and parts[-k] == "*":
                continue  # "*.*.weight" reads worse than "blocks.*.weight"
            glob = _suffix_glob(parts, k)
            if not any(_matches(_probe(glob), o) for o in rest):
                chosen = glob
                break
        if chosen is None:  # the generalized path matches another parameter: this one's own
            chosen = _glob_escape(path)
            globs.update(_glob_escape(m.path) for m in members if _generalized(m.path) == parts)
        globs.add(chosen)
    unique = sorted(globs)
    if not any(_matches(Match(path=unique), o) for o in rest):
        yield 10 + len(unique), Match(path=unique)
    # Class names last: a Flax twin's classes are not the torch model's (paths, kinds and
    # roles are one vocabulary for both).
    if types and len(types) <= 3:
        yield 50, Match(module=types)
        if len(roles) == 1:
            yield 51, Match(module=types, role=roles)  # type: ignore[arg-type]
    yield 1000 + len(members), Match(path=sorted({_glob_escape(m.path) for m in members}))


@functools.lru_cache(maxsize=4096)
def _probe(glob: str) -> Match:
    return Match(path=[glob])


def _rule_name(target: _Target) -> str:
    if target.spec is None:
        return f"skip: {target.reason}"[:200]
    body = _spec_text(target.spec)
    if target.gain != 1.0:
        body += f" x {target.gain:.6g}"
    d = target.depth
    if d is not None:
        n = f"(layer_id + {d.offset})" if d.layer_id is not None else "n_layers"
        body += f" / sqrt({d.factor:g} {n})"
    return body[:200]


def group(records: Sequence[ParamRecord], targets: dict[str, _Target]) -> list[Rule]:
    """Ordered rules giving each parameter its target, first match wins: at each step the
    class (of parameters with one target) that the simplest matcher covers entirely while
    matching no other parameter still without a rule."""
    remaining = [r.info for r in records]
    rules: list[Rule] = []
    while remaining:
        classes: dict[str, list[ParamInfo]] = {}
        for info in remaining:
            classes.setdefault(targets[info.path].key(), []).append(info)
        best: tuple[int, int, str, Match] | None = None
        for key, members in classes.items():
            member_paths = {m.path for m in members}
            rest = [o for o in remaining if o.path not in member_paths]
            for complexity, match in _candidates(members, rest):
                if all(_matches(match, m) for m in members) and not any(
                    _matches(match, o) for o in rest
                ):
                    score = (complexity, -len(members))
                    if best is None or score < (best[0], best[1]):
                        best = (complexity, -len(members), key, match)
                    break
        assert best is not None  # exact paths always qualify
        _, _, key, match = best
        members = classes[key]
        t = targets[members[0].path]
        rules.append(
            Rule(
                name=_rule_name(t),
                match=match,
                init=t.spec,
                skip=t.spec is None,
                gain=t.gain,
                depth_scale=t.depth,
                zero_padding_row=t.zero_row,
            )
        )
        covered = {m.path for m in members}
        remaining = [o for o in remaining if o.path not in covered]
    return rules


# Depth scaling -------------------------------------------------------------------------------


def _specs_close(a: SpecBase | None, b: SpecBase | None) -> bool:
    """Same kind and fields, numbers equal to ``REL_TOL``."""
    if a is None or b is None or type(a) is not type(b):
        return False
    da, db = dict(a), dict(b)
    return all(
        close(x, db[k]) if isinstance(x, float) and isinstance(db[k], float) else x == db[k]
        for k, x in da.items()
    )


def _layer_split(path: str) -> tuple[str, int, str] | None:
    """``(head, index, tail)`` around the first numeric component: ``h.3.attn.w`` ->
    ``("h", 3, "attn.w")``."""
    parts = path.split(".")
    for i, part in enumerate(parts):
        if part.isdigit() and 0 < i < len(parts) - 1:
            return ".".join(parts[:i]), int(part), ".".join(parts[i + 1 :])
    return None


def _std_of(spec: SpecBase | None) -> float | None:
    if isinstance(spec, (Normal, TruncatedNormal)):
        return spec.std
    if isinstance(spec, Uniform):
        return (spec.high - spec.low) / math.sqrt(12.0)
    return None


def _round_ish(x: float) -> bool:
    """Whether ``x`` is a decimal of at most 4 significant digits (0.02, 1e-3, 0.125)."""
    return close(x, float(f"{x:.4g}"), 1e-12)


def depth_scaled(targets: dict[str, _Target], infos: Sequence[ParamInfo]) -> list[str]:
    """Recognize depth scaling; rewrite the targets; return notes.

    - over layers (torchtitan, timm ``fix_init``): parameters with one path but their layer
      index whose stds follow ``b / sqrt(f * (layer_id + offset))``, and whose specs agree once
      each is multiplied by ``sqrt(f * (layer_id + offset))``: the spec with ``b`` and
      ``depth_scale {factor f, layer_id "<head>.{layer_id}.*", offset}``; ``f`` is the first of
      2, 1, 3..8 that makes ``b`` a short decimal, else 1;
    - by the number of blocks (GPT-2): parameters inside numbered blocks whose normal std is
      ``b / sqrt(f * n)``, ``b`` the std of another class, ``n`` the number of blocks and ``f``
      a whole factor from 1 to 8: ``b`` with ``depth_scale {factor f, n_layers "count:<head>.*"}``.
    """
    notes: list[str] = []
    all_paths = [i.path for i in infos]
    # Over layers.
    families: dict[tuple[str, str], dict[int, str]] = {}
    for path, t in targets.items():
        split = _layer_split(path)
        if split is not None and t.spec is not None and t.depth is None and not t.zero_row:
            if _std_of(t.spec) is not None and const_value(Drawn(t.spec)) is None:
                families.setdefault((split[0], split[2]), {})[split[1]] = path
    for (head, tail), layers in families.items():
        if len(layers) < 3 or 0 not in layers or 1 not in layers:
            continue
        s0, s1 = _std_of(targets[layers[0]].spec), _std_of(targets[layers[1]].spec)
        assert s0 is not None and s1 is not None
        if close(s0, s1):
            continue
        r = (s0 / s1) ** 2  # (1 + o) / o
        if r <= 1:
            continue
        o = round(1.0 / (r - 1.0))
        if o < 1 or not close(1.0 / (r - 1.0), o, 1e-7):
            continue
        k = s0 * math.sqrt(o)  # b / sqrt(f)
        f = next((f for f in (2, 1, 3, 4, 5, 6, 7, 8) if _round_ish(k * math.sqrt(f))), 1)
        bases = {}
        for lid, path in layers.items():
            t = targets[path]
            back = scale(
                Drawn(t.spec) if t.spec is not None else Inexpressible(""), math.sqrt(f * (lid + o))
            )
            if not isinstance(back, Drawn):
                break
            bases[lid] = replace(t, spec=back.spec, gain=t.gain)
        else:
            first = bases[0]
            if not all(
                _specs_close(b.spec, first.spec) and b.gain == first.gain for b in bases.values()
            ):
                continue
            depth = DepthScale(
                factor=float(f), layer_id=f"{_glob_escape(head)}.{{layer_id}}.*", offset=o
            )
            for path in layers.values():
                targets[path] = replace(first, depth=depth)
            notes.append(
                f"{len(layers)} parameter(s) {head}.*.{tail}: std = {k * math.sqrt(f):.6g} / "
                f"sqrt({f} x (layer_id + {o})): written as depth_scale over layers"
            )
    # By the number of blocks.
    stds: dict[float, list[str]] = {}
    for path, t in targets.items():
        if isinstance(t.spec, Normal) and t.spec.mean == 0.0 and t.gain == 1.0 and t.depth is None:
            stds.setdefault(t.spec.std, []).append(path)
    if len(stds) < 2:
        return notes
    for s, paths in stds.items():
        heads = {split[0] if (split := _layer_split(p)) else None for p in paths}
        if len(heads) != 1 or None in heads:
            continue
        block = heads.pop()
        assert block is not None
        count = f"count:{_glob_escape(block)}.*"
        n = DepthScale(factor=1.0, n_layers=count).count_layers(all_paths)
        # Every block must hold the parameter (GPT-2's c_proj in each h.N): scaling by the
        # number of blocks is a property of all of them, not of a few.
        indices = {split[1] for p in paths if (split := _layer_split(p)) is not None}
        if n < 2 or len(indices) != n:
            continue
        for b in sorted(stds, key=lambda x: -len(stds[x])):
            ratio = (b / s) ** 2 / n
            f = round(ratio)
            if b > s and 1 <= f <= 8 and close(ratio, f, 1e-9):
                depth = DepthScale(factor=float(f), n_layers=count)
                for p in paths:
                    targets[p] = replace(targets[p], spec=Normal(std=b), depth=depth)
                notes.append(
                    f"{len(paths)} parameter(s) with std {s:.6g} = {b:.6g} / sqrt({f} x {n} "
                    f"blocks of {block}): written as depth_scale (factor {f}, n_layers {count})"
                )
                break
    return notes


# The whole synthesis -----------------------------------------------------------------------


def synthesize(
    records: Sequence[ParamRecord],
    also: Sequence[ParamRecord] | None = None,
    *,
    name: str = "captured",
    description: str = "",
    notes: Sequence[str] = (),
) -> CaptureReport:
    """The policy for ``records`` (and, with ``also``, a build of another width whose
    parameters have the same paths: literal stds that differ between the two and follow a
    fan become fan-based specs), verified: resolving it against the parameters gives each
    the plan of its record (and of its ``also`` record), or ``InitSpecError``."""
    notes = list(notes)
    records = list(records)
    if not records:
        raise InitSpecError("capture: the model has no parameters")
    settled = []
    for r in records:
        value, how = settle(r.value, r.info)
        if r.info.dtype not in FLOAT_DTYPES:
            value = Inexpressible(f"a {r.info.dtype} parameter: policies initialize floats only")
        settled.append(replace(r, value=value, note="; ".join(x for x in (r.note, how) if x)))
    records = settled
    also_by_path: dict[str, ParamRecord] = {}
    if also is not None:
        for r in also:
            value, how = settle(r.value, r.info)
            if r.info.dtype not in FLOAT_DTYPES:
                value = Inexpressible(
                    f"a {r.info.dtype} parameter: policies initialize floats only"
                )
            also_by_path[r.info.path] = replace(r, value=value)
    targets = {r.info.path: _target(r) for r in records}
    by_path = {r.info.path: r for r in records}

    # Fan generalization: per parameter across the two builds; per class within one build.
    generalized = 0
    fixed_bounds: list[str] = []
    if also is not None:
        missing = [p for p in by_path if p not in also_by_path]
        if missing:
            notes.append(
                f"{len(missing)} parameter(s) not in the also= build: {', '.join(missing[:5])}"
            )
        for path, r in by_path.items():
            other = also_by_path.get(path)
            t = targets[path]
            if other is None or t.spec is None or not isinstance(other.value, Drawn):
                continue
            if other.value.spec == t.spec and other.value.gain == t.gain:
                continue
            fit = generalize([(r.info, t.spec), (other.info, other.value.spec)])
            if fit is not None:
                targets[path] = replace(t, spec=fit.spec)
                by_path[path] = replace(
                    r, note="; ".join(x for x in (r.note, f"fan-generalized: {fit.how}") if x)
                )
                generalized += 1
            else:
                why = "differs in the also= build and follows no fan: literal"
                a, b = t.spec, other.value.spec
                if isinstance(a, TruncatedNormal) and isinstance(b, TruncatedNormal):
                    stds = [(r.info, Normal(std=a.std)), (other.info, Normal(std=b.std))]
                    if a.bounds == "absolute" and generalize(stds) is not None:
                        why = (
                            f"its std follows a fan but its absolute bounds [{a.low:.6g}, "
                            f"{a.high:.6g}] do not (no catalog kind has both): literal"
                        )
                        fixed_bounds.append(path)
                by_path[path] = replace(r, note="; ".join(x for x in (r.note, why) if x))
    # Biases U(+-1/sqrt(fan_in of the weight)): torch's Linear/Conv default; RNN parameters
    # U(+-1/sqrt(hidden_size)): torch's RNN/LSTM/GRU default. In one build: the bound names it.
    for path, r in by_path.items():
        t = targets[path]
        if not isinstance(t.spec, Uniform) or t.gain != 1.0 or not close(t.spec.low, -t.spec.high):
            continue
        hidden = r.info.context.hidden_size
        if r.info.kind == "rnn" and hidden and close(t.spec.high, 1.0 / math.sqrt(hidden)):
            targets[path] = replace(t, spec=TorchRnn())
        elif r.info.role == "bias":
            fit = generalize([(r.info, t.spec)])
            if fit is not None and isinstance(fit.spec, TorchLinearBias):
                targets[path] = replace(t, spec=fit.spec)
    if also is not None:
        notes.append(f"{generalized} parameter(s) fan-generalized from the also= build")
        if fixed_bounds:
            notes.append(
                f"{len(fixed_bounds)} parameter(s) kept literal: their std follows a fan but "
                f"their truncation bounds are absolute numbers (torch's trunc_normal_ a, b): "
                f"{', '.join(fixed_bounds[:5])}{' ...' if len(fixed_bounds) > 5 else ''}"
            )
    # Fans first: a std that follows the fans within the build is no depth scaling (timm's
    # EfficientNet has sqrt(2 / fan_out) values that are 0.5 / sqrt(2 * 7) by arithmetic).
    notes.extend(generalize_within(records, targets))
    notes.extend(depth_scaled(targets, [r.info for r in records]))
    records = [by_path[r.info.path] for r in records]

    rules = group(records, targets)
    policy = Policy(initspec=1, name=name, description=description, rules=rules)
    expected, rule_of = verify(policy, records, targets)
    if also is not None:
        try:
            verify(policy, list(also_by_path.values()), None)
        except InitSpecError as exc:
            notes.append(f"the policy does not reproduce every parameter of the also= build: {exc}")
    return CaptureReport(policy, records, expected, rule_of, notes)


def _expected_plan(r: ParamRecord) -> Plan | None:
    v = r.value
    if isinstance(v, Inexpressible):
        return None
    return plan_of(v, r.info.shape, r.info.layout, r.info)


def verify(
    policy: Policy, records: Sequence[ParamRecord], targets: dict[str, _Target] | None
) -> tuple[dict[str, str], dict[str, str]]:
    """Resolve ``policy`` against the recorded parameters and check that each gets the plan
    its record says (skipped where it was inexpressible, its padding row zeroed where its
    init zeroed it); ``InitSpecError`` listing every difference (a bug in capture)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = resolve(policy, [r.info for r in records], seed=0)
    got = {p.info.path: p for p in res.params}
    problems = []
    expected: dict[str, str] = {}
    rule_of: dict[str, str] = {}
    for r in records:
        p = got[r.info.path]
        rule_of[r.info.path] = (
            p.rule.label(p.rule_index) if p.rule is not None and p.rule_index is not None else "-"
        )
        want = _expected_plan(r)
        if want is None:
            if p.status != "skip":
                problems.append(f"{r.info.path}: should be skipped, got {p.status}")
            continue
        if p.status != "init" or p.plan is None or not plans_close(p.plan, want):
            problems.append(
                f"{r.info.path}: recorded {want.describe()}, the policy gives "
                f"{p.plan.describe() if p.plan is not None else p.status}"
            )
        else:
            expected[r.info.path] = p.plan.describe()  # the recorded plan, with its fans
        if p.status == "init" and (p.zero_row is not None) != r.zero_row:
            problems.append(
                f"{r.info.path}: padding row {'not ' if r.zero_row else ''}zeroed by the policy"
            )
    if problems:
        shown = "\n  ".join(problems[:20])
        raise InitSpecError(
            f"capture: the synthesized policy does not reproduce the record:\n  {shown}"
        )
    return expected, rule_of
