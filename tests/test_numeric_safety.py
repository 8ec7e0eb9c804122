"""Numeric safety (issue 10, item 3): every spec kind, in every dtype, on edge shapes, on the
NumPy, torch and JAX backends, gives either a clear ``InitSpecError`` or finite values inside
the bounds its plan declares; a value the dtype cannot hold is an error, never an inf.

- ``test_edge_shapes_error_or_finite_in_bounds``: every kind of ``SPEC_CLASSES`` with its
  defaults, plus extreme parameters whose fate is derived by hand per dtype (``Case.fails``),
  x float16 / bfloat16 / float32 / float64 x shapes (0, 5), (1, 1), (1,), (), (1, 100000)
  (all of them on NumPy and torch; on JAX a design in which each shape and dtype occurs).
- ``test_fans_near_1e9_plan_only``: shapes with ~1e9 elements or fans of ~1e9, planned (and
  checked against every dtype) but never sampled: core plans, torch meta tensors, JAX
  ``eval_shape``.
- ``test_tiny_std_truncated_normal_tail``: std 1e-4 and 1e-8 with bounds far in the tail (and
  torch's 1000-sigma-outlier case, default bounds +-2 with a tiny std): inside the bounds, mean
  and variance within 5 standard errors of scipy's exact truncated-normal moments.
- the rest pin down what the sweep found (xfail strict where the library is wrong today):
  huge ranges and scales, rule scaling past the spec limit, empty tensors refused alike.

JAX runs float64 under ``jax.enable_x64`` (a context manager: the global config is restored).
The sweep's cost is JAX compilation (one program per primitive, shape and dtype).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import initspec_jax
import initspec_torch
import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
import torch
from scipy import stats  # type: ignore[import-untyped]

import initspec
from initspec import SPEC_CLASSES, InitSpecError, PlanContext
from initspec.plans import (
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

SEED = 20240610
DTYPES = ("float16", "bfloat16", "float32", "float64")
EDGE_SHAPES: tuple[tuple[int, ...], ...] = ((0, 5), (1, 1), (1,), (), (1, 100000))
LAYOUT = "torch"
CONTEXT = PlanContext(weight_fans=(5, 1), hidden_size=7)

# Unit roundoff (half an ulp, relative) and the smallest positive subnormal of each dtype.
UNIT = {"float16": 2.0**-11, "bfloat16": 2.0**-8, "float32": 2.0**-24, "float64": 2.0**-53}
TINY = {"float16": 2.0**-24, "bfloat16": 2.0**-133, "float32": 2.0**-149, "float64": 5e-324}
# No backend draws a standard normal beyond 10: P(|z| > 10) = 1.5e-23 per draw.
NORMAL_LIMIT = 10.0


def _np_dtype(dtype: str) -> Any:
    return ml_dtypes.bfloat16 if dtype == "bfloat16" else np.dtype(dtype)


def cast(value: float, dtype: str) -> float:
    """``value`` rounded to ``dtype`` (round to nearest even; inf on overflow), independently
    of ``initspec.numeric``: NumPy's casts, ml_dtypes for bfloat16."""
    with np.errstate(over="ignore"):
        return float(np.array(value, dtype=np.float64).astype(_np_dtype(dtype)).astype(np.float64))


def work_unit(dtype: str) -> float:
    """Unit roundoff of the dtype the backends compute in: float64 for a float64 target,
    else float32 (NumPy always computes in float64, which is tighter)."""
    return UNIT["float64"] if dtype == "float64" else UNIT["float32"]


# Cases ------------------------------------------------------------------------------------

F16 = frozenset({"float16"})
F16_BF16 = frozenset({"float16", "bfloat16"})
BELOW_F64 = frozenset({"float16", "bfloat16", "float32"})
BF16 = frozenset({"bfloat16"})


@dataclass(frozen=True)
class Case:
    """A spec and the dtypes in which, on a non-empty shape, it must be refused: derived by
    hand in the comment beside it (max float16 65504, bfloat16 3.39e38, float32 3.40e38)."""

    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    fails: frozenset[str] = frozenset()

    @property
    def spec(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.params}

    def __str__(self) -> str:
        return f"{self.spec}"


EXTREMES = [
    Case("constant", {"value": 1e6}, F16),  # 1e6 > 65504
    Case("constant", {"value": 65504.0}),  # float16's max itself
    Case("constant", {"value": 65520.0}, F16),  # the tie between 65504 and 2**16 rounds to inf
    Case("constant", {"value": 3.4e38}, F16_BF16),  # > bf16 max + half its spacing, < f32 max
    Case("constant", {"value": -1e300}, BELOW_F64),
    Case("constant", {"value": 1e-45}),  # underflows to 0 (or a subnormal): finite
    Case("uniform", {"low": -1e6, "high": 1e6}, F16),
    Case("uniform", {"low": 1e-8, "high": 2e-8}, F16),  # below float16's smallest subnormal
    Case("uniform", {"low": -3e38, "high": 3e38}, F16),  # high - low exceeds float32's max
    Case("uniform", {"low": 0.0, "high": 1.7e308}, BELOW_F64),
    Case("uniform", {"low": 0.0, "high": 1e-300}),  # only 0 fits below f64: still a value
    Case("normal", {"mean": 1e6}, F16),
    Case("normal", {"std": 1e30}, F16),  # 10 std = 1e31 fits bfloat16 and float32
    Case("normal", {"std": 1e300}, BELOW_F64),
    Case("normal", {"std": 1e-300}),  # underflows to zeros
    Case("normal", {"mean": -1e308}, BELOW_F64),
    Case("truncated_normal", {"std": 1e-4, "low": 5e-4, "high": 6e-4}),  # [5, 6] sigma
    Case("truncated_normal", {"std": 1e-8, "low": 1e-7, "high": 1e-6}),  # [10, 100] sigma
    Case("truncated_normal", {"std": 1e-4}),  # bounds +-2 = +-20000 sigma
    Case("truncated_normal", {"std": 1e-8}),  # +-2e8 sigma
    Case("truncated_normal", {"std": 1e-8, "low": -2.0, "high": -1e-7}),  # left tail, <= -10 sigma
    Case("truncated_normal", {"low": -1e300, "high": 1e300}),  # bounds overflow, values do not
    # bf16 spacing at 1e6 is 4096: no bf16 value in [1e6 - 1, 1e6 + 1]
    Case("truncated_normal", {"mean": 1e6, "low": 1e6 - 1, "high": 1e6 + 1}, F16_BF16),
    Case("truncated_normal", {"bounds": "std", "low": 30.0, "high": 31.0}),
    # float16 holds 65504 in [65500, 65510]; bfloat16's neighbours there are 65280 and 65536
    Case("truncated_normal", {"mean": 65505.0, "low": 65500.0, "high": 65510.0}, BF16),
    Case("variance_scaling", {"scale": 1e-30}),
    Case("variance_scaling", {"mode": "fan_out", "distribution": "normal"}),
    # bound sqrt(3e30 / fan): 1.7e15 (fan 1) down to 5.5e12 (fan 1e5), beyond float16
    Case("variance_scaling", {"scale": 1e30, "distribution": "uniform"}, F16),
    # 10 std >= 1e150 / sqrt(1e5): beyond float32
    Case(
        "variance_scaling",
        {"scale": 1e300, "distribution": "normal", "mode": "fan_geo_avg"},
        BELOW_F64,
    ),
    Case("fan_truncated_normal", {"cutoff": 1e-6}),  # an interval around 0: 0 always fits
    Case("fan_truncated_normal", {"cutoff": 37.0, "correct_variance": True}),
    Case("fan_truncated_normal", {"scale": 1e200}, BELOW_F64),  # bounds +-2e100 / sqrt(fan)
    Case("kaiming_uniform", {"a": 1e150}),  # gain sqrt(2) / 1e150: all zeros below float64
    Case("kaiming_uniform", {"nonlinearity": "selu", "mode": "fan_out"}),
    Case("kaiming_normal", {"a": -1e10}),
    Case("xavier_uniform", {"gain": 1e30}, F16),
    Case("xavier_normal", {"gain": 1e300}, BELOW_F64),
    Case("torch_linear_weight", {"mode": "fan_out"}),
    Case("orthogonal", {"gain": 1e5}, F16),  # an entry may be +-gain (shape (1, 1) is)
    Case("orthogonal", {"gain": 1e-300}),
    Case("eye", {"gain": 1e5}, F16),
    # at the largest magnitude a spec accepts (1e150): float64 only
    Case("constant", {"value": -1e150}, BELOW_F64),
    Case("normal", {"mean": 1e150, "std": 1e150}, BELOW_F64),
    Case("uniform", {"low": -1e150, "high": 1e150}, BELOW_F64),
    Case("truncated_normal", {"std": 1e150, "low": -1e150, "high": 1e150}, BELOW_F64),
    Case("variance_scaling", {"scale": 1e150, "distribution": "uniform"}, BELOW_F64),
    Case("orthogonal", {"gain": 1e150}, BELOW_F64),
    Case("sparse", {"std": 1e150}, BELOW_F64),
    Case("sparse", {"sparsity": 0.99, "std": 1e5}, F16),
]
CASES = [Case(kind) for kind in SPEC_CLASSES] + EXTREMES


def test_cases_cover_every_kind() -> None:
    assert {c.kind for c in CASES} == set(SPEC_CLASSES)
    assert all(c.fails <= set(DTYPES) for c in CASES)


# Backends: each returns (values as float64, dtype name of the result) -------------------


@contextlib.contextmanager
def x64_for(dtype: str) -> Iterator[None]:
    if dtype == "float64":
        with jax.enable_x64(True):
            yield
    else:
        yield


def run_numpy(spec: Any, shape: tuple[int, ...], dtype: str) -> tuple[np.ndarray, str]:
    x = initspec.sample(spec, shape, LAYOUT, seed=SEED, dtype=dtype, path="w", context=CONTEXT)
    assert isinstance(x, np.ndarray)
    return x.astype(np.float64), x.dtype.name


SENTINEL = 7.0


def run_torch(spec: Any, shape: tuple[int, ...], dtype: str) -> tuple[np.ndarray, str]:
    t = torch.full(shape, SENTINEL, dtype=getattr(torch, dtype))
    try:
        out = initspec_torch.init_(t, spec, LAYOUT, seed=SEED, path="w", context=CONTEXT)
    except InitSpecError:
        # init_ promises to write nothing when it refuses
        assert bool((t == SENTINEL).all()), f"{spec} {shape} {dtype}: refused but wrote"
        raise
    assert out is t
    return t.double().numpy(), str(t.dtype).removeprefix("torch.")


def run_jax(spec: Any, shape: tuple[int, ...], dtype: str) -> tuple[np.ndarray, str]:
    with x64_for(dtype):
        init = initspec_jax.initializer(spec, LAYOUT, CONTEXT)
        x = init(jax.random.key(SEED), shape, jnp.dtype(_np_dtype(dtype)))
        wide = jnp.float64 if dtype == "float64" else jnp.float32
        values = np.asarray(x.astype(wide)).astype(np.float64)
        return values, np.dtype(x.dtype).name


BACKENDS: dict[str, Callable[[Any, tuple[int, ...], str], tuple[np.ndarray, str]]] = {
    "numpy": run_numpy,
    "torch": run_torch,
    "jax": run_jax,
}
# NumPy has no bfloat16: there it must be refused (an InitSpecError naming the dtype).
UNSUPPORTED = {("numpy", "bfloat16")}


# What "inside the declared bounds" means per plan -----------------------------------------


def bounds_problem(plan: Plan, x: np.ndarray, dtype: str) -> str | None:
    """Why ``x`` (the dtype's values, as float64) is not what ``plan`` declares, or None.

    Slack, where there is any, is derived: one rounding to the target (``UNIT[dtype]``
    relative), a few in the work dtype, and underflow to a subnormal (``TINY``).
    """
    u, w, tiny = UNIT[dtype], work_unit(dtype), TINY[dtype]
    if isinstance(plan, ConstantPlan):
        want = cast(plan.value, dtype)
        return None if bool((x == want).all()) else f"constant: {np.unique(x)[:4]} != {want}"
    if isinstance(plan, UniformPlan):
        if not (bool((x >= plan.low).all()) and bool((x < plan.high).all())):
            return f"uniform: [{x.min()}, {x.max()}] outside [{plan.low}, {plan.high})"
        return None
    if isinstance(plan, TruncatedNormalPlan):
        if not (bool((x >= plan.low).all()) and bool((x <= plan.high).all())):
            return f"truncated normal: [{x.min()}, {x.max()}] outside [{plan.low}, {plan.high}]"
        return None
    if isinstance(plan, NormalPlan):
        reach = NORMAL_LIMIT * plan.scale
        limit = reach + 2 * (u + 2 * w) * (abs(plan.loc) + reach) + tiny
        far = float(np.abs(x - plan.loc).max())
        return None if far <= limit else f"normal: |x - mean| reaches {far} > {limit}"
    if isinstance(plan, OrthogonalPlan) or (
        isinstance(plan, DiracPlan) and plan.matrix == "orthogonal"
    ):
        # Only a (1, 1)-like matrix has an entry near gain: a sign, exact, times gain, rounded
        # once in the work dtype and once to the target; 16 work ulps leave room for QR.
        limit = plan.gain * (1 + 2 * u + 16 * w) + tiny
        far = float(np.abs(x).max())
        return None if far <= limit else f"orthogonal: |x| reaches {far} > gain {plan.gain}"
    if isinstance(plan, (IdentityPlan, DiracPlan)):
        allowed = {0.0, cast(plan.gain, dtype)}
        seen = set(np.unique(x).tolist())
        return None if seen <= allowed else f"eye/dirac: values {seen} not in {allowed}"
    if isinstance(plan, SparsePlan):
        reach = NORMAL_LIMIT * plan.sigma
        if float(np.abs(x).max()) > reach * (1 + 2 * u + 2 * w) + tiny:
            return f"sparse: |x| reaches {np.abs(x).max()} > {NORMAL_LIMIT} std"
        canon = x.transpose(plan.perm).reshape(plan.canonical_shape)
        zeros = (canon == 0).sum(axis=0)
        if bool((zeros < plan.zeros_per_column).any()):
            return f"sparse: a column has {zeros.min()} < {plan.zeros_per_column} zeros"
        return None
    return f"no bounds known for {type(plan).__name__}"


def outcome_problem(backend: str, case: Case, dtype: str, shape: tuple[int, ...]) -> str | None:
    """Run one (backend, case, dtype, shape) and say what is wrong with the outcome, or None."""
    where = f"{backend} {case} {dtype} {shape}"
    numel = math.prod(shape)
    try:
        plan: Plan | None = initspec.parse(case.spec).plan(shape, LAYOUT, CONTEXT)
    except InitSpecError:
        plan = None  # e.g. eye on a 1-D shape: every backend must refuse it too
    must_fail = plan is None or (numel > 0 and dtype in case.fails)
    may_fail = must_fail or (backend, dtype) in UNSUPPORTED or dtype in case.fails
    try:
        x, got_dtype = BACKENDS[backend](case.spec, shape, dtype)
    except InitSpecError as exc:
        if not may_fail:
            return f"{where}: unexpected {type(exc).__name__}: {exc}"
        if plan is not None and dtype not in str(exc):
            return f"{where}: the error does not name the dtype: {exc}"
        return None
    except Exception as exc:  # noqa: BLE001 - any other type is the bug being looked for
        return f"{where}: {type(exc).__name__} (not an InitSpecError): {exc}"
    if must_fail:
        return f"{where}: expected an InitSpecError, got values up to {np.abs(x).max(initial=0)}"
    assert plan is not None
    if x.shape != shape or got_dtype != dtype:
        return f"{where}: got shape {x.shape} dtype {got_dtype}"
    if not bool(np.isfinite(x).all()):
        return f"{where}: non-finite values {x[~np.isfinite(x)][:4]}"
    problem = bounds_problem(plan, x, dtype) if numel else None
    return f"{where}: {problem}" if problem else None


# JAX compiles one program per primitive (truncated normal: per branch), shape and dtype,
# ~0.4 s of CPU each: the full 5 x 4 matrix is ~150 programs, a minute. JAX runs a design
# instead in which every shape and every dtype occurs, each with every case (~35 programs).
JAX_SHAPES: dict[str, tuple[tuple[int, ...], ...]] = {
    "float16": ((0, 5), (1,)),
    "bfloat16": ((1, 1),),
    "float32": ((1, 100000),),
    "float64": ((),),
}


def test_jax_design_covers_every_shape() -> None:
    assert {s for shapes in JAX_SHAPES.values() for s in shapes} == set(EDGE_SHAPES)
    assert set(JAX_SHAPES) == set(DTYPES)


def numpy_sparse_repeat(backend: str, case: Case, dtype: str, shape: tuple[int, ...]) -> bool:
    """NumPy's sparse sampler zeroes each column in a Python loop (1e5 columns: ~1 s); it
    draws in float64 whatever the dtype, which only changes the final cast, so the wide shape
    runs in float32 alone (the other dtypes still run every other shape)."""
    return (
        backend == "numpy"
        and case.kind == "sparse"
        and shape == (1, 100000)
        and (dtype != "float32")
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_edge_shapes_error_or_finite_in_bounds(backend: str, dtype: str) -> None:
    shapes = JAX_SHAPES[dtype] if backend == "jax" else EDGE_SHAPES
    problems = [
        p
        for case in CASES
        for shape in shapes
        if not numpy_sparse_repeat(backend, case, dtype, shape)
        and (p := outcome_problem(backend, case, dtype, shape)) is not None
    ]
    assert not problems, "\n".join(problems)


def refused(backend: str, spec: Any, shape: tuple[int, ...], dtype: str) -> bool:
    try:
        BACKENDS[backend](spec, shape, dtype)
    except InitSpecError:
        return True
    return False


def test_empty_tensors_are_refused_alike() -> None:
    """An empty tensor: refusing it or not is the backends' choice, but one choice for all
    (numeric.py: "so they all refuse and clip the same way")."""
    shape = (0, 5)
    differ = []
    for case in CASES:
        for dtype in sorted(case.fails):
            backends = [b for b in sorted(BACKENDS) if (b, dtype) not in UNSUPPORTED]
            outcome = {b: refused(b, case.spec, shape, dtype) for b in backends}
            if len(set(outcome.values())) > 1:
                differ.append(f"{case} {dtype}: refused {outcome}")
    assert not differ, "\n".join(differ)


def test_the_sweep_can_fail() -> None:
    """The checks catch what they are for: an inf, a value past a bound, a silent success."""
    plan = UniformPlan((3,), -1.0, 1.0)
    assert bounds_problem(plan, np.array([-1.0, 0.0, 1.0]), "float32")  # high is excluded
    assert bounds_problem(NormalPlan((2,), 0.0, 1e-4), np.array([0.0, 0.2]), "float32")
    assert bounds_problem(ConstantPlan((1,), 0.5), np.array([0.25]), "float16")
    assert (
        bounds_problem(
            TruncatedNormalPlan((1,), 0.0, 1.0, 0.0, 1.0), np.array([-0.0625]), "float16"
        )
        is not None
    )

    def overflowing(spec: Any, shape: tuple[int, ...], dtype: str) -> tuple[np.ndarray, str]:
        return np.full(shape, np.inf), dtype

    saved = BACKENDS["numpy"]
    BACKENDS["numpy"] = overflowing
    try:
        assert "expected an InitSpecError" in str(
            outcome_problem("numpy", Case("constant", {"value": 1e6}, F16), "float16", (2,))
        )
        assert "non-finite" in str(outcome_problem("numpy", Case("zeros"), "float32", (2,)))
    finally:
        BACKENDS["numpy"] = saved


# Fans near 1e9: plans only ---------------------------------------------------------------

HUGE = [
    ((31623, 31623), "torch", (31623, 31623)),  # 1e9 elements
    ((1, 10**9), "torch", (10**9, 1)),
    ((10**9, 1), "torch", (1, 10**9)),
    ((8, 31623, 31623), "torch", (31623 * 31623, 8 * 31623)),  # fan_in 1.00001e9
    ((31623, 31623, 8), "flax", (31623 * 31623, 8 * 31623)),  # (k, in, out)
    ((10**9, 10**9), "torch", (10**9, 10**9)),  # 1e18 elements
]

# The std each fan-based kind's defaults declare, from (fan_in, fan_out): torch's and jax's
# formulas (TN_2: std of N(0, 1) truncated to +-2, by which the 2-sigma kinds divide).
TN_2 = 0.87962566103423978
STD_OF: dict[str, Callable[[int, int], float]] = {
    "variance_scaling": lambda fi, fo: math.sqrt(1.0 / fi),
    "fan_truncated_normal": lambda fi, fo: TN_2 * math.sqrt(1.0 / fi),
    "glorot_uniform": lambda fi, fo: math.sqrt(2.0 / (fi + fo)),
    "glorot_normal": lambda fi, fo: math.sqrt(2.0 / (fi + fo)),
    "he_uniform": lambda fi, fo: math.sqrt(2.0 / fi),
    "he_normal": lambda fi, fo: math.sqrt(2.0 / fi),
    "lecun_uniform": lambda fi, fo: math.sqrt(1.0 / fi),
    "lecun_normal": lambda fi, fo: math.sqrt(1.0 / fi),
    "xavier_uniform": lambda fi, fo: math.sqrt(2.0 / (fi + fo)),
    "xavier_normal": lambda fi, fo: math.sqrt(2.0 / (fi + fo)),
    # leaky_relu with a=0: gain sqrt(2)
    "kaiming_uniform": lambda fi, fo: math.sqrt(2.0 / fi),
    "kaiming_normal": lambda fi, fo: math.sqrt(2.0 / fi),
    # bound 1 / sqrt(fan_in), std bound / sqrt(3)
    "torch_linear_weight": lambda fi, fo: 1.0 / math.sqrt(3.0 * fi),
    "orthogonal": lambda fi, fo: math.sqrt(1.0 / max(fi, fo)),
}
HUGE_CONTEXT = PlanContext(weight_fans=(10**9, 10**9), hidden_size=10**9)


def test_fans_near_1e9_plan_only() -> None:
    planned = 0
    for shape, layout, want_fans in HUGE:
        assert initspec.fans(shape, layout) == want_fans
        for kind, cls in SPEC_CLASSES.items():
            try:
                plan = cls().plan(shape, layout, HUGE_CONTEXT)
            except InitSpecError:
                continue  # a structural kind and the wrong number of dims
            planned += 1
            where = f"{kind} {shape} {layout}"
            assert math.isfinite(plan.mean) and math.isfinite(plan.var), where
            if kind in STD_OF:
                assert plan.fans == want_fans, where
                # float64 rounding of a few operations: 1e-12 relative
                assert plan.std == pytest.approx(STD_OF[kind](*want_fans), rel=1e-12), where
                assert f"fan_in={want_fans[0]}" in plan.describe(), where
            for dtype in DTYPES:
                # a std of ~3e-5 is small but finite in every dtype: nothing is refused
                initspec.numeric.check_fits(plan, dtype)
    assert planned >= 80


@pytest.mark.parametrize("kind", ["kaiming_normal", "lecun_normal", "orthogonal", "xavier_uniform"])
def test_fans_near_1e9_through_the_adapters_without_memory(kind: str) -> None:
    shape = (8, 31623, 31623)
    spec = {"kind": kind}
    meta = torch.empty(shape, dtype=torch.float16, device="meta")
    plan = initspec_torch.tensor_init.plan_for(meta, spec, LAYOUT)  # with the dtype checks
    assert plan.fans == (31623 * 31623, 8 * 31623)
    assert initspec_torch.init_(meta, spec, LAYOUT, seed=SEED) is meta  # validated, not drawn
    init = initspec_jax.initializer(spec, LAYOUT)
    assert init.plan(shape) == plan
    out = jax.eval_shape(lambda key: init(key, shape, jnp.bfloat16), jax.random.key(SEED))
    assert out.shape == shape and out.dtype == jnp.bfloat16


# Truncated normal: tiny std, bounds far in the tail --------------------------------------

# (mean, std, low, high), absolute bounds
TAILS = [
    (0.0, 1e-4, 5e-4, 6e-4),  # [5, 6] sigma
    (0.0, 1e-8, 1e-7, 1.2e-7),  # [10, 12] sigma
    (0.0, 1e-8, -2.0, -1e-7),  # (-2e8, -10] sigma: the left tail, one side effectively open
    (0.0, 1e-4, -2.0, 2.0),  # torch's default bounds: +-20000 sigma
    (0.0, 1e-8, -2.0, 2.0),  # +-2e8 sigma
    (3.0, 1e-8, 3.0 + 4e-8, 3.0 + 5e-8),  # [4, 5] sigma away from a large mean (float64 only)
]
N_MOMENTS = 200_000
Z = 5.0  # tolerance in standard errors


def moment_problems(x: np.ndarray, plan: TruncatedNormalPlan, ref: Any) -> list[str]:
    """Bounds, then mean and variance within Z standard errors of the exact moments.

    Standard errors at n draws: SE(mean) = sd / sqrt(n); SE(sample variance) =
    sd**2 * sqrt((kurtosis - 1) / n), from Var(s**2) = (mu4 - sd**4) / n for large n, with
    kurtosis = mu4 / sd**4 of the truncated normal (scipy's excess kurtosis + 3). The
    target's rounding (relative 2**-24 in float32) moves them by far less than one SE.
    """
    n = x.size
    mean, sd = float(ref.mean()), float(ref.std())
    kurtosis = float(ref.stats(moments="k")) + 3.0
    out = []
    if not (x.min() >= plan.low and x.max() <= plan.high):
        out.append(f"outside [{plan.low}, {plan.high}]: [{x.min()}, {x.max()}]")
    se_mean = sd / math.sqrt(n)
    if abs(x.mean() - mean) > Z * se_mean:
        out.append(f"mean {x.mean()} vs {mean}: {abs(x.mean() - mean) / se_mean:.1f} SE")
    se_var = sd**2 * math.sqrt((kurtosis - 1.0) / n)
    if abs(x.var() - sd**2) > Z * se_var:
        out.append(f"var {x.var()} vs {sd**2}: {abs(x.var() - sd**2) / se_var:.1f} SE")
    if plan.alpha < -7 and plan.beta > 7:  # a normal in effect: no 1000-sigma outliers
        # P(|z| > 7) = 2.6e-12 per draw: none in 2e5 but by a bug
        far = float(np.abs(x - plan.loc).max()) / plan.scale
        if far > 7:
            out.append(f"outlier at {far:.0f} sigma")
    return out


# float32's spacing at 3.0 (2.4e-7) exceeds the interval 3 + [4e-8, 5e-8]: float64 only
TAIL_PARAMS = [
    pytest.param(tail, backend, dtype, id=f"{tail[1]:g}[{tail[2]:g},{tail[3]:g}]-{backend}-{dtype}")
    for tail in TAILS
    for backend in sorted(BACKENDS)
    for dtype in ("float32", "float64")
    if tail[0] == 0.0 or dtype == "float64"
]


@pytest.mark.parametrize(("tail", "backend", "dtype"), TAIL_PARAMS)
def test_tiny_std_truncated_normal_tail(
    tail: tuple[float, float, float, float], backend: str, dtype: str
) -> None:
    mean, std, low, high = tail
    spec = {"kind": "truncated_normal", "mean": mean, "std": std, "low": low, "high": high}
    plan = initspec.parse(spec).plan((N_MOMENTS,))
    assert isinstance(plan, TruncatedNormalPlan)
    ref = stats.truncnorm(plan.alpha, plan.beta, loc=mean, scale=std)
    # the plan's own moments agree with scipy's (both accurate to ~1e-9 in these tails)
    assert plan.mean == pytest.approx(float(ref.mean()), rel=1e-6, abs=1e-6 * std)
    assert plan.std == pytest.approx(float(ref.std()), rel=1e-6)
    x, got = BACKENDS[backend](spec, (N_MOMENTS,), dtype)
    assert got == dtype
    problems = moment_problems(x, plan, ref)
    assert not problems, f"{backend} {dtype} {spec}: " + "; ".join(problems)


def test_tail_moment_check_has_power() -> None:
    """A 2% error in std (4% in variance) is caught at this sample size for every tail."""
    rng = np.random.default_rng(SEED)
    for mean, std, low, high in TAILS:
        plan = TruncatedNormalPlan((N_MOMENTS,), mean, std, low, high)
        ref = stats.truncnorm(plan.alpha, plan.beta, loc=mean, scale=std)
        z = ref.rvs(size=N_MOMENTS, random_state=rng)
        assert not moment_problems(z, plan, ref), (mean, std, low, high)
        centre = float(ref.mean())
        wide = centre + (z - centre) * 1.02  # may also step past a bound: reported apart
        assert any("var" in p for p in moment_problems(wide, plan, ref)), (mean, std, low, high)


# What the sweep found --------------------------------------------------------------------


def _uniform_range_beyond_float64(backend: str, dtype: str) -> Any:
    # Specs bound their numbers to |x| <= 1e150 (initspec.specs.MAX_MAGNITUDE), so such a
    # range is refused when the spec is parsed, on every backend.
    return pytest.param(backend, dtype, id=f"{backend}-{dtype}")


@pytest.mark.parametrize(
    ("backend", "dtype"),
    [_uniform_range_beyond_float64(b, d) for b in sorted(BACKENDS) for d in DTYPES],
)
def test_uniform_whose_range_overflows_float64(backend: str, dtype: str) -> None:
    """U[-1.7e308, 1.7e308): each bound is a float64, ``high - low`` is not. Below float64
    the values cannot fit: an error. In float64: an error, or a real uniform (half of the
    draws below 0, within 5 binomial standard errors: 5 * 0.5 / sqrt(n))."""
    spec = {"kind": "uniform", "low": -1.7e308, "high": 1.7e308}
    n = 4000
    try:
        x, _ = BACKENDS[backend](spec, (n,), dtype)
    except InitSpecError:
        return
    assert dtype == "float64", f"{dtype} cannot hold 1.7e308, yet values came back"
    assert bool(np.isfinite(x).all()) and x.min() >= -1.7e308 and x.max() < 1.7e308
    below = float((x < 0).mean())
    assert abs(below - 0.5) <= Z * 0.5 / math.sqrt(n), f"fraction below 0: {below}"


@pytest.mark.parametrize("kind", ["kaiming_normal", "kaiming_uniform"])
def test_kaiming_with_huge_negative_slope(kind: str) -> None:
    try:
        plan = initspec.parse({"kind": kind, "a": 1e200}).plan((4, 3))
    except InitSpecError:  # refused at parse time: |a| <= 1e150 keeps a**2 finite
        return
    # gain sqrt(2 / (1 + a**2)) = sqrt(2) / 1e200 to float64 precision; fan_in 3
    assert plan.std == pytest.approx(math.sqrt(2.0) / 1e200 / math.sqrt(3.0), rel=1e-12)


# Plans with a huge scale: 1e150 is the largest number a spec accepts (its square, the
# variance, is still a float64); 1e200 is refused when the spec is parsed.
TN_1SIGMA_STD = float(stats.truncnorm(-1.0, 1.0).std())
BIG_SCALE = [
    entry
    for m in (1e150, 1e200)
    for entry in (
        ({"kind": "normal", "std": m}, m),
        ({"kind": "uniform", "low": -m, "high": m}, 2 * m / math.sqrt(12.0)),
        ({"kind": "orthogonal", "gain": m}, m * math.sqrt(4 / 16)),  # (4, 4): var g^2/4
        ({"kind": "eye", "gain": m}, m * math.sqrt(4 / 16 - 1 / 16)),
        ({"kind": "sparse", "sparsity": 0.5, "std": m}, m * math.sqrt(2 / 4)),
        ({"kind": "truncated_normal", "std": m, "low": -m, "high": m}, m * TN_1SIGMA_STD),
    )
]


@pytest.mark.parametrize(
    ("spec", "std"), BIG_SCALE, ids=[f"{s['kind']}-{std:.0e}" for s, std in BIG_SCALE]
)
def test_plan_std_of_a_huge_scale_is_a_number(spec: dict[str, Any], std: float) -> None:
    try:
        plan = initspec.parse(spec).plan((4, 4))
    except InitSpecError:  # a clear refusal, allowed beyond the largest accepted number
        assert std > 1e150
        return
    assert plan.std == pytest.approx(std, rel=1e-12)
    assert math.isfinite(plan.var) and isinstance(plan.describe(), str)


# A rule's gain and depth scaling multiply a plan after its spec was validated: a spec at
# the largest accepted magnitude (1e150) times 1e100 is a plan of scale 1e250.
BIG_TN = {"kind": "truncated_normal", "std": 1e150, "low": -1e150, "high": 1e150}
SCALING_RULES = {
    "gain": {"match": {"role": "kernel"}, "init": BIG_TN, "gain": 1e100},
    "depth_scale": {
        "match": {"role": "kernel"},
        "init": BIG_TN,
        "depth_scale": {"factor": 1e-200, "n_layers": 1},  # times 1 / sqrt(1e-200)
    },
}


def scaled_policy(how: str) -> dict[str, Any]:
    bias = {"match": {"role": "bias"}, "init": {"kind": "zeros"}}
    return {"initspec": 1, "rules": [SCALING_RULES[how], bias]}


@pytest.mark.parametrize("how", sorted(SCALING_RULES))
@pytest.mark.parametrize("target", ["torch-float32", "torch-float64", "jax-float32"])
def test_rule_scaling_past_the_spec_limit(target: str, how: str) -> None:
    """Either a clear InitSpecError, or finite values and a report that prints."""
    policy = scaled_policy(how)
    backend, dtype = target.split("-")
    try:
        if backend == "torch":
            layer = torch.nn.Linear(3, 4).to(getattr(torch, dtype))
            report = initspec_torch.apply(policy, layer, seed=SEED)
            values = layer.weight.detach().double().numpy()
        else:
            dense = flax_dense()
            variables = jax.eval_shape(dense.init, jax.random.key(0), jnp.zeros((1, 3)))
            new, report = initspec_jax.apply(policy, variables, seed=SEED, model=dense)
            values = np.asarray(new["params"]["kernel"], dtype=np.float64)
    except InitSpecError:
        return
    assert bool(np.isfinite(values).all()) and float(np.abs(values).max()) <= 1e250
    assert isinstance(report.table(), str) and isinstance(report.to_json(), str)


def flax_dense() -> Any:
    import flax.linen

    return flax.linen.Dense(4)


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_refusing_a_huge_truncated_normal_is_an_initspec_error(backend: str) -> None:
    """std 1e300: 10 std is far beyond float32, so float32 must refuse it, clearly."""
    spec = {"kind": "truncated_normal", "std": 1e300, "low": -1.7e308, "high": 1.7e308}
    with pytest.raises(InitSpecError, match="float32|must be <= 1e"):
        BACKENDS[backend](spec, (1, 1), "float32")


def test_round_to_equals_numpys_cast_for_every_float_dtype() -> None:
    """``initspec.numeric.round_to`` (float32 through the C cast, not NumPy) rounds as NumPy's
    ``astype``: random magnitudes from subnormal to overflow, ties, signed zeros, infinities."""
    from initspec import numeric

    rng = np.random.default_rng(0)
    values = list(rng.standard_normal(4000) * 10.0 ** rng.integers(-50, 42, 4000))
    values += [3.4028235677973366e38, 3.4028235e38 * 1.0000001, -1e39, 65520.0, 1e-46]
    values += [7e-46, 2.1e-45, 1 + 2**-24, 1 + 3 * 2**-24, 0.0, -0.0, math.inf, -math.inf]
    for dtype in ("float16", "float32", "float64"):
        for v in values:
            with np.errstate(over="ignore"):
                want = float(np.array(v).astype(dtype))
            got = numeric.round_to(v, dtype)
            assert got == want and math.copysign(1, got) == math.copysign(1, want), (v, dtype)
