"""The statistics under ``initspec.check``, against SciPy and against their definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special, stats

from initspec.checkstats import expected, orthogonality_tolerance
from initspec.plans import NormalPlan, TruncatedNormalPlan, UniformPlan
from initspec.special import (
    erfc,
    holm,
    kolmogorov_sf,
    normal_cdf,
    poisson_sf,
    three_moment_p,
)
from initspec.stored import all_values, bf16_to_float32, rounding_cell

ml_dtypes = pytest.importorskip("ml_dtypes")  # bfloat16 in NumPy (installed with JAX)


def test_erfc_and_normal_cdf_match_scipy_to_1e_14_relative() -> None:
    x = np.linspace(-6.0, 26.0, 100_001)
    ref = special.erfc(x)
    assert np.max(np.abs(erfc(x) - ref) / ref) < 1e-14
    z = np.linspace(-37.0, 8.0, 50_001)
    ref_cdf = special.ndtr(z)
    # exp(-x^2) carries the rounding of x^2: ~2 x^2 eps relative, 1.5e-13 at x = 26
    assert np.max(np.abs(normal_cdf(z) - ref_cdf) / ref_cdf) < 4e-13
    assert erfc(np.array([np.inf, -np.inf])).tolist() == [0.0, 2.0]
    assert np.isnan(erfc(np.array([np.nan]))[0])


@pytest.mark.parametrize("n", [100, 1000, 8192])
def test_kolmogorov_p_is_conservative_and_close_to_scipys_exact_one(n: int) -> None:
    # The asymptotic p-value is never below the exact finite-n one (so the level holds) and
    # at most 2x above it for n >= 100 over p in [1e-8, 0.5] (measured: 1.76x at n=100, p=1e-8).
    for p in (0.5, 0.1, 1e-2, 1e-4, 1e-6, 1e-8):
        d = stats.kstwo.isf(p, n)
        ours = kolmogorov_sf(math.sqrt(n) * d)
        assert p * 0.999 <= ours <= 2.0 * p, (n, p, ours)
    for lam in (0.3, 0.8, 1.0, 1.5, 2.5):  # both series against the limiting distribution
        assert kolmogorov_sf(lam) == pytest.approx(stats.kstwobign.sf(lam), rel=1e-10)


@pytest.mark.parametrize("n", [256, 4096, 65536])
def test_three_moment_p_is_the_chi_square_tail_for_a_normal_variance(n: int) -> None:
    # mean of n squared N(0, 1) draws: chi2_n / n, mean 1, sd sqrt(2/n), skew sqrt(8/n).
    sd, skew = math.sqrt(2.0 / n), math.sqrt(8.0 / n)
    for z in (-5.0, -3.0, 2.0, 4.0, 6.0):
        t = 1.0 + z * sd
        exact = 2 * min(stats.chi2.sf(t * n, n), stats.chi2.cdf(t * n, n))
        got = three_moment_p(t, (1.0, 1.0), sd, skew)
        assert got == pytest.approx(exact, rel=0.15 if n == 256 else 0.05), (n, z)
    # inside the tolerance interval the statistic agrees with the plan exactly
    assert three_moment_p(1.001, (0.999, 1.002), sd, skew) == 1.0


def test_holm_matches_its_definition() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1 -> max(0.06, 0.04)=0.06
    assert holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([]) == []


def test_poisson_sf_matches_scipy() -> None:
    for k, lam in ((1, 0.01), (3, 0.5), (10, 2.0), (5, 30.0)):
        assert poisson_sf(k, lam) == pytest.approx(stats.poisson.sf(k - 1, lam), rel=1e-9)


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_rounding_cells_end_halfway_to_the_neighbours(dtype: str) -> None:
    t = np.dtype(dtype).type
    rng = np.random.default_rng(0)
    x = np.concatenate(
        [rng.normal(0, 1, 2000), [0.0, 1.0, -1.0, 0.5, 2.0**-20, 6e-8]]
    ).astype(dtype)
    low, high = rounding_cell(x.astype(np.float64), dtype)
    up = np.nextafter(x, t(np.inf)).astype(np.float64)
    down = np.nextafter(x, t(-np.inf)).astype(np.float64)
    np.testing.assert_array_equal(high, 0.5 * (x.astype(np.float64) + up))
    np.testing.assert_array_equal(low, 0.5 * (x.astype(np.float64) + down))


def test_bfloat16_cells_and_values_match_ml_dtypes() -> None:
    vals = all_values("bfloat16")
    with np.errstate(invalid="ignore"):  # the NaN patterns
        ref = np.arange(1 << 16, dtype=np.uint16).view(ml_dtypes.bfloat16).astype(np.float64)
    assert np.array_equal(vals, np.unique(ref[np.isfinite(ref)]))
    x = vals[(np.abs(vals) > 1e-30) & (np.abs(vals) < 1e30)]
    low, high = rounding_cell(x, "bfloat16")
    # every cell edge lies halfway to the neighbouring bfloat16 value
    idx = np.searchsorted(vals, x)
    np.testing.assert_array_equal(high, 0.5 * (x + vals[idx + 1]))
    np.testing.assert_array_equal(low, 0.5 * (x + vals[idx - 1]))
    bits = np.array([0x3F80, 0xC000], dtype=np.uint16)
    assert bf16_to_float32(bits).tolist() == [1.0, -2.0]


@pytest.mark.parametrize(
    "plan",
    [
        NormalPlan((), loc=0.0, scale=0.02),
        UniformPlan((), low=-0.05, high=0.05),
        TruncatedNormalPlan((), loc=0.0, scale=1.0, low=-2.0, high=2.0),
    ],
    ids=["normal", "uniform", "truncated"],
)
def test_16_bit_moments_are_those_of_the_rounded_plan(plan: NormalPlan) -> None:
    # The exact moments of the values as float16/bfloat16 store them are within rounding of
    # the plan's: the variance moves by about E[ulp^2]/12 (Sheppard), < 1e-4 relative for
    # bfloat16's 8 digits, far inside the float32 tolerance interval's neighbourhood.
    f32 = expected(plan, "float32")
    for dtype, rel in (("float16", 1e-5), ("bfloat16", 3e-4)):
        e = expected(plan, dtype)
        assert e.mean == pytest.approx(f32.mean, abs=1e-9)
        assert e.m2 == pytest.approx(f32.m2, rel=rel)
        assert e.m4 == pytest.approx(f32.m4, rel=4 * rel)
        assert e.m6 == pytest.approx(f32.m6, rel=8 * rel)
    # and the plan's own: the 4th moment from its kurtosis, the 6th from its formula
    assert f32.m4 == pytest.approx(plan.kurtosis * plan.var**2, rel=1e-12)
    dist = {
        "NormalPlan": lambda: stats.norm(0, 0.02),
        "UniformPlan": lambda: stats.uniform(-0.05, 0.1),
        "TruncatedNormalPlan": lambda: stats.truncnorm(-2, 2),
    }[type(plan).__name__]()
    assert f32.m6 == pytest.approx(dist.moment(6) if f32.mean == 0 else 0, rel=1e-9)


def test_a_normal_with_a_mean_far_above_its_std_in_bfloat16() -> None:
    # N(1, 0.01^2) in bfloat16: the spacing is 2^-8 below 1 and 2^-7 above, close to the
    # std; the stored mean and variance are the discrete ones, exactly what is summed.
    plan = NormalPlan((), loc=1.0, scale=0.01)
    e = expected(plan, "bfloat16")
    rng = np.random.default_rng(3)
    x = rng.normal(1.0, 0.01, 400_000).astype(ml_dtypes.bfloat16).astype(np.float64)
    # sample variance about the exact mean: sd of the estimate sqrt((m4 - m2^2) / n)
    assert np.mean((x - e.mean) ** 2) == pytest.approx(e.m2, abs=5 * math.sqrt((e.m4 - e.m2**2) / x.size))
    # the plan's own moments would be wrong here by more than 4 standard errors of a
    # 400,000-element mean (0.01 / sqrt(400000)) and of the variance
    assert abs(e.mean - 1.0) > 4 * 0.01 / math.sqrt(x.size)
    assert e.m2 - plan.var > 4 * math.sqrt(2 * plan.var**2 / x.size)


def test_orthogonality_tolerance_grows_with_dtype_precision() -> None:
    assert orthogonality_tolerance(1.0, 256, "bfloat16") > 2 * 2.0**-8
    assert orthogonality_tolerance(1.0, 256, "float32") < 1e-4
    assert orthogonality_tolerance(2.0, 256, "float32") == 4 * orthogonality_tolerance(1.0, 256, "float32")
