"""The statistics of ``initspec.check``: what the values of one parameter must look like
under its plan, and the tests that compare them (``docs/check.md`` derives each).

Elementwise plans (uniform, normal, truncated normal; a sparse plan's nonzeros):

- the exact distribution of the *stored* values: for float16 and bfloat16 the plan's CDF
  at the rounding cells of every one of the dtype's 65,536 values (round to nearest even,
  then clipped into the dtype-inward bounds, as every backend writes), its moments summed
  exactly; for float32 and float64 the plan's own moments, with an interval for what
  rounding can move them (``ROUNDING_ULPS`` units of 2^-p of the rms value);
- hard facts: finite values, inside the bounds (a normal within ``NORMAL_REACH`` std);
- a mean test and a variance test over every element, against the exact mean and second,
  third, fourth and sixth central moments (``special.three_moment_p``);
- a Kolmogorov-Smirnov test against the plan's CDF, on at most ``KS_SAMPLE`` elements taken
  at a fixed stride (deterministic), with the CDF evaluated at each value's rounding cell.

Structural plans are compared exactly (constant, identity, dirac) or by structure
(orthogonal: W W^T = gain^2 I within ``orthogonality_tolerance``; sparse: the zeros of
each column, then the nonzeros as a normal).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from initspec.numeric import inward_bounds, round_to
from initspec.plans import (
    NORMAL_REACH,
    ConstantPlan,
    DiracPlan,
    IdentityPlan,
    NormalPlan,
    OrthogonalPlan,
    Plan,
    SparsePlan,
    TruncatedNormalPlan,
    UniformPlan,
)
from initspec.special import kolmogorov_sf, poisson_sf, three_moment_p
from initspec.stored import (
    DIGITS,
    SMALLEST_SUBNORMAL,
    all_values,
    float64,
    float64_chunks,
    rounding_cell,
    value_chunks,
)

MIN_ELEMENTS = 100
"""Fewer elements than this: a random plan's values are only checked for the hard facts
(finite, inside the bounds) and the parameter is 'too small to test'."""

KS_SAMPLE = 1 << 13
"""Elements the KS test uses at most, at a fixed stride over the flat tensor."""

ROUNDING_ULPS = 4.0
"""float32/float64: how far (in units of 2^-p |x|) a stored value may be from an exact draw
of the plan: the rounding (half a unit) and the sampler's own float32 arithmetic."""

Elementwise = UniformPlan | NormalPlan | TruncatedNormalPlan


@dataclass
class Test:
    """One p-value of a parameter; ``adjusted`` is its Holm-adjusted value."""

    name: str
    p: float
    adjusted: float = math.nan
    rejected: bool = False


@dataclass
class Outcome:
    """What the checks of one parameter found: ``problems`` are certain (a value the plan
    cannot produce), ``tests`` are p-values decided after the Holm correction."""

    evidence: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    tests: list[Test] = field(default_factory=list)
    too_small: bool = False


@dataclass(frozen=True)
class Expected:
    """The distribution of one stored element: its mean, central moments m2, m3, m4, m6,
    the intervals rounding allows around the mean and m2, the range of values it can take,
    the CDF of the values before rounding, and the dtype-inward bounds a bounded plan clips
    to (``None``: unbounded)."""

    mean: float
    m2: float
    m3: float
    m4: float
    m6: float
    mean_tol: float
    var_tol: float
    low: float
    high: float
    cdf: Callable[[np.ndarray], np.ndarray]
    clip: tuple[float, float] | None


def _distribution_key(plan: Elementwise) -> Elementwise:
    return replace(plan, shape=(), fans=None)


def _central(raw: list[float], scale: float) -> tuple[float, float, float, float]:
    """Central moments 2, 3, 4, 6 from the raw moments raw[0..6] of the standardized
    variable, times scale^k."""
    mu = raw[1]

    def c(k: int) -> float:
        return sum(math.comb(k, j) * raw[j] * (-mu) ** (k - j) for j in range(k + 1))

    return c(2) * scale**2, c(3) * scale**3, c(4) * scale**4, c(6) * scale**6


def _continuous_moments(plan: Elementwise) -> tuple[float, float, float, float, float]:
    """(mean, m2, m3, m4, m6) of the plan itself (before rounding)."""
    if isinstance(plan, NormalPlan):
        s2 = plan.var
        return plan.mean, s2, 0.0, 3.0 * s2 * s2, 15.0 * s2**3
    if isinstance(plan, UniformPlan):
        h = 0.5 * (plan.high - plan.low)
        return plan.mean, plan.var, 0.0, plan.kurtosis * plan.var**2, h**6 / 7.0
    m2, m3, m4, m6 = _central(plan.standard_raw_moments(6), plan.scale)
    return plan.mean, m2, m3, m4, m6


def _limits(plan: Elementwise, dtype: str) -> tuple[float, float, tuple[float, float] | None]:
    if plan.bounds is not None:
        lo, hi = inward_bounds(*plan.bounds, dtype, plan.open_high)
        return lo, hi, (lo, hi)
    reach = NORMAL_REACH * plan.std
    return plan.mean - reach, plan.mean + reach, None


def _nonzero_cdf(cdf: Callable[[np.ndarray], np.ndarray], dtype: str) -> tuple[Callable[[np.ndarray], np.ndarray], float]:
    """The CDF conditioned on not rounding to zero, and the mass that rounds to zero."""
    half = SMALLEST_SUBNORMAL[dtype] / 2 if dtype != "float64" else 0.0
    f_lo, f_hi = (float(v) for v in cdf(np.array([-half, half])))
    p0 = f_hi - f_lo

    def conditional(x: np.ndarray) -> np.ndarray:
        f = cdf(x)
        f = np.where(np.asarray(x) >= half, f - p0, np.minimum(f, f_lo))
        return np.asarray(f / (1.0 - p0))

    return conditional, p0


@functools.lru_cache(maxsize=256)
def expected(plan: Elementwise, dtype: str, nonzero: bool = False) -> Expected:
    """The distribution of ``plan``'s values stored in ``dtype`` (``nonzero``: conditioned
    on not being zero, a sparse plan's nonzeros). Cached per distribution (a deep model
    repeats a few plans many times); call it with ``_distribution_key(plan)``."""
    low, high, clip = _limits(plan, dtype)
    cdf: Callable[[np.ndarray], np.ndarray] = plan.cdf
    if nonzero:
        cdf, _ = _nonzero_cdf(plan.cdf, dtype)
    if dtype in ("float16", "bfloat16"):
        grid = all_values(dtype)
        grid = grid[(grid >= low) & (grid <= high)] if clip is not None else grid
        edges = np.concatenate(([-np.inf], 0.5 * (grid[1:] + grid[:-1]), [np.inf]))
        mass = np.diff(cdf(edges))
        mass = np.clip(mass, 0.0, None)
        if nonzero:
            mass[grid == 0] = 0.0
        mass /= mass.sum()
        mean = float(np.dot(mass, grid))
        d = grid - mean
        d2 = d * d
        m2 = float(np.dot(mass, d2))
        m3 = float(np.dot(mass, d2 * d))
        m4 = float(np.dot(mass, d2 * d2))
        m6 = float(np.dot(mass, d2 * d2 * d2))
        return Expected(mean, m2, m3, m4, m6, 0.0, 0.0, low, high, cdf, clip)
    mean, m2, m3, m4, m6 = _continuous_moments(plan)
    # |stored - exact| <= ROUNDING_ULPS 2^-p |x| (+ subnormal spacing): E[e^2] <= err^2, so
    # the mean moves by at most err and E[(x + e - mu)^2] by at most 2 sqrt(m2) err + err^2
    err = ROUNDING_ULPS * 2.0 ** -DIGITS[dtype] * math.sqrt(m2 + mean * mean)
    err += SMALLEST_SUBNORMAL[dtype]
    return Expected(mean, m2, m3, m4, m6, err, 2.0 * math.sqrt(m2) * err + err * err, low, high, cdf, clip)


def _ks(flat: np.ndarray, dtype: str, exp: Expected) -> tuple[float, int]:
    """(D, n): the KS distance between the empirical CDF of a strided subsample and the
    plan's, each value standing for its rounding cell: D+ = max(i/n - F(cell top)),
    D- = max(F(cell bottom) - (i-1)/n); a cell at a clipped bound reaches to infinity."""
    stride = max(1, -(-flat.size // KS_SAMPLE))
    x = np.sort(float64(flat[::stride], dtype))
    n = x.size
    low, high = rounding_cell(x, dtype)
    if exp.clip is not None:
        low = np.where(x <= exp.clip[0], -np.inf, low)
        high = np.where(x >= exp.clip[1], np.inf, high)
    both = exp.cdf(np.concatenate((low, high)))  # one call: the CDF's setup is per call
    f_low, f_high = both[:n], both[n:]
    i = np.arange(1, n + 1, dtype=np.float64)
    d = max(float(np.max(i / n - f_high)), float(np.max(f_low - (i - 1) / n)), 0.0)
    return d, n


def _g(x: float) -> str:
    return f"{x:.4g}"


def elementwise(flat: np.ndarray, dtype: str, exp: Expected, label: str = "") -> Outcome:
    """Every test of an elementwise plan on the flat stored values (module docstring)."""
    out = Outcome()
    n = int(flat.size)
    s1 = s2 = 0.0
    lo, hi = math.inf, -math.inf
    bad = 0
    for x in value_chunks(flat, dtype):
        # min and max in the stored precision; sums of x - mu and its square in float64 (a
        # copy: float64 chunks are views of the caller's array), pairwise-summed, not
        # np.dot, whose BLAS threads can stall for milliseconds on a busy machine
        lo, hi = min(lo, float(x.min())), max(hi, float(x.max()))
        d = x.astype(np.float64)
        if exp.mean:
            d -= exp.mean
        s1 += float(d.sum())
        s2 += float(np.square(d, out=d).sum())
    if not (math.isfinite(s1) and math.isfinite(s2)):  # a NaN or an infinity somewhere
        bad, s1, s2, lo, hi = 0, 0.0, 0.0, math.inf, -math.inf
        for x in float64_chunks(flat, dtype):
            finite = np.isfinite(x)
            bad += int(x.size - finite.sum())
            x = x[finite]
            if x.size:
                d = x - exp.mean
                s1 += float(d.sum())
                s2 += float(np.square(d, out=d).sum())
                lo, hi = min(lo, float(x.min())), max(hi, float(x.max()))
    ev = out.evidence
    prefix = f"{label} " if label else ""
    ev["n"] = n
    if bad:
        out.problems.append(f"{prefix}{bad} value(s) are NaN or infinite")
    good = n - bad
    if good:
        mean_dev = s1 / good
        var = max(s2 / good - mean_dev * mean_dev, 0.0)
        ev.update(
            mean=exp.mean + mean_dev,
            expected_mean=exp.mean,
            std=math.sqrt(var),
            expected_std=math.sqrt(exp.m2),
            std_ratio=math.sqrt(var / exp.m2) if exp.m2 > 0 else math.nan,
            min=lo,
            max=hi,
            range=[exp.low, exp.high],
        )
        if lo < exp.low or hi > exp.high:
            out.problems.append(
                f"{prefix}values reach [{_g(lo)}, {_g(hi)}], outside the [{_g(exp.low)}, "
                f"{_g(exp.high)}] the plan can produce in {dtype}"
            )
    if n < MIN_ELEMENTS:
        out.too_small = True
        return out
    if bad:
        return out
    # mean of n draws: sd sqrt(m2 / n), skew (m3 / m2^1.5) / sqrt(n)
    p_mean = three_moment_p(
        s1 / n,
        (-exp.mean_tol, exp.mean_tol),
        math.sqrt(exp.m2 / n),
        exp.m3 / exp.m2**1.5 / math.sqrt(n) if exp.m2 > 0 else 0.0,
    )
    # mean of Y = (x - mu)^2: E m2, Var (m4 - m2^2), third central moment m6 - 3 m2 m4 + 2 m2^3
    var_y = exp.m4 - exp.m2 * exp.m2
    if var_y > 0:
        k3 = exp.m6 - 3.0 * exp.m2 * exp.m4 + 2.0 * exp.m2**3
        p_var = three_moment_p(
            s2 / n,
            (exp.m2 - exp.var_tol, exp.m2 + exp.var_tol),
            math.sqrt(var_y / n),
            k3 / var_y**1.5 / math.sqrt(n),
        )
        out.tests.append(Test(f"{prefix}variance".strip(), p_var))
    out.tests.insert(0, Test(f"{prefix}mean".strip(), p_mean))
    ks_d, n_ks = _ks(flat, dtype, exp)
    p_ks = kolmogorov_sf(math.sqrt(n_ks) * ks_d)
    ev.update(ks_d=ks_d, ks_n=n_ks, ks_p=p_ks, mean_p=p_mean)
    if var_y > 0:
        ev["variance_p"] = out.tests[1].p
    out.tests.append(Test(f"{prefix}ks".strip(), p_ks))
    return out


def _exact(values: np.ndarray, dtype: str, want: np.ndarray) -> list[str]:
    """Problems of values that must equal ``want`` (float64, rounded to ``dtype``) exactly."""
    x = float64(values, dtype)
    differ = ~(x == want)
    count = int(differ.sum())
    if not count:
        return []
    diff = np.abs(x - want)[differ]
    worst = float(np.nanmax(diff)) if np.isfinite(diff).any() else math.nan
    first = tuple(int(i) for i in np.unravel_index(int(np.argmax(differ)), x.shape))
    return [
        f"{count} of {x.size} value(s) differ from the exact plan (first at {list(first)}: "
        f"{_g(float(x[first]))} instead of {_g(float(want[first]))}; largest difference "
        f"{_g(worst)})"
    ]


def _rounded(build: np.ndarray, dtype: str) -> np.ndarray:
    """An exact plan's float64 values rounded to ``dtype`` (each distinct value once)."""
    out = np.array(build, dtype=np.float64)
    for v in np.unique(out):
        out[out == v] = round_to(float(v), dtype)
    return out


def orthogonality_tolerance(gain: float, k: int, dtype: str) -> float:
    """The largest |G - gain^2 I| entry a correct orthogonal matrix may show, G its Gram
    matrix over the k-long side: rounding each entry (|e| <= u |w|, u = 2^-p) moves an
    entry of G by at most (2u + u^2) gain^2 (Cauchy-Schwarz over the rows); the sampler's
    QR in float32 (torch's ``orthogonal_``) leaves at most 4 k 2^-24 gain^2 (Householder's
    bound, c k eps with c = 4)."""
    u = 2.0 ** -DIGITS[dtype]
    return gain * gain * (2.0 * u + u * u + 4.0 * k * 2.0**-24)


def _orthogonal(m: np.ndarray, gain: float, dtype: str, out: Outcome, what: str) -> None:
    rows, cols = m.shape
    if not np.isfinite(m).all():
        out.problems.append(f"{what}: values are NaN or infinite")
        return
    k = min(rows, cols)
    g = m @ m.T if rows <= cols else m.T @ m
    err = float(np.max(np.abs(g - gain * gain * np.eye(k)))) if k else 0.0
    tol = orthogonality_tolerance(gain, k, dtype)
    out.evidence.update(orthogonality_error=err, orthogonality_tolerance=tol)
    if err > tol:
        side = "W W^T" if rows <= cols else "W^T W"
        out.problems.append(
            f"{what}: {side} differs from gain^2 I = {_g(gain * gain)} I by up to {_g(err)} "
            f"(tolerance {_g(tol)} for {dtype})"
        )


def sparse(values: np.ndarray, dtype: str, plan: SparsePlan) -> Outcome:
    """Zeros per column (exactly ``zeros_per_column``, plus the few nonzero draws that
    round to zero: a Poisson p-value), then the nonzeros against N(0, sigma^2)."""
    canon = values.reshape(plan.shape).transpose(plan.perm).reshape(plan.rows, plan.cols)
    x = float64(canon, dtype)
    is_zero = x == 0
    zeros = is_zero.sum(axis=0)
    need = plan.zeros_per_column
    base = NormalPlan((), loc=0.0, scale=plan.sigma)
    _, p0 = _nonzero_cdf(base.cdf, dtype)
    out = elementwise(canon[~is_zero], dtype, expected(base, dtype, nonzero=True), "nonzero")
    out.evidence.update(zeros_per_column=need, min_zeros=int(zeros.min()) if zeros.size else 0)
    few = int((zeros < need).sum())
    if few:
        out.problems.append(
            f"{few} of {plan.cols} column(s) have fewer than the {need} zeros the plan puts "
            f"in each (fewest: {int(zeros.min())})"
        )
    # a nonzero draw rounds to zero with probability p0: the extra zeros are Poisson
    extra = int(np.clip(zeros - need, 0, None).sum())
    out.evidence["extra_zeros"] = extra
    if extra:
        out.tests.append(Test("extra zeros", poisson_sf(extra, (plan.rows - need) * plan.cols * p0)))
    return out


def structural(values: np.ndarray, dtype: str, plan: Plan) -> Outcome:
    """Constant, identity and dirac plans exactly; orthogonal and delta-orthogonal by
    structure."""
    out = Outcome()
    out.evidence["n"] = int(values.size)
    if isinstance(plan, ConstantPlan):
        want = np.full(plan.shape, round_to(plan.value, dtype))
        out.problems += _exact(values.reshape(plan.shape), dtype, want)
    elif isinstance(plan, IdentityPlan):
        out.problems += _exact(values.reshape(plan.shape), dtype, _rounded(plan.build(), dtype))
    elif isinstance(plan, DiracPlan) and plan.matrix == "identity":
        out.problems += _exact(values.reshape(plan.shape), dtype, _rounded(plan.build(), dtype))
    elif isinstance(plan, DiracPlan):
        canon = float64(values, dtype).reshape(plan.shape).transpose(plan.perm)
        canon = canon.reshape(plan.canonical_shape)
        centre = canon[plan.centre_index].copy()
        rest = canon.copy()
        rest[plan.centre_index] = 0.0
        off = int((rest != 0).sum())
        if off:
            out.problems.append(f"{off} value(s) outside the kernel's centre are not zero")
        _orthogonal(centre.reshape(centre.shape[0], -1), plan.gain, dtype, out, "centre matrix")
    elif isinstance(plan, OrthogonalPlan):
        m = float64(values, dtype).reshape(plan.shape).transpose(plan.perm)
        _orthogonal(m.reshape(plan.rows, plan.cols), plan.gain, dtype, out, "matrix")
    else:  # pragma: no cover - every plan type is handled above or by elementwise
        raise TypeError(type(plan).__name__)
    return out


def check_values(values: np.ndarray, dtype: str, plan: Plan) -> Outcome:
    """The outcome of one parameter's stored values (flat or shaped) under ``plan``."""
    flat = values.reshape(-1)
    if isinstance(plan, (UniformPlan, NormalPlan, TruncatedNormalPlan)):
        return elementwise(flat, dtype, expected(_distribution_key(plan), dtype))
    if isinstance(plan, SparsePlan):
        return sparse(flat, dtype, plan)
    return structural(flat, dtype, plan)
