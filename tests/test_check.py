"""``initspec.check`` on NumPy tensors: false alarms, power, structure, the report, bad input.

Statistical tolerances are derived in the comments (and in docs/check.md); every seed is
fixed, so each test either always passes or always fails.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import initspec
from initspec import InitCheckError, InitSpecError, ResolutionError, check
from initspec.checker import describe_tensors
from initspec.checkstats import MIN_ELEMENTS, expected
from initspec.numeric import inward_bounds
from initspec.parse import parse
from initspec.plans import NormalPlan
from initspec.special import three_moment_p

SPECS = {
    "n": {"kind": "normal", "std": 0.02},
    "u": {"kind": "kaiming_uniform", "a": math.sqrt(5)},
    "t": {"kind": "trunc_normal", "std": 0.02, "a": -0.04, "b": 0.04},
    "x": {"kind": "xavier_normal"},
}
POLICY = {
    "initspec": 1,
    "name": "mixed",
    "rules": [
        {"match": {"role": "bias"}, "init": {"kind": "zeros"}},
        *({"match": {"path": f"*.{k}.weight"}, "init": v} for k, v in SPECS.items()),
        {"match": {"path": "*.o.weight"}, "init": {"kind": "orthogonal", "gain": 2.0}},
        {"match": {"path": "*.s.weight"}, "init": {"kind": "sparse", "sparsity": 0.25}},
        {"match": {"path": "*.e.weight"}, "init": {"kind": "eye"}},
        {"match": {"path": "*.d.weight"}, "init": {"kind": "dirac"}},
    ],
}

ml_dtypes = pytest.importorskip("ml_dtypes")  # bfloat16 in NumPy (installed with JAX)


def draw(spec: dict, shape: tuple[int, ...], dtype: str, seed: int) -> np.ndarray:
    """Values as initspec's backends store them: float64 draws rounded once (bfloat16 with
    ml_dtypes' round-to-nearest-even), bounded plans clipped to the dtype-inward bounds."""
    if dtype != "bfloat16":
        return initspec.sample(spec, shape, seed=seed, dtype=dtype)
    x = initspec.sample(spec, shape, seed=seed, dtype="float64").astype(ml_dtypes.bfloat16)
    plan = parse(spec).plan(shape, "torch")
    if plan.bounds is not None:
        lo, hi = inward_bounds(*plan.bounds, "bfloat16", plan.open_high)
        x = np.clip(x, ml_dtypes.bfloat16(lo), ml_dtypes.bfloat16(hi))
    return x


def model(n_blocks: int, seed: int, shape: tuple[int, int] = (64, 64)) -> dict[str, np.ndarray]:
    """n_blocks x (4 random weights of the mixed policy + 4 zero biases), dtypes cycling
    through float32, bfloat16, float16 and float64."""
    out = {}
    dtypes = ("float32", "bfloat16", "float16", "float64")
    for b in range(n_blocks):
        dtype = dtypes[b % 4]
        for k, spec in SPECS.items():
            out[f"b{b}.{k}.weight"] = draw(spec, shape, dtype, seed * 100_003 + b * 7 + len(k) * ord(k))
            out[f"b{b}.{k}.bias"] = np.zeros(shape[0], dtype=ml_dtypes.bfloat16 if dtype == "bfloat16" else dtype)
    return out


def test_a_clean_300_parameter_model_passes_and_its_p_values_are_uniform() -> None:
    # 38 blocks x 8 = 304 parameters (152 random, 4096 elements each; a quarter bfloat16, a
    # quarter float16). Under H0 each test's p-value is uniform (KS: at most, conservative),
    # so among the 152 p-values of one test the number below 0.05 is Binomial(152, 0.05):
    # mean 7.6, P(X >= 22) = 4e-5. Mean and variance tests must be calibrated from both
    # sides (P(X <= 1) = 4e-3 alone would flag an over-conservative test: bounds 1..21).
    report = check(model(38, seed=1), POLICY)
    assert len(report.params) == 304
    assert report.ok, report.table(only_failed=True)
    assert report.counts()["ok"] == 304
    for name in ("mean", "variance", "ks"):
        ps = [t.p for p in report.params for t in p.tests if t.name == name]
        assert len(ps) == 152
        low = sum(p < 0.05 for p in ps)
        assert low <= 21, (name, low)
        if name != "ks":
            assert low >= 1, (name, low)


def test_two_percent_std_error_on_768x3072_is_caught_with_power_above_0_99() -> None:
    # The variance statistic S = mean((x - mu)^2) over N = 2,359,296 elements has sd
    # sigma^2 sqrt((kurtosis - 1) / N) = 9.2e-4 sigma^2 for a normal; a 2% std error moves
    # its mean by (1.02^2 - 1) sigma^2 = 0.0404 sigma^2 = 44 sd. The worst Holm threshold of
    # a 300-parameter model (3 p-values each) is alpha / 900 = 1.1e-7 (z = 5.3), so the
    # power is P(Z > 5.3 - 44) = 1 - 1e-300. Proven here at S's 1st percentile under the
    # alternative (power >= 0.99 when even that S is rejected), then shown on real draws.
    n, sigma = 768 * 3072, 0.02
    e = expected(NormalPlan((), loc=0.0, scale=sigma), "float32")
    sd = math.sqrt((e.m4 - e.m2**2) / n)
    skew = (e.m6 - 3 * e.m2 * e.m4 + 2 * e.m2**3) / (e.m4 - e.m2**2) ** 1.5 / math.sqrt(n)
    for ratio in (1.02, 0.98):
        var = (ratio * sigma) ** 2
        worst = var * (1 - 2.33 * math.sqrt(2 / n)) if ratio > 1 else var * (1 + 2.33 * math.sqrt(2 / n))
        assert three_moment_p(worst, (e.m2 - e.var_tol, e.m2 + e.var_tol), sd, skew) < 1e-4 / 900
    policy = {"initspec": 1, "rules": [{"match": {"path": "w"}, "init": SPECS["n"]}]}
    for seed, ratio, dtype in ((0, 1.02, "float32"), (1, 0.98, "float32"), (2, 1.02, "bfloat16")):
        x = draw({"kind": "normal", "std": sigma * ratio}, (768, 3072), dtype, seed)
        report = check({"w": x}, policy)
        (p,) = report.params
        assert p.verdict == "mismatch", p.summary()
        assert any(t.name == "variance" and t.rejected for t in p.tests)
        assert p.evidence["std_ratio"] == pytest.approx(ratio, abs=0.002)
        # and the correct one passes
        ok = check({"w": draw(SPECS["n"], (768, 3072), dtype, seed + 10)}, policy)
        assert ok.ok, ok.table()


def test_a_correct_bfloat16_init_passes_where_float32_moments_would_false_alarm() -> None:
    # N(1, 0.01^2) in bfloat16 (spacing 2^-8 below 1, 2^-7 above): the stored mean is off
    # the plan's by 4.9 standard errors at this size; the check uses the stored distribution.
    policy = {"initspec": 1, "rules": [{"match": {"path": "w"}, "init": {"kind": "normal", "mean": 1.0, "std": 0.01}}]}
    for seed in range(3):
        x = draw({"kind": "normal", "mean": 1.0, "std": 0.01}, (500, 800), "bfloat16", seed)
        report = check({"w": x}, policy)
        assert report.ok, report.table()


def test_structural_plans_pass_when_right_and_fail_when_wrong() -> None:
    good = {
        "a.o.weight": draw({"kind": "orthogonal", "gain": 2.0}, (64, 128), "float32", 0),
        "a.s.weight": draw({"kind": "sparse", "sparsity": 0.25}, (200, 50), "float32", 1),
        "a.e.weight": draw({"kind": "eye"}, (30, 40), "bfloat16", 2),
        "a.d.weight": draw({"kind": "dirac"}, (8, 8, 3, 3), "float16", 3),
        "a.o.bias": np.zeros(64, np.float32),
    }
    report = check(good, POLICY)
    assert report.ok, report.table()
    bad = dict(good)
    bad["a.o.weight"] = draw({"kind": "orthogonal", "gain": 1.9}, (64, 128), "float32", 0)
    s = good["a.s.weight"].copy()
    s[np.argmax(s[:, 0] == 0), 0] = 0.005  # one column now has one zero too few
    bad["a.s.weight"] = s
    e = good["a.e.weight"].copy()
    e[0, 1] = ml_dtypes.bfloat16(1e-3)
    bad["a.e.weight"] = e
    bad["a.o.bias"] = np.full(64, 1e-7, np.float32)
    report = check(bad, POLICY)
    verdicts = {p.path: p for p in report.params}
    assert {k for k, p in verdicts.items() if p.verdict == "mismatch"} == {
        "a.o.weight", "a.s.weight", "a.e.weight", "a.o.bias"
    }
    assert "W W^T" in verdicts["a.o.weight"].problems[0]
    assert any("fewer than the 50 zeros" in m for m in verdicts["a.s.weight"].problems)
    assert "1 of 1200 value(s) differ" in verdicts["a.e.weight"].problems[0]
    assert "64 of 64 value(s) differ" in verdicts["a.o.bias"].problems[0]


def test_hard_facts_values_outside_the_bounds_and_non_finite_values() -> None:
    policy = {"initspec": 1, "rules": [{"match": {"path": "*"}, "init": SPECS["t"]}]}
    x = draw(SPECS["t"], (100, 100), "float32", 0)
    x[3, 3] = 0.0401  # trunc_normal's bounds are [-0.04, 0.04]
    (p,) = check({"w": x}, policy).params
    assert p.verdict == "mismatch" and "outside" in p.problems[0]
    x[3, 3] = np.nan
    (p,) = check({"w": x}, policy).params
    assert p.verdict == "mismatch" and "NaN" in p.problems[0]


def test_small_parameters_are_too_small_to_test_but_still_bounded() -> None:
    policy = {"initspec": 1, "rules": [{"match": {"path": "*"}, "init": SPECS["u"]}]}
    x = draw(SPECS["u"], (MIN_ELEMENTS - 1, 1), "float32", 0)
    (p,) = check({"w": x}, policy).params
    assert p.verdict == "too small to test" and not p.tests
    (p,) = check({"w": x * 5}, policy).params  # outside uniform's bounds: certain
    assert p.verdict == "mismatch"


def test_report_table_dict_and_assert_ok() -> None:
    tensors = model(2, seed=5)
    tensors["b0.n.weight"] = tensors["b0.n.weight"] * 2
    tensors["extra.running_mean"] = np.zeros(4, np.float32)
    report = check(tensors, POLICY)
    assert not report.ok
    d = report.to_dict()
    assert d["ok"] is False and d["counts"]["mismatch"] == 1 and d["counts"]["unmatched"] == 1
    row = next(r for r in d["parameters"] if r["path"] == "b0.n.weight")
    assert row["evidence"]["std_ratio"] == pytest.approx(2.0, rel=0.05)
    assert any(t["rejected"] for t in row["tests"])
    report.to_json()  # strict JSON: no NaN
    text = report.table()
    line = next(row for row in text.splitlines() if row.startswith("b0.n.weight"))
    assert "mismatch" in line and "std x1.98" in line and "variance p=" in line
    with pytest.raises(InitCheckError) as info:
        report.assert_ok()
    assert isinstance(info.value, AssertionError) and isinstance(info.value, InitSpecError)
    assert "b0.n.weight" in str(info.value) and "b0.u.weight" not in str(info.value)
    assert info.value.report is report
    # strict: the unmatched tensor fails the check too
    del tensors["b0.n.weight"]
    assert check(tensors, POLICY).ok
    assert not check(tensors, POLICY, strict=True).ok


def test_bad_input_is_an_initspec_error_naming_the_tensor() -> None:
    with pytest.raises(InitSpecError, match="matches none of the 1 tensor"):
        check({"foo": np.zeros(3, np.float32)}, {"initspec": 1, "rules": [{"match": {"path": "bar"}, "init": {"kind": "zeros"}}]})
    unplannable = {"initspec": 1, "rules": [{"match": {"path": "w"}, "init": {"kind": "orthogonal"}}]}
    with pytest.raises(ResolutionError, match="w \\(shape \\(5,\\)"):
        check({"w": np.zeros(5, np.float32)}, unplannable)
    ints = {"initspec": 1, "rules": [{"match": {"path": "w"}, "init": {"kind": "zeros"}}]}
    with pytest.raises(ResolutionError, match="int64"):
        check({"w": np.zeros(5, np.int64)}, ints)
    with pytest.raises(InitSpecError, match="alpha"):
        check({"w": np.zeros(5, np.float32)}, ints, alpha=2.0)


def test_names_and_shapes_describe_a_checkpoint() -> None:
    entries = {
        "transformer.wte.weight": ((100, 8), "float32"),
        "h.0.ln_1.weight": ((8,), "float32"),
        "h.0.ln_1.bias": ((8,), "float32"),
        "h.0.fc.weight": ((16, 8), "float32"),
        "h.0.fc.bias": ((16,), "float32"),
        "conv.weight": ((4, 3, 3, 3), "float16"),
        "bn.running_mean": ((4,), "float32"),
        "params/Dense_0/kernel": ((8, 16), "float32"),
        "params/Embed_0/embedding": ((10, 8), "float32"),
    }
    got = {p.framework_path: (p.path, p.kind, p.role, p.layout) for p in describe_tensors(entries)}
    assert got["transformer.wte.weight"][1:] == ("embedding", "embedding", "embedding")
    assert got["h.0.ln_1.weight"][1:3] == ("norm", "scale")
    assert got["h.0.ln_1.bias"][1:3] == ("norm", "bias")
    assert got["h.0.fc.weight"][1:] == ("linear", "kernel", "torch")
    assert got["h.0.fc.bias"][1:3] == ("linear", "bias")
    assert got["conv.weight"][1:3] == ("conv", "kernel")
    assert got["bn.running_mean"][1:3] == ("other", "other")
    assert got["params/Dense_0/kernel"][0] == "params.Dense_0.kernel"
    assert got["params/Embed_0/embedding"][1] == "embedding"
    flax = {p.path: p for p in describe_tensors(entries, "flax")}
    assert flax["params.Dense_0.kernel"].layout == "flax"
    fc_bias = next(p for p in describe_tensors(entries) if p.path == "h.0.fc.bias")
    assert fc_bias.context.weight_fans == (8, 16)


@pytest.mark.slow
def test_the_family_wise_false_alarm_rate_is_at_most_alpha() -> None:
    # 100 clean 304-parameter models (1024 elements per random one, all four dtypes) at
    # alpha = 0.05, so the rate is measurable: Holm bounds P(a model fails) by alpha, so
    # the failures are at most Binomial(100, 0.05): P(X >= 14) = 6e-4.
    failures = sum(not check(model(38, seed=1000 + r, shape=(32, 32)), POLICY, alpha=0.05).ok for r in range(100))
    assert failures <= 13, failures
