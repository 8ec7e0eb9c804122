"""Conformance: every spec on every backend against its plan's exact distribution.

One function per check; ``run_cell`` applies them to one (spec, backend, shape, layout,
dtype) and returns a ``Cell`` row for the table. Backends sample *plans*, so this tests each
adapter's primitives against the same exact numbers, never one backend against another.

Tolerances (stated once): |z| <= Z = 5 for the mean (standard error sigma / sqrt(n)) and for
the variance (standard error sigma^2 sqrt((kurtosis - 1) / n)), and a one-sample KS p-value
above 1e-4 (PyTorch's own threshold), computed in float64 on the cast values. For float16 and
bfloat16 the KS test compares with the CDF of the *rounded* distribution, P(round(X) <= v) =
F(midpoint of v and the next representable value above), and its p-value treats that
distribution as continuous, which is conservative for a discrete one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats

import initspec
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

Z = 5.0
KS_P = 1e-4

Sampler = Callable[[Plan, str, int], np.ndarray]  # (plan, dtype name, seed) -> float64 values


def _numpy(plan: Plan, dtype: str, seed: int) -> np.ndarray:
    from initspec.numpy_backend import DTYPES, cast_once, sample_plan64

    x = sample_plan64(plan, np.random.default_rng(seed))
    return cast_once(x, plan, DTYPES[dtype]).astype(np.float64)


def _torch(device: str) -> Sampler:
    def sample(plan: Plan, dtype: str, seed: int) -> np.ndarray:
        import initspec_torch
        import torch

        t = torch.empty(plan.shape, dtype=getattr(torch, dtype), device=device)
        gen = torch.Generator(device=device).manual_seed(seed)
        initspec_torch.sampler.write_plan(t, plan, gen)
        return t.double().cpu().numpy()

    return sample


def _jax(plan: Plan, dtype: str, seed: int) -> np.ndarray:
    import initspec_jax
    import jax
    import jax.numpy as jnp

    x = initspec_jax.sample_plan(plan, jax.random.key(seed), getattr(jnp, dtype))
    return np.asarray(x.astype(jnp.float32) if dtype in ("bfloat16", "float16") else x, dtype=np.float64)


def backends() -> dict[str, tuple[Sampler, tuple[str, ...]]]:
    """Available backends and the dtypes each supports here."""
    out: dict[str, tuple[Sampler, tuple[str, ...]]] = {"numpy": (_numpy, ("float16", "float32", "float64"))}
    try:
        import torch

        out["torch-cpu"] = (_torch("cpu"), ("bfloat16", "float16", "float32", "float64"))
        if torch.cuda.is_available():
            out["torch-cuda"] = (_torch("cuda"), ("bfloat16", "float16", "float32", "float64"))
    except ImportError:
        pass
    try:
        import jax

        dts = ("bfloat16", "float16", "float32") + (("float64",) if jax.config.jax_enable_x64 else ())
        out["jax-cpu"] = (_jax, dts)
    except ImportError:
        pass
    return out


def rounded_cdf(plan: Plan, dtype: str) -> Callable[[np.ndarray], np.ndarray]:
    """CDF of round_to_dtype(X): F at the midpoint between v and the next value above it."""
    cdf = plan.cdf  # type: ignore[union-attr]
    if dtype in ("float32", "float64"):
        return cdf
    if dtype == "float16":
        def up(v: np.ndarray) -> np.ndarray:
            h = v.astype(np.float16)
            return np.nextafter(h, np.float16(np.inf)).astype(np.float64)
    else:
        import ml_dtypes

        def up(v: np.ndarray) -> np.ndarray:
            b = v.astype(ml_dtypes.bfloat16)
            bits = b.view(np.uint16).astype(np.int32)
            nxt = np.where(b.astype(np.float32) >= 0, bits + 1, bits - 1)
            nxt = np.where(b.astype(np.float32) == 0, 1, nxt)  # +0 -> smallest positive
            return nxt.astype(np.uint16).view(ml_dtypes.bfloat16).astype(np.float64)

    def adjusted(v: np.ndarray) -> np.ndarray:
        v = np.asarray(v, dtype=np.float64)
        return np.asarray(cdf(0.5 * (v + up(v))))

    return adjusted


def round_to(value: float, dtype: str) -> float:
    if dtype == "bfloat16":
        import ml_dtypes

        return float(np.array(value).astype(ml_dtypes.bfloat16))
    return float(np.array(value).astype(dtype))


def ks_pvalue(x: np.ndarray, plan: Plan, dtype: str) -> float:
    if dtype in ("float32", "float64"):
        return float(stats.kstest(x, plan.cdf).pvalue)  # type: ignore[union-attr]
    cdf_at = rounded_cdf(plan, dtype)
    values, counts = np.unique(x, return_counts=True)
    ecdf = np.cumsum(counts) / x.size
    ecdf_before = ecdf - counts / x.size
    f = cdf_at(values)
    # P(round(X) < v) = F_adj(previous representable value); approximated by F at v's lower
    # midpoint, which is F_adj of the value below v.
    f_before = np.concatenate([[0.0], f[:-1]])
    d = max(np.max(np.abs(ecdf - f)), np.max(np.abs(ecdf_before - f_before)))
    return float(stats.kstwo.sf(d, x.size))


@dataclass
class Cell:
    spec: str
    backend: str
    dtype: str
    shape: tuple[int, ...]
    layout: str
    n: int
    z_mean: float
    z_var: float
    ks_p: float
    check: str
    ok: bool
    note: str = ""

    def row(self) -> str:
        def f(v: float) -> str:
            return "-" if math.isnan(v) else f"{v:+.2f}"

        p = "-" if math.isnan(self.ks_p) else f"{self.ks_p:.3g}"
        shape = "x".join(map(str, self.shape))
        return f"| {self.spec} | {self.backend} | {self.dtype} | {shape} {self.layout} | {self.n} | {f(self.z_mean)} | {f(self.z_var)} | {p} | {self.check} | {'ok' if self.ok else 'FAIL'} {self.note} |"


def moment_z(x: np.ndarray, plan: Plan) -> tuple[float, float]:
    n = x.size
    sd = math.sqrt(plan.var)
    z_mean = (x.mean() - plan.mean) / (sd / math.sqrt(n))
    z_var = (x.var() - plan.var) / (plan.var * math.sqrt((plan.kurtosis - 1.0) / n))
    return float(z_mean), float(z_var)


def check_distribution(x: np.ndarray, plan: Plan, dtype: str) -> tuple[float, float, float, bool, str]:
    z_mean, z_var = moment_z(x, plan)
    ks_p = ks_pvalue(x, plan, dtype)
    ok = abs(z_mean) <= Z and abs(z_var) <= Z and ks_p > KS_P
    note = ""
    if isinstance(plan, (UniformPlan, TruncatedNormalPlan)):
        inside = x.min() >= plan.low and x.max() <= plan.high
        ok = ok and bool(inside)
        note = "in bounds" if inside else "OUT OF BOUNDS"
    return z_mean, z_var, ks_p, ok, note


def check_structure(x: np.ndarray, plan: Plan, dtype: str) -> tuple[bool, str]:
    atol = {"float64": 1e-12, "float32": 1e-6, "float16": 2e-3, "bfloat16": 2e-2}[dtype]
    if isinstance(plan, ConstantPlan):
        return bool(np.all(x == round_to(plan.value, dtype))), "exact"
    if isinstance(plan, OrthogonalPlan):
        m = x.transpose(plan.perm).reshape(plan.rows, plan.cols)
        gram = m @ m.T if plan.rows <= plan.cols else m.T @ m
        err = np.abs(gram - plan.gain**2 * np.eye(min(plan.rows, plan.cols))).max()
        return bool(err <= atol * max(1.0, plan.gain**2) * (1 if dtype in ("float32", "float64") else 30)), f"|QQt-I| {err:.1e}"
    if isinstance(plan, IdentityPlan):
        return bool(np.array_equal(x, plan.gain * np.eye(*plan.shape))), "exact eye"
    if isinstance(plan, DiracPlan):
        w = x.transpose(plan.perm)
        center = w[(slice(None), slice(None)) + plan.center]
        rest = w.copy()
        rest[(slice(None), slice(None)) + plan.center] = 0
        if plan.matrix == "identity":
            expect = np.zeros(center.shape)
            opg = plan.out_per_group
            for g in range(plan.groups):
                for d in range(min(opg, center.shape[1])):
                    expect[g * opg + d, d] = plan.gain
            return bool(np.array_equal(center, expect) and not rest.any()), "exact dirac"
        gram = center.T @ center
        err = np.abs(gram - plan.gain**2 * np.eye(center.shape[1])).max()
        return bool(err <= atol * 30 and not rest.any()), f"delta |QtQ-I| {err:.1e}"
    if isinstance(plan, SparsePlan):
        m = x.transpose(plan.perm)
        zeros = (m == 0).sum(axis=0)
        return bool(np.all(zeros >= plan.zeros_per_column)), f"zeros/col >= {plan.zeros_per_column}"
    raise AssertionError(type(plan))


RANDOM = (UniformPlan, NormalPlan, TruncatedNormalPlan)


def run_cell(spec: dict, backend: str, sampler: Sampler, shape: tuple[int, ...], layout: str, dtype: str, seed: int = 0, ctx: initspec.PlanContext | None = None) -> Cell:
    parsed = initspec.parse(spec)
    plan = parsed.plan(shape, layout, ctx or initspec.PlanContext(weight_fans=(shape[-1], shape[0]), hidden_size=32))
    x = sampler(plan, dtype, seed)
    assert x.shape == tuple(shape), (x.shape, shape)
    label = parsed.kind_name() + ("" if parsed.kind_name() not in ("truncated_normal", "variance_scaling", "kaiming_normal") else str({k: v for k, v in spec.items() if k != "kind"}))
    if isinstance(plan, RANDOM):
        z_mean, z_var, ks_p, ok, note = check_distribution(x.ravel(), plan, dtype)
        return Cell(label, backend, dtype, shape, layout, x.size, z_mean, z_var, ks_p, "moments+KS", ok, note)
    ok, note = check_structure(x, plan, dtype)
    return Cell(label, backend, dtype, shape, layout, x.size, math.nan, math.nan, math.nan, "structure", ok, note)


# The matrix ------------------------------------------------------------------------------

SHAPES = {
    # (shape, layout): Linear/Dense, Conv2d in both layouts, ConvTranspose, Embedding
    "linear": ((256, 320), "torch"),
    "dense": ((320, 256), "flax"),
    "conv": ((64, 32, 3, 3), "torch"),
    "conv_flax": ((3, 3, 32, 64), "flax"),
    "conv_transpose": ((32, 64, 3, 3), "torch_transposed"),
    "embedding": ((800, 100), "embedding"),
    "bias": ((50000,), "torch"),
}

# Which configurations of each kind are checked is declared on its spec class
# (``conformance``, see ``initspec.facts.Example``): a new kind needs no edit here.
DISTRIBUTION_SPECS = [
    {"kind": kind, **ex.fields}
    for kind, cls in initspec.SPEC_CLASSES.items()
    for ex in cls.conformance
    if ex.on is None
]
FAN_FREE = {kind for kind, cls in initspec.SPEC_CLASSES.items() if not cls.fan_based}
STRUCTURAL = [
    ({"kind": kind, **ex.fields}, key)
    for kind, cls in initspec.SPEC_CLASSES.items()
    for ex in cls.conformance
    for key in ex.on or ()
]


def matrix(full: bool) -> list[tuple[dict, str]]:
    """(spec, shape key) pairs: every spec on its representative shapes."""
    cells: list[tuple[dict, str]] = []
    for spec in DISTRIBUTION_SPECS:
        keys = list(SHAPES) if full else ["linear", "conv_flax"]
        for key in keys:
            if key == "bias" and spec["kind"] not in FAN_FREE:
                continue
            cells.append((spec, key))
    cells += STRUCTURAL
    return cells
