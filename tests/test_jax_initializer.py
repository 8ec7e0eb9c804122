"""initspec_jax.initializer: parity with jax.nn.initializers and Flax, layouts, dtypes, jit,
sharding, bad input.

Statistics (see tests/moments.py for the derivations):
- parity with a jax initializer: two-sample KS (scipy.stats.ks_2samp) between our samples and
  jax's on the same shape, >= 12_288 samples each, pass when p > 1e-4 (PyTorch's threshold);
  the fans are compared exactly with jax's own ``_compute_fans``;
- moments against the plan: z-scores of mean and variance at Z = 5 standard errors
  (SE(mean) = sigma / sqrt(n), SE(var) = sigma^2 sqrt((kurtosis - 1) / n)) plus a one-sample
  KS against the plan's exact CDF, at n = 200_000, where a 2% error in std moves the variance
  by 4% = 2.5 to 6 standard errors' worth of tolerance (shown by
  ``test_moment_check_catches_two_percent_std_error``).
Seeds are fixed, so nothing flakes.
"""

from __future__ import annotations

# ruff: noqa: E402
import os

# These tests compile ~80 small XLA programs (one per kind of primitive, shape and dtype) and
# run each once; XLA's CPU optimization passes only lengthen the compiles (halving them
# here). Set before JAX starts its backend, unless the caller set XLA_FLAGS; results are
# unaffected beyond the rounding of fused operations.
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")


import math
import subprocess
import sys
import textwrap

import flax.linen as nn
import initspec_jax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax._src.nn.initializers import _compute_fans
from moments import KS_P, Z, plan_check
from scipy import special, stats

import initspec
from initspec import BackendError, InitSpecError, ShapeError
from initspec.plans import TruncatedNormalPlan, UniformPlan

JI = jax.nn.initializers
DENSE = (128, 96)  # Flax Dense kernel (in, out): 12_288 samples
CONV = (3, 3, 32, 48)  # Flax Conv kernel (kh, kw, in, out): 13_824 samples
MOMENT_SHAPE = (400, 500)  # 200_000 samples, as tests/moments.py assumes


def _ours(raw: dict, shape: tuple[int, ...], seed: int = 0, dtype=jnp.float32) -> np.ndarray:
    return np.asarray(initspec_jax.initializer(raw)(jax.random.key(seed), shape, dtype))


def _theirs(init, shape: tuple[int, ...], seed: int = 1) -> np.ndarray:
    return np.asarray(init(jax.random.key(seed), shape, jnp.float32))


def _ks_same(ours: np.ndarray, theirs: np.ndarray) -> float:
    return float(stats.ks_2samp(ours.ravel(), theirs.ravel()).pvalue)


# Parity with jax.nn.initializers ---------------------------------------------------------

MODES = ["fan_in", "fan_out", "fan_avg", "fan_geo_avg"]
DISTRIBUTIONS = ["normal", "truncated_normal", "uniform"]


@pytest.mark.parametrize("shape", [DENSE, CONV], ids=["dense", "conv"])
@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
@pytest.mark.parametrize("mode", MODES)
def test_variance_scaling_matches_jax(mode: str, distribution: str, shape) -> None:
    raw = {"kind": "variance_scaling", "scale": 2.0, "mode": mode, "distribution": distribution}
    ours = _ours(raw, shape)
    theirs = _theirs(JI.variance_scaling(2.0, mode, distribution), shape)
    assert _ks_same(ours, theirs) > KS_P
    plan = initspec_jax.initializer(raw).plan(shape)
    assert plan.fans == tuple(int(f) for f in _compute_fans(shape))
    if isinstance(plan, (UniformPlan, TruncatedNormalPlan)):
        # jax's own values lie inside our plan's bounds, and so do ours
        assert plan.low <= theirs.min() and theirs.max() <= plan.high
        assert plan.low <= ours.min() and ours.max() <= plan.high


NAMED = ["glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_uniform", "lecun_normal"]


@pytest.mark.parametrize("shape", [DENSE, CONV], ids=["dense", "conv"])
@pytest.mark.parametrize("name", NAMED)
def test_named_variance_scaling_matches_jax(name: str, shape) -> None:
    ours = _ours({"kind": name}, shape)
    theirs = _theirs(getattr(JI, name)(), shape)
    assert _ks_same(ours, theirs) > KS_P


@pytest.mark.parametrize(
    ("raw", "theirs"),
    [
        # jax normal(stddev) has mean 0
        ({"kind": "normal", "mean": 0.0, "std": 0.02}, JI.normal(0.02)),
        # jax's lower/upper are in std units: our bounds="std" (jax spelling parses to it)
        ({"kind": "truncated_normal", "stddev": 0.5, "lower": -1.5, "upper": 2.0},
         JI.truncated_normal(0.5, lower=-1.5, upper=2.0)),
        ({"kind": "truncated_normal", "std": 0.5, "low": -1.5, "high": 2.0, "bounds": "std"},
         JI.truncated_normal(0.5, lower=-1.5, upper=2.0)),
        # jax uniform(scale) is U[0, scale)
        ({"kind": "uniform", "low": 0.0, "high": 0.3}, JI.uniform(0.3)),
    ],
    ids=["normal", "truncated_normal-jax-spelling", "truncated_normal", "uniform"],
)
def test_plain_distributions_match_jax(raw: dict, theirs) -> None:
    """No fans involved, so one shape says it all."""
    assert _ks_same(_ours(raw, DENSE), _theirs(theirs, DENSE)) > KS_P


def test_ks_parity_rejects_a_wrong_distribution() -> None:
    """The parity check can fail: jax's he_uniform is not our lecun_uniform (std x sqrt 2), and
    jax's truncated_normal (no variance correction) is not our he_normal (corrected)."""
    assert _ks_same(_ours({"kind": "lecun_uniform"}, DENSE), _theirs(JI.he_uniform(), DENSE)) < KS_P
    assert _ks_same(
        _ours({"kind": "he_normal"}, DENSE),
        _theirs(JI.truncated_normal(math.sqrt(2.0 / DENSE[0])), DENSE),
    ) < KS_P


def test_constant_matches_jax_exactly() -> None:
    ours = _ours({"kind": "constant", "value": 0.7}, CONV)
    theirs = _theirs(JI.constant(0.7), CONV)
    np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(_ours({"kind": "zeros"}, DENSE), JI.zeros(None, DENSE))
    np.testing.assert_array_equal(_ours({"kind": "ones"}, DENSE), JI.ones(None, DENSE))


def _gram_of_smaller_side(w: np.ndarray) -> np.ndarray:
    """jax's orthogonal (column_axis=-1) flattens to (prod(rest), out); the Gram matrix over
    the smaller side is the identity."""
    m = w.reshape(-1, w.shape[-1]).astype(np.float64)
    return m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T


@pytest.mark.parametrize("shape", [DENSE, (3, 3, 4, 48)], ids=["tall", "wide"])
def test_orthogonal_is_orthogonal_like_jax(shape) -> None:
    for gain in (1.0, 2.5):
        ours = _ours({"kind": "orthogonal", "gain": gain}, shape)
        theirs = _theirs(JI.orthogonal(scale=gain), shape)
        for w in (ours, theirs):
            gram = _gram_of_smaller_side(w)
            np.testing.assert_allclose(gram, gain**2 * np.eye(len(gram)), rtol=0, atol=1e-5 * gain**2)
        # orthonormal along the same axes as jax: (…, out) with out the column axis
        rms = float(np.sqrt(np.mean(ours.astype(np.float64) ** 2)))
        assert rms == pytest.approx(initspec_jax.initializer({"kind": "orthogonal", "gain": gain}).plan(shape).std, rel=1e-5)


def test_delta_orthogonal_structure_matches_jax() -> None:
    for shape in [CONV, (4, 4, 32, 48)]:  # odd and even kernels
        ours = _ours({"kind": "delta_orthogonal", "scale": 1.5}, shape)
        theirs = _theirs(JI.delta_orthogonal(scale=1.5), shape)
        center = tuple((k - 1) // 2 for k in shape[:-2])
        for w in (ours, theirs):
            nonzero_at = {tuple(int(i) for i in ix[:-2]) for ix in np.argwhere(w != 0)}
            assert nonzero_at == {center}
            m = w[center].astype(np.float64)  # (in, out), in <= out
            np.testing.assert_allclose(m @ m.T, 2.25 * np.eye(m.shape[0]), rtol=0, atol=2e-5)


def test_eye_and_dirac_equal_the_numpy_reference() -> None:
    """Deterministic plans: exactly the reference's values, in the stored Flax layout."""
    cases = [({"kind": "eye", "gain": 0.5}, (24, 40)), ({"kind": "dirac", "groups": 2}, CONV),
             ({"kind": "dirac"}, (4, 4, 32, 48)), ({"kind": "dirac", "groups": 3}, (3, 12, 6))]
    for raw, shape in cases:
        reference = initspec.sample(raw, shape, layout="flax", dtype="float32")
        np.testing.assert_array_equal(_ours(raw, shape), reference)


def test_sparse_zeros_per_column_and_nonzero_distribution() -> None:
    """torch's sparse_ on the canonical (out, in) matrix: every column (one input) has
    ceil(sparsity * rows) zeros; the rest are N(0, std^2) (KS against the exact normal)."""
    raw = {"kind": "sparse", "sparsity": 0.3, "std": 0.05}
    shape = (200, 300)  # Flax (in, out): canonical rows are the 300 outputs
    w = _ours(raw, shape)
    zeros = initspec_jax.initializer(raw).plan(shape).zeros_per_column
    assert zeros == 90
    assert ((w == 0).sum(axis=1) == zeros).all()
    nonzero = w[w != 0].astype(np.float64)
    assert stats.kstest(nonzero, stats.norm(0, 0.05).cdf).pvalue > KS_P
    # the zero rows differ between columns: a fresh permutation per column
    assert len({tuple(np.flatnonzero(row == 0)) for row in w}) == shape[0]


def test_fans_match_jax_compute_fans() -> None:
    for shape in [DENSE, CONV, (3, 3, 2, 16), (5, 7, 3, 3, 8, 16)]:
        assert initspec.fans(shape, "flax") == tuple(int(f) for f in _compute_fans(shape))
    # Embed's variance_scaling(out_axis=0) on (vocab, features)
    assert initspec.fans((1000, 64), "embedding")[0] == int(_compute_fans((1000, 64), -2, 0)[0])


# Moments against the plan ------------------------------------------------------------------

MOMENT_SPECS = [
    {"kind": "uniform", "low": -3.0, "high": -1.0},
    {"kind": "normal", "mean": 0.5, "std": 0.02},
    {"kind": "truncated_normal", "mean": 0.1, "std": 1.0, "low": -0.5, "high": 2.5},
    {"kind": "truncated_normal", "std": 1.0, "low": 4.0, "high": 9.0},
    {"kind": "truncated_normal", "std": 1e-4, "low": 3e-4, "high": 3.1e-4},
    {"kind": "variance_scaling", "mode": "fan_geo_avg", "distribution": "uniform", "scale": 2.0},
    {"kind": "lecun_normal"},
    {"kind": "kaiming_normal", "a": 0.2},
]


@pytest.mark.parametrize("raw", MOMENT_SPECS, ids=lambda r: "-".join(f"{v}" for v in r.values()))
def test_samples_match_plan_moments(raw: dict) -> None:
    init = initspec_jax.initializer(raw)
    plan = init.plan(MOMENT_SHAPE)
    x = np.asarray(init(jax.random.key(7), MOMENT_SHAPE), np.float64)
    check = plan_check(x, plan)
    assert check.ok, (plan.describe(), check)


@pytest.mark.parametrize("family", DISTRIBUTIONS)
def test_moment_check_catches_two_percent_std_error(family: str) -> None:
    """The same check, applied to our sampler run on a plan whose std is 2% off, fails."""
    raw = {"kind": "variance_scaling", "distribution": family, "scale": 2.0}
    plan = initspec.parse(raw).plan(MOMENT_SHAPE, "flax")
    key = jax.random.key(3)
    assert plan_check(np.asarray(initspec_jax.sample_plan(plan, key)), plan).ok
    wrong = np.asarray(initspec_jax.sample_plan(plan.scaled(1.02), key))
    check = plan_check(wrong, plan)
    assert abs(check.z_var) > Z and not check.ok


# Truncated normal: bounds and no pile-up, tails included --------------------------------

TN_INTERVALS = [(-2.0, 2.0), (-1.0, 6.0), (2.0, 3.0), (5.0, 6.0), (-6.0, -5.0), (9.0, 9.5),
                (12.0, 12.5), (12.0, 40.0), (-40.0, -12.0), (0.0, 1e-3)]


@pytest.mark.parametrize("interval", TN_INTERVALS, ids=str)
def test_truncated_normal_tails_have_no_pile_up(interval) -> None:
    """KS against the exact CDF (scipy's truncnorm: the plan's own cdf cancels in far tails),
    all values inside, about as many distinct values as the reference, and no more values on a
    bound than the mass within half a float32 ulp of it allows (Poisson, one-in-a-million
    quantile). jax.random.truncated_normal gives 10 distinct values on [5, 6] in float32."""
    low, high = interval
    raw = {"kind": "truncated_normal", "mean": 0.0, "std": 1.0, "low": low, "high": high}
    n = math.prod(MOMENT_SHAPE)
    x = np.asarray(initspec_jax.initializer(raw)(jax.random.key(11), MOMENT_SHAPE), np.float64)
    x = x.ravel()
    exact = stats.truncnorm(low, high)
    assert stats.kstest(x, exact.cdf).pvalue > KS_P
    assert low <= x.min() and x.max() <= high
    # as many distinct values as exact sampling (the float64 NumPy reference) rounded to float32
    reference = initspec.sample(raw, MOMENT_SHAPE, seed=11, dtype="float32")
    assert len(np.unique(x)) >= 0.95 * len(np.unique(reference))
    half_ulp_lo = abs(float(np.spacing(np.float32(low)))) / 2
    half_ulp_hi = abs(float(np.spacing(np.float32(high)))) / 2
    # each end's mass from the side where it is a lower tail (no 1 - cdf cancellation)
    mass_lo = float(exact.cdf(low + half_ulp_lo))
    mass_hi = float(stats.truncnorm(-high, -low).cdf(-high + half_ulp_hi))
    assert (x == np.float32(low)).sum() <= stats.poisson.isf(1e-6, n * mass_lo)
    assert (x == np.float32(high)).sum() <= stats.poisson.isf(1e-6, n * mass_hi)


@pytest.mark.parametrize(
    ("interval", "branch", "max_ulps"),
    [((-2.0, 2.0), "erf", 8), ((-1.5, 2.0), "erf", 8), ((0.0, 2.0), "central", 6),
     ((-3.0, 3.0), "central", 6), ((-1.0, 6.0), "central", 7), ((2.0, 3.0), "central", 6),
     ((-9.5, -8.0), "central_deep", 6), ((12.0, 12.5), "right", 6)],
    ids=str,
)
def test_truncated_normal_quantiles_are_accurate(interval, branch, max_ulps) -> None:
    """Each form against the exact (float64) quantile of the same u, recomputed from the same
    threefry bits: error in float32 ulps of max(|x|, 1/4) (near 0 the e form's error is
    absolute, that of Ea + 2 u W: ~1 ulp of 1/4). Measured: erf 6.5, central <= 6.2,
    central_deep 1.7, far tail 1.8; erf_inv alone is 5 ulps off in the centre. [0, 2] keeps
    the tail forms: its u cells are less than 2 ulps of e apart."""
    from initspec_jax.truncnorm import inverse_cdf_truncated_normal, truncnorm_branch

    alpha, beta = interval
    assert truncnorm_branch(alpha, beta, np.dtype(np.float32))[0] == branch
    shape, key = (1 << 20,), jax.random.key(11)
    draw = jax.jit(lambda k: inverse_cdf_truncated_normal(k, shape, alpha, beta, np.dtype(np.float32)))
    x = np.asarray(draw(key), np.float64)
    u = ((np.asarray(jax.random.bits(key, shape, jnp.uint32)) >> 9) + 0.5) * 2.0**-23
    if branch == "right":  # Q(x) = Q(a) - u (Q(a) - Q(b)), in log space for scipy
        exact = stats.truncnorm(alpha, beta).ppf(u)
    else:
        pa, qb = special.ndtr(alpha), special.ndtr(-beta)
        p = pa + u * (special.ndtr(beta) - pa)
        exact = np.where(p < 0.5, special.ndtri(p), -special.ndtri(qb + (1 - u) * (1 - pa - qb)))
    unit = np.spacing(np.maximum(np.abs(exact), 0.25).astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(x - exact) / unit) <= max_ulps


def test_tail_expansion_is_jax_ndtri_in_the_tails() -> None:
    """The sampler's tail form (Cephes' expansion alone, below exp(-2)) against the installed
    jax.scipy.special.ndtri, which evaluates it among its other forms: equal to 2 ulps (the
    same operations, fused differently), the z >= 8 pair included (t < exp(-32)); the
    shorter form without that pair equal wherever it is used (t >= exp(-32))."""
    from initspec_jax.truncnorm import ndtri_tail

    t = np.geomspace(1e-37, math.exp(-2.0), 200_001).astype(np.float32)
    t = t[t < np.float32(math.exp(-2.0))]
    expected = -np.asarray(jax.jit(jax.scipy.special.ndtri)(t))
    np.testing.assert_array_max_ulp(np.asarray(jax.jit(ndtri_tail)(t)), expected, maxulp=2)
    shallow = t >= np.float32(math.exp(-32.0))
    assert 0 < shallow.sum() < len(t)
    near = np.asarray(jax.jit(lambda v: ndtri_tail(v, deep=False))(t[shallow]))
    np.testing.assert_array_max_ulp(near, expected[shallow], maxulp=2)


# dtypes ------------------------------------------------------------------------------------


def test_bfloat16_normal_has_many_distinct_values() -> None:
    """Sampled in float32 and rounded once: bf16 has 128 values per binade, and N(0, 1)
    spans many binades; jax.random.normal in bf16 gives only 128 distinct values."""
    x = initspec_jax.initializer({"kind": "normal"})(jax.random.key(0), (100_000,), jnp.bfloat16)
    assert x.dtype == jnp.bfloat16
    assert len(np.unique(np.asarray(x.astype(jnp.float32)))) > 1000


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16, jnp.float32])
def test_bounds_hold_after_the_cast(dtype) -> None:
    key = jax.random.key(5)
    shape = DENSE
    u = initspec_jax.initializer({"kind": "uniform", "low": -0.1, "high": 0.1})(key, shape, dtype)
    assert u.dtype == dtype
    u64 = np.asarray(u.astype(jnp.float32), np.float64)
    assert u64.min() >= -0.1 and u64.max() < 0.1  # U[low, high): high never reached
    t = initspec_jax.initializer(
        {"kind": "truncated_normal", "std": 0.02, "low": -0.03, "high": 0.04}
    )(key, shape, dtype)
    t64 = np.asarray(t.astype(jnp.float32), np.float64)
    assert t64.min() >= -0.03 and t64.max() <= 0.04
    lecun = initspec_jax.initializer({"kind": "lecun_normal"})
    bound = lecun.plan(shape).high
    assert np.abs(np.asarray(lecun(key, shape, dtype).astype(jnp.float32))).max() <= bound


def test_low_precision_orthogonal_is_float32_qr_rounded_once() -> None:
    dtype = jnp.bfloat16  # no QR kernel in bf16 (jax#30176)
    init = initspec_jax.initializer({"kind": "orthogonal"})
    key = jax.random.key(2)
    w = init(key, DENSE, dtype)
    assert w.dtype == dtype
    np.testing.assert_array_equal(np.asarray(w), np.asarray(init(key, DENSE).astype(dtype)))
    gram = _gram_of_smaller_side(np.asarray(w.astype(jnp.float32)))
    eps = float(jnp.finfo(dtype).eps)  # rounding error per entry, relative
    np.testing.assert_allclose(gram, np.eye(len(gram)), rtol=0, atol=4 * eps)


def test_float64_under_x64_is_sampled_in_float64() -> None:
    with jax.enable_x64(True):
        init = initspec_jax.initializer({"kind": "truncated_normal", "low": 5.0, "high": 6.0})
        x = init(jax.random.key(0), (100_000,), jnp.float64)
        assert x.dtype == jnp.float64
        # float64 resolution: all 100_000 draws distinct
        assert len(np.unique(np.asarray(x))) == 100_000
        w = initspec_jax.initializer({"kind": "orthogonal"})(jax.random.key(0), DENSE, jnp.float64)
        gram = _gram_of_smaller_side(np.asarray(w))
        np.testing.assert_allclose(gram, np.eye(len(gram)), rtol=0, atol=1e-12)


def test_default_dtype_is_float32_and_none_is_jax_default() -> None:
    init = initspec_jax.initializer({"kind": "lecun_normal"})
    assert init(jax.random.key(0), DENSE).dtype == jnp.float32
    assert init(jax.random.key(0), DENSE, None).dtype == jnp.zeros((), float).dtype


# jit, keys, Flax ---------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [{"kind": "lecun_normal"}, {"kind": "orthogonal"}])
def test_traceable_under_jit_with_the_same_values(raw: dict) -> None:
    """Plans come from the static shape at trace time; XLA may fuse differently than eager
    dispatch, so values agree to a few float32 ulps rather than bitwise."""
    init = initspec_jax.initializer(raw)
    key = jax.random.key(4)
    eager = np.asarray(init(key, DENSE))
    jitted = np.asarray(jax.jit(lambda k: init(k, DENSE))(key))
    np.testing.assert_array_max_ulp(eager, jitted, maxulp=4)


def test_legacy_raw_keys_give_the_same_values_as_typed_keys() -> None:
    init = initspec_jax.initializer({"kind": "he_uniform"})
    np.testing.assert_array_equal(
        np.asarray(init(jax.random.PRNGKey(9), DENSE)), np.asarray(init(jax.random.key(9), DENSE))
    )


def test_same_key_same_values_different_key_different_values() -> None:
    init = initspec_jax.initializer({"kind": "lecun_normal"})
    a, b, c = (np.asarray(init(jax.random.key(s), DENSE)) for s in (1, 1, 2))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_usable_as_flax_linen_dense_kernel_init() -> None:
    init = initspec_jax.initializer({"kind": "kaiming_normal", "nonlinearity": "relu"})
    model = nn.Dense(500, kernel_init=init, param_dtype=jnp.float32)
    params = model.init(jax.random.PRNGKey(0), jnp.ones((1, 400)))["params"]
    kernel = np.asarray(params["kernel"])
    assert kernel.shape == (400, 500)
    plan = init.plan((400, 500))
    assert plan.std == pytest.approx(math.sqrt(2.0 / 400))  # fan_in = 400 = in features
    assert plan_check(kernel, plan).ok


def test_usable_as_flax_nnx_linear_kernel_init() -> None:
    init = initspec_jax.initializer({"kind": "xavier_uniform"})
    layer = nnx.Linear(400, 500, kernel_init=init, param_dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
    kernel = layer.kernel[...]
    assert kernel.shape == (400, 500) and kernel.dtype == jnp.bfloat16
    plan = init.plan((400, 500))
    assert np.abs(np.asarray(kernel.astype(jnp.float32))).max() <= plan.high
    # bf16 rounding adds variance ~ (2^-9 |x|)^2 / 3: 1e-6 relative, far below the tolerance
    assert plan_check(np.asarray(kernel.astype(jnp.float32)), plan).ok


def test_flax_embed_default_is_variance_scaling_fan_in_normal_in_the_embedding_layout() -> None:
    """Flax's Embed default: variance_scaling(1, fan_in, normal, out_axis=0): std 1/sqrt(D)."""
    vocab, features = 1000, 64
    raw = {"kind": "variance_scaling", "scale": 1.0, "mode": "fan_in", "distribution": "normal"}
    init = initspec_jax.initializer(raw, layout="embedding")
    assert init.plan((vocab, features)).std == pytest.approx(1 / math.sqrt(features))
    ours = nn.Embed(vocab, features, embedding_init=init).init(
        jax.random.PRNGKey(0), jnp.zeros((1,), jnp.int32))["params"]["embedding"]
    flax_own = nn.Embed(vocab, features).init(
        jax.random.PRNGKey(1), jnp.zeros((1,), jnp.int32))["params"]["embedding"]
    assert ours.shape == flax_own.shape == (vocab, features)
    assert _ks_same(np.asarray(ours), np.asarray(flax_own)) > KS_P


def test_flax_default_dense_and_conv_kernels_match_lecun_normal() -> None:
    x = jnp.ones((1, 8, 8, 32))
    flax_conv = nn.Conv(48, (3, 3)).init(jax.random.PRNGKey(0), x)["params"]["kernel"]
    ours_conv = nn.Conv(48, (3, 3), kernel_init=initspec_jax.initializer({"kind": "lecun_normal"}))
    ours = ours_conv.init(jax.random.PRNGKey(1), x)["params"]["kernel"]
    assert ours.shape == flax_conv.shape == CONV
    assert _ks_same(np.asarray(ours), np.asarray(flax_conv)) > KS_P


# Layouts: the same spec means the same distribution as on the torch twin -----------------

LAYOUT_SPECS = [
    {"kind": "kaiming_normal", "nonlinearity": "relu"},
    {"kind": "xavier_uniform"},
    {"kind": "lecun_normal"},
    {"kind": "variance_scaling", "mode": "fan_out", "distribution": "uniform"},
    {"kind": "variance_scaling", "mode": "fan_geo_avg", "distribution": "normal"},
    {"kind": "orthogonal"},
]


def _same_distribution(flax_plan, torch_plan) -> None:
    assert flax_plan.describe() == torch_plan.describe()
    assert flax_plan.fans == torch_plan.fans
    assert flax_plan.var == pytest.approx(torch_plan.var, rel=1e-12)


def _flax_kernel_shape(module: nn.Module, x_shape: tuple[int, ...]) -> tuple[int, ...]:
    params = jax.eval_shape(module.init, jax.random.PRNGKey(0), jnp.ones(x_shape))["params"]
    return tuple(params["kernel"].shape)


@pytest.mark.parametrize("raw", LAYOUT_SPECS, ids=lambda r: r["kind"])
def test_flax_dense_kernel_and_torch_linear_weight_get_the_same_plan(raw: dict) -> None:
    torch = pytest.importorskip("torch")
    flax_shape = _flax_kernel_shape(nn.Dense(10), (1, 784))
    torch_shape = tuple(torch.nn.Linear(784, 10).weight.shape)
    assert flax_shape == (784, 10) and torch_shape == (10, 784)
    spec = initspec.parse(raw)
    _same_distribution(spec.plan(flax_shape, "flax"), spec.plan(torch_shape, "torch"))


@pytest.mark.parametrize("raw", LAYOUT_SPECS, ids=lambda r: r["kind"])
def test_flax_conv_kernel_and_torch_conv_weight_get_the_same_plan(raw: dict) -> None:
    torch = pytest.importorskip("torch")
    flax_shape = _flax_kernel_shape(nn.Conv(16, (3, 3), feature_group_count=4), (1, 5, 5, 8))
    torch_shape = tuple(torch.nn.Conv2d(8, 16, 3, groups=4).weight.shape)
    assert flax_shape == (3, 3, 2, 16) and torch_shape == (16, 2, 3, 3)
    spec = initspec.parse(raw)
    flax_plan, torch_plan = spec.plan(flax_shape, "flax"), spec.plan(torch_shape, "torch")
    _same_distribution(flax_plan, torch_plan)
    assert flax_plan.fans == (18, 144)


@pytest.mark.parametrize("transpose_kernel", [False, True])
def test_flax_conv_transpose_follows_transpose_kernel(transpose_kernel: bool) -> None:
    """Flax ConvTranspose kernels are (*k, in, out), or (*k, out, in) with transpose_kernel;
    the torch ConvTranspose2d weight is (in, out, *k). Read with "flax", "flax_transposed" and
    "torch_transposed", all three have the layer's true fans (72, 144)."""
    torch = pytest.importorskip("torch")
    module = nn.ConvTranspose(16, (3, 3), transpose_kernel=transpose_kernel)
    flax_shape = _flax_kernel_shape(module, (1, 5, 5, 8))
    assert flax_shape == ((3, 3, 16, 8) if transpose_kernel else (3, 3, 8, 16))
    torch_shape = tuple(torch.nn.ConvTranspose2d(8, 16, 3).weight.shape)
    layout = "flax_transposed" if transpose_kernel else "flax"
    for raw in LAYOUT_SPECS[:-1]:
        spec = initspec.parse(raw)
        flax_plan = spec.plan(flax_shape, layout)
        _same_distribution(flax_plan, spec.plan(torch_shape, "torch_transposed"))
        assert flax_plan.fans == (72, 144)


def test_embed_and_torch_embedding_get_the_same_plan() -> None:
    torch = pytest.importorskip("torch")
    raw = {"kind": "variance_scaling", "scale": 1.0, "mode": "fan_in", "distribution": "normal"}
    spec = initspec.parse(raw)
    flax_shape = tuple(jax.eval_shape(nn.Embed(1000, 64).init, jax.random.PRNGKey(0),
                                      jnp.zeros((1,), jnp.int32))["params"]["embedding"].shape)
    torch_shape = tuple(torch.nn.Embedding(1000, 64).weight.shape)
    assert flax_shape == torch_shape == (1000, 64)
    plan = spec.plan(flax_shape, "embedding")
    _same_distribution(plan, spec.plan(torch_shape, "embedding"))
    assert plan.std == pytest.approx(1 / 8)


# Bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "shape", "dtype", "error"),
    [
        (0, DENSE, jnp.float32, BackendError),  # a Python int, not a key
        (np.zeros(2, np.float32), DENSE, jnp.float32, BackendError),  # floats
        (np.zeros(3, np.uint32), DENSE, jnp.float32, BackendError),  # not a threefry key
        ("key", DENSE, jnp.float32, BackendError),
        (None, DENSE, jnp.float32, BackendError),
        ("split", DENSE, jnp.float32, BackendError),  # a batch of keys
        (jax.random.key(0), DENSE, jnp.int32, BackendError),
        (jax.random.key(0), DENSE, jnp.bool_, BackendError),
        (jax.random.key(0), DENSE, jnp.complex64, BackendError),
        (jax.random.key(0), (96,), jnp.float32, ShapeError),  # fan-based on a 1-D bias
        (jax.random.key(0), (), jnp.float32, ShapeError),
        (jax.random.key(0), (3, -1), jnp.float32, ShapeError),
    ],
    ids=["int", "float-array", "uint32-3", "str", "none", "key-batch", "int32", "bool",
         "complex64", "1-D", "0-D", "negative"],
)
def test_bad_input_is_an_initspec_error(key, shape, dtype, error) -> None:
    if isinstance(key, str) and key == "split":
        key = jax.random.split(jax.random.key(0), 2)
    init = initspec_jax.initializer({"kind": "lecun_normal"})
    with pytest.raises(error) as info:
        init(key, shape, dtype)
    assert isinstance(info.value, InitSpecError)


def test_bad_spec_and_layout_are_errors_at_construction() -> None:
    with pytest.raises(InitSpecError):
        initspec_jax.initializer({"kind": "no_such_kind"})
    with pytest.raises(InitSpecError):
        initspec_jax.initializer({"kind": "normal", "std": -1.0})
    with pytest.raises(InitSpecError):
        initspec_jax.initializer({"kind": "normal"}, layout="nchw")


def test_values_that_would_overflow_the_dtype_are_refused() -> None:
    key = jax.random.key(0)
    with pytest.raises(BackendError, match="float16"):
        initspec_jax.initializer({"kind": "constant", "value": 1e5})(key, DENSE, jnp.float16)
    with pytest.raises(BackendError, match="float16"):
        initspec_jax.initializer({"kind": "uniform", "low": 0, "high": 7e4})(key, DENSE, jnp.float16)
    x = initspec_jax.initializer({"kind": "uniform", "low": 0, "high": 6e4})(key, DENSE, jnp.float16)
    assert np.isfinite(np.asarray(x, np.float32)).all()


def test_a_fan_based_bias_init_fails_inside_flax_with_an_initspec_error() -> None:
    dense = nn.Dense(3, bias_init=initspec_jax.initializer({"kind": "lecun_normal"}))
    with pytest.raises(ShapeError, match="lecun_normal"):
        dense.init(jax.random.PRNGKey(0), jnp.ones((1, 4)))


# Sharding ----------------------------------------------------------------------------------

SHARDING_SCRIPT = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    from scipy import special, stats
    import initspec_jax

    assert len(jax.devices()) == 8, jax.devices()
    mesh = Mesh(np.array(jax.devices()).reshape(4, 2), ("data", "model"))
    cases = [({"kind": "lecun_normal"}, (3, 3, 64, 128), P(None, None, "data", "model"))]
    for raw, shape, spec in cases:
        init = initspec_jax.initializer(raw)
        plan = init.plan(shape)
        sharding = NamedSharding(mesh, spec)
        key = jax.random.key(3)
        x = jax.jit(lambda k: init(k, shape), out_shardings=sharding)(key)
        assert x.sharding.is_equivalent_to(sharding, len(shape)), (raw, x.sharding)
        assert len({s.device for s in x.addressable_shards}) == 8
        values = np.asarray(x)
        # threefry is partitionable: the sharded result is the unsharded one, up to fusion ulps
        np.testing.assert_array_max_ulp(values, np.asarray(init(key, shape)), maxulp=4)
        assert stats.kstest(values.ravel(), plan.cdf).pvalue > 1e-4, raw
        y = init(key, shape, out_sharding=sharding)  # the out_sharding keyword
        assert y.sharding.is_equivalent_to(sharding, len(shape))

    # initspec_jax.apply materializes abstract parameters directly on their shardings
    kernel_sharding = NamedSharding(mesh, P("data", "model"))
    abstract = {"params": {"fc": {
        "kernel": jax.ShapeDtypeStruct((400, 500), jnp.float32, sharding=kernel_sharding),
        "bias": jax.ShapeDtypeStruct((500,), jnp.float32, sharding=NamedSharding(mesh, P())),
    }}}
    new, report = initspec_jax.apply("flax-defaults", abstract, seed=1)
    kernel = new["params"]["fc"]["kernel"]
    assert kernel.sharding.is_equivalent_to(kernel_sharding, 2), kernel.sharding
    assert new["params"]["fc"]["bias"].sharding.is_equivalent_to(NamedSharding(mesh, P()), 1)
    plan = report.resolution.params[0].plan
    assert stats.kstest(np.asarray(kernel).ravel(), plan.cdf).pvalue > 1e-4
    assert report.rows()[0]["device"] == "cpu x8"
    print("OK")
    """
)


def test_sharded_initialization_on_an_8_device_cpu_mesh() -> None:
    flags = "--xla_force_host_platform_device_count=8 --xla_backend_optimization_level=0"
    env = dict(os.environ, XLA_FLAGS=flags, JAX_PLATFORMS="cpu")
    result = subprocess.run(
        [sys.executable, "-c", SHARDING_SCRIPT], env=env, capture_output=True, text=True,
        timeout=120,
    )
    assert result.returncode == 0 and result.stdout.strip().endswith("OK"), result.stderr[-3000:]
