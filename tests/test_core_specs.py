"""Every spec: NumPy samples against the plan's exact moments and CDF; structural specs exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest
from moments import Z, moment_check, plan_check

import initspec
from initspec.numpy_backend import sample_plan64
from initspec.plans import NormalPlan, TruncatedNormalPlan, UniformPlan
from initspec.specs import PlanContext

SHAPE = (400, 500)  # n = 200_000, see moments.py for what this size can detect
CTX = PlanContext(weight_fans=(500, 400), hidden_size=64)

RANDOM_SPECS = [
    {"kind": "uniform"},
    {"kind": "uniform", "low": -3.0, "high": -1.0},
    {"kind": "normal"},
    {"kind": "normal", "mean": 0.5, "std": 0.02},
    {"kind": "truncated_normal"},
    {"kind": "truncated_normal", "mean": 0.1, "std": 1.0, "low": -0.5, "high": 2.5},
    {"kind": "truncated_normal", "std": 0.02, "low": -2, "high": 2, "bounds": "std"},
    {"kind": "truncated_normal", "std": 1.0, "low": 1.0, "high": 3.0},
    {"kind": "truncated_normal", "std": 1.0, "low": 4.0, "high": 9.0},
    {"kind": "truncated_normal", "std": 1e-4, "low": 3e-4, "high": 3.1e-4},
    {"kind": "variance_scaling", "mode": "fan_geo_avg", "distribution": "uniform", "scale": 2.0},
    {"kind": "variance_scaling", "mode": "fan_out", "distribution": "normal"},
    {"kind": "variance_scaling", "mode": "fan_avg", "distribution": "truncated_normal"},
    {"kind": "fan_truncated_normal", "cutoff": 3.0},
    {"kind": "glorot_uniform"},
    {"kind": "glorot_normal"},
    {"kind": "he_uniform"},
    {"kind": "he_normal"},
    {"kind": "lecun_uniform"},
    {"kind": "lecun_normal"},
    {"kind": "xavier_uniform", "gain": 2.0},
    {"kind": "xavier_normal"},
    {"kind": "kaiming_uniform", "nonlinearity": "relu", "mode": "fan_out"},
    {"kind": "kaiming_normal", "a": 0.2},
    {"kind": "torch_linear_weight"},
    {"kind": "torch_linear_bias"},
    {"kind": "torch_rnn"},
]


@pytest.mark.parametrize("raw", RANDOM_SPECS, ids=lambda r: "-".join(f"{v}" for v in r.values()))
def test_numpy_samples_match_plan(raw: dict) -> None:
    spec = initspec.parse(raw)
    plan = spec.plan(SHAPE, "torch", CTX)
    x = initspec.sample(spec, SHAPE, seed=7, dtype="float64", context=CTX)
    check = plan_check(x, plan)
    assert check.ok, (plan.describe(), check)
    if isinstance(plan, (UniformPlan, TruncatedNormalPlan)):
        assert x.min() >= plan.low and x.max() <= plan.high


@pytest.mark.parametrize("family", ["normal", "uniform", "truncated_normal"])
def test_moment_check_catches_two_percent_std_error(family: str) -> None:
    """The same check applied to a sampler whose std is 2% off, or mean 0.05 sigma off, fails."""
    spec = initspec.parse({"kind": "variance_scaling", "distribution": family, "scale": 2.0})
    plan = spec.plan(SHAPE)
    rng = np.random.default_rng(3)
    good = sample_plan64(plan, rng)
    assert plan_check(good, plan).ok
    wrong_std = sample_plan64(plan.scaled(1.02), np.random.default_rng(3))
    assert not plan_check(wrong_std, plan).ok
    assert abs(plan_check(wrong_std, plan).z_var) > Z
    shifted = good + 0.05 * plan.std
    assert abs(moment_check(shifted, plan.mean, plan.var, plan.kurtosis).z_mean) > Z


def test_float32_and_float16_cast_once_and_stay_in_bounds() -> None:
    spec = initspec.parse(
        {"kind": "truncated_normal", "std": 0.02, "low": -2, "high": 2, "bounds": "std"}
    )
    plan = spec.plan(SHAPE)
    for dtype, np_dtype in (("float32", np.float32), ("float16", np.float16)):
        x = initspec.sample(spec, SHAPE, seed=1, dtype=dtype)
        assert x.dtype == np_dtype
        assert float(x.min()) >= plan.low and float(x.max()) <= plan.high
        # float16 has ~1e-3 relative spacing: the moments still hold at this n.
        assert plan_check(x, plan).ok
        assert len(np.unique(x)) > 1000


def test_uniform_never_reaches_high_after_cast() -> None:
    # U[0, 1) drawn in float64 can round up to 1.0 in float16; the cast keeps it below.
    x = initspec.sample({"kind": "uniform", "low": 0.0, "high": 1.0}, (1000, 1000), dtype="float16")
    assert float(x.max()) < 1.0 and float(x.min()) >= 0.0


def test_same_seed_same_array_and_paths_are_independent() -> None:
    spec = {"kind": "normal"}
    a = initspec.sample(spec, (50, 40), seed=3, path="fc1.weight")
    b = initspec.sample(spec, (50, 40), seed=3, path="fc1.weight")
    c = initspec.sample(spec, (50, 40), seed=3, path="fc2.weight")
    d = initspec.sample(spec, (50, 40), seed=4, path="fc1.weight")
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c) and not np.array_equal(a, d)


def test_numpy_global_state_untouched() -> None:
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    initspec.sample({"kind": "orthogonal"}, (30, 20))
    initspec.sample({"kind": "sparse"}, (30, 20))
    assert np.array_equal(np.random.get_state()[1], before)


# Exact plan parameters --------------------------------------------------------------


def test_std_and_bound_formulas() -> None:
    p = lambda raw, shape=(16, 8, 3, 3), layout="torch": initspec.parse(raw).plan(shape, layout)  # noqa: E731
    assert p({"kind": "kaiming_normal", "nonlinearity": "relu"}).std == pytest.approx(
        math.sqrt(2 / 72), rel=1e-15
    )
    assert p({"kind": "kaiming_uniform"}).high == pytest.approx(math.sqrt(6 / 72), rel=1e-15)
    assert p({"kind": "kaiming_uniform", "mode": "fan_out"}).high == pytest.approx(
        math.sqrt(6 / 144), rel=1e-15
    )
    assert p({"kind": "xavier_uniform"}).high == pytest.approx(math.sqrt(6 / (72 + 144)), rel=1e-15)
    assert p({"kind": "xavier_normal", "gain": 3.0}).std == pytest.approx(
        3 * math.sqrt(2 / 216), rel=1e-15
    )
    assert p({"kind": "torch_linear_weight"}).high == pytest.approx(1 / math.sqrt(72), rel=1e-14)
    assert p({"kind": "lecun_uniform"}).high == pytest.approx(math.sqrt(3 / 72), rel=1e-15)
    # jax/keras truncated normals: the std after truncation is the target.
    assert p({"kind": "he_normal"}).std == pytest.approx(math.sqrt(2 / 72), rel=1e-12)
    assert p({"kind": "glorot_normal"}).std == pytest.approx(math.sqrt(2 / 216), rel=1e-12)
    ln = p({"kind": "lecun_normal"}, (3, 3, 8, 16), "flax")
    assert ln.std == pytest.approx(math.sqrt(1 / 72), rel=1e-12)
    assert ln.high == pytest.approx(2 * math.sqrt(1 / 72) / 0.87962566103423978, rel=1e-15)
    geo = p({"kind": "variance_scaling", "mode": "fan_geo_avg", "distribution": "normal"})
    assert geo.std == pytest.approx((72 * 144) ** -0.25, rel=1e-15)
    # torch trunc_normal_ bounds are absolute: std 0.02 with +-2 is N(0, 0.02) in effect.
    assert p({"kind": "trunc_normal_", "std": 0.02}).std == pytest.approx(0.02, rel=1e-12)
    # jax truncated_normal(lower, upper) are in std units and uncorrected: 0.8796 * std.
    tn = p({"kind": "truncated_normal", "stddev": 0.02, "lower": -2.0, "upper": 2.0})
    assert tn.std == pytest.approx(0.02 * 0.87962566103423978, rel=1e-12)
    assert (tn.low, tn.high) == pytest.approx((-0.04, 0.04))


def test_torch_linear_bias_uses_the_weight_fan_and_zero_fan_gives_zero() -> None:
    spec = initspec.parse({"kind": "torch_linear_bias"})
    assert spec.plan((10,), context=PlanContext(weight_fans=(25, 10))).high == pytest.approx(0.2)
    assert (
        spec.plan((10,), context=PlanContext(weight_fans=(0, 10))).describe()
        == "constant(0)  fan_in=0 fan_out=10"
    )
    with pytest.raises(initspec.InitSpecError, match="weight_fans"):
        spec.plan((10,))


def test_truncated_normal_exact_moments_against_scipy() -> None:
    from scipy import stats

    for loc, scale, low, high in [
        (0, 1, -2, 2),
        (0.3, 2.0, -1.0, 5.0),
        (0, 1e-4, 3e-4, 1e-3),
        (0, 1, 5, 30),
    ]:
        plan = TruncatedNormalPlan((), loc, scale, low, high)
        ref = stats.truncnorm((low - loc) / scale, (high - loc) / scale, loc=loc, scale=scale)
        assert plan.mean == pytest.approx(ref.mean(), rel=1e-9, abs=1e-15)
        assert plan.var == pytest.approx(ref.var(), rel=1e-7)
        assert plan.kurtosis == pytest.approx(ref.stats(moments="k") + 3, rel=1e-6)


def test_truncated_normal_far_tail_stays_inside_with_right_std() -> None:
    # PyTorch's old inverse-CDF trunc_normal_ produced 1000-sigma outliers here.
    spec = initspec.parse({"kind": "truncated_normal", "std": 1e-8, "low": 6e-8, "high": 1.0})
    plan = spec.plan(SHAPE)
    x = initspec.sample(spec, SHAPE, seed=0, dtype="float64")
    assert x.min() >= 6e-8 and x.max() < 6e-8 + 2e-7
    assert plan_check(x, plan).ok


def test_impossible_truncation_is_refused() -> None:
    with pytest.raises(initspec.InitSpecError, match="no probability mass"):
        initspec.parse({"kind": "truncated_normal", "std": 1e-3, "low": 1.0, "high": 2.0}).plan(
            (3,)
        )


# Structural specs -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape,layout",
    [
        ((3, 4), "torch"),
        ((4, 3), "torch"),
        ((20, 2, 3, 4), "torch"),
        ((2, 3, 4, 5), "torch"),
        ((3, 3, 8, 16), "flax"),
    ],
)
@pytest.mark.parametrize("gain", [1.0, 2.5])
def test_orthogonal_is_orthogonal_in_float32(shape, layout, gain) -> None:
    x = initspec.sample({"kind": "orthogonal", "gain": gain}, shape, layout=layout, seed=2)
    assert x.dtype == np.float32
    perm = initspec.parse({"kind": "orthogonal"}).plan(shape, layout).perm
    m = x.transpose(perm).reshape(x.shape[perm[0]], -1).astype(np.float64)
    r, c = m.shape
    gram = m @ m.T if r <= c else m.T @ m
    np.testing.assert_allclose(gram, gain**2 * np.eye(min(r, c)), atol=1e-6 * gain**2, rtol=0)


def test_orthogonal_flax_kernel_has_orthonormal_output_columns_like_jax() -> None:
    # jax orthogonal(column_axis=-1) on a Dense kernel (in, out) with in > out: columns orthonormal.
    x = initspec.sample({"kind": "orthogonal"}, (64, 16), layout="flax", dtype="float64")
    np.testing.assert_allclose(x.T @ x, np.eye(16), atol=1e-12)


def test_orthogonal_moments() -> None:
    plan = initspec.parse({"kind": "orthogonal", "gain": 2.0}).plan((30, 50))
    x = initspec.sample({"kind": "orthogonal", "gain": 2.0}, (30, 50), dtype="float64")
    assert np.mean(x**2) == pytest.approx(plan.var + plan.mean**2, rel=1e-12)


def test_eye_exact() -> None:
    for shape in [(3, 5), (5, 3), (4, 4)]:
        x = initspec.sample({"kind": "identity", "gain": 2.0}, shape)
        np.testing.assert_array_equal(x, 2.0 * np.eye(*shape, dtype=np.float32))
        plan = initspec.parse({"kind": "eye", "gain": 2.0}).plan(shape)
        assert x.mean() == pytest.approx(plan.mean) and x.var() == pytest.approx(plan.var)


def _conv(x: np.ndarray, w: np.ndarray, groups: int) -> np.ndarray:
    """Cross-correlation with 'same' zero padding in torch layout (out, in/groups, *k), N=1."""
    from scipy.signal import correlate

    out_ch, in_per_group = w.shape[:2]
    opg = out_ch // groups
    ks = w.shape[2:]
    # dirac puts its one at k // 2, so 'same' output pads k // 2 on the left.
    pads = [(k // 2, k - 1 - k // 2) for k in ks]
    xp = np.pad(x, [(0, 0)] + pads)
    y = np.zeros((out_ch, *x.shape[1:]))
    for o in range(out_ch):
        g = o // opg
        for i in range(in_per_group):
            y[o] += correlate(xp[g * in_per_group + i], w[o, i], mode="valid")
    return y


@pytest.mark.parametrize("groups", [1, 3])
@pytest.mark.parametrize("dims", [1, 2, 3])
def test_dirac_passes_input_through(groups: int, dims: int) -> None:
    in_ch = 6
    out_ch = 6
    shape = (out_ch, in_ch // groups, *([3] * dims))
    w = initspec.sample({"kind": "dirac", "groups": groups}, shape, dtype="float64")
    assert np.count_nonzero(w) == groups * min(out_ch // groups, in_ch // groups)
    x = np.random.default_rng(0).standard_normal((in_ch, *([5] * dims)))
    np.testing.assert_allclose(_conv(x, w, groups), x, atol=1e-12)


def test_dirac_flax_layout_is_the_transpose_of_torch() -> None:
    t = initspec.sample({"kind": "dirac"}, (8, 4, 3, 3))
    f = initspec.sample({"kind": "dirac"}, (3, 3, 4, 8), layout="flax")
    np.testing.assert_array_equal(f, t.transpose(2, 3, 1, 0))


def test_dirac_groups_must_divide_out_channels() -> None:
    with pytest.raises(initspec.ShapeError, match="divisible by groups"):
        initspec.parse({"kind": "dirac", "groups": 4}).plan((6, 2, 3, 3))


def test_delta_orthogonal_structure_matches_jax_center() -> None:
    # jax places the matrix at (k - 1) // 2: index 1 for k=4 (torch's dirac uses 2).
    x = initspec.sample(
        {"kind": "delta_orthogonal", "scale": 1.5}, (4, 4, 3, 5), layout="flax", dtype="float64"
    )
    center = x[1, 1]
    np.testing.assert_allclose(center @ center.T, 1.5**2 * np.eye(3), atol=1e-12)
    mask = np.ones(x.shape[:2], bool)
    mask[1, 1] = False
    assert not np.any(x[mask])
    with pytest.raises(initspec.ShapeError, match="in <= out"):
        initspec.parse({"kind": "delta_orthogonal"}).plan((3, 3, 5, 4), "flax")


def test_sparse_zero_counts_and_nonzero_distribution() -> None:
    spec = {"kind": "sparse", "sparsity": 0.3, "std": 0.05}
    x = initspec.sample(spec, (200, 1000), dtype="float64", seed=5)
    assert np.all((x == 0).sum(axis=0) == math.ceil(0.3 * 200))
    nz = x[x != 0]
    check = moment_check(nz, 0.0, 0.05**2, 3.0, NormalPlan((), 0.0, 0.05).cdf)
    assert check.ok, check


def test_constants_exact() -> None:
    assert np.all(initspec.sample({"kind": "zeros"}, (3, 4)) == 0)
    assert np.all(initspec.sample({"kind": "ones"}, (3,)) == 1)
    assert np.all(initspec.sample({"kind": "constant", "val": 0.25}, ()) == 0.25)


def test_constant_that_overflows_the_dtype_is_an_error() -> None:
    with pytest.raises(initspec.BackendError, match="float16"):
        initspec.sample({"kind": "constant", "value": 1e6}, (2, 2), dtype="float16")
    with pytest.raises(initspec.BackendError, match="bfloat16"):
        initspec.sample({"kind": "zeros"}, (2,), dtype="bfloat16")


def test_plan_describe_is_one_line() -> None:
    plan = initspec.parse({"kind": "kaiming_normal", "nonlinearity": "relu"}).plan((64, 64, 3, 3))
    assert plan.describe() == "normal(mean=0, std=0.05893)  fan_in=576 fan_out=576"
    for raw in RANDOM_SPECS:
        assert "\n" not in initspec.parse(raw).plan(SHAPE, context=CTX).describe()
