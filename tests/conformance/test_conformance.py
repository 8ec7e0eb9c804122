"""CI subset of the conformance matrix (`make conformance` runs all of it and writes
docs/conformance.md). Every cell is deterministic: fixed seeds, tolerances in harness.py."""

from __future__ import annotations

import numpy as np
import pytest

from conformance.harness import (
    DISTRIBUTION_SPECS,
    SHAPES,
    STRUCTURAL,
    Z,
    backends,
    matrix,
    run_cell,
)

BACKENDS = backends()
CI_DTYPES = ("float32",)
LOW_PRECISION_SPECS = [{"kind": "truncated_normal", "std": 0.02, "low": -2.0, "high": 2.0, "bounds": "std"}, {"kind": "kaiming_uniform"}, {"kind": "normal", "mean": 0.1, "std": 0.02}]


def _cells():
    for backend, (_, dtypes) in BACKENDS.items():
        for spec, key in matrix(full=False):
            for dtype in CI_DTYPES:
                yield backend, spec, key, dtype
        for spec in LOW_PRECISION_SPECS:
            for dtype in dtypes:
                if dtype != "float32":
                    yield backend, spec, "linear", dtype
        for spec, key in STRUCTURAL[3:5]:
            for dtype in dtypes:
                if dtype in ("bfloat16", "float64"):
                    yield backend, spec, key, dtype


CELLS = list(_cells())


@pytest.mark.parametrize("backend,spec,key,dtype", CELLS, ids=[f"{b}-{s['kind']}-{k}-{d}-{i}" for i, (b, s, k, d) in enumerate(CELLS)])
def test_cell(backend, spec, key, dtype) -> None:
    sampler, _ = BACKENDS[backend]
    shape, layout = SHAPES[key]
    cell = run_cell(spec, backend, sampler, shape, layout, dtype, seed=11)
    assert cell.ok, cell.row()


def test_every_catalog_kind_is_in_the_matrix() -> None:
    import initspec

    covered = {s["kind"] for s in DISTRIBUTION_SPECS} | {s["kind"] for s, _ in STRUCTURAL}
    assert covered == set(initspec.SPEC_CLASSES)


class _Off:
    """A backend whose std is 2% too large, or whose mean is 0.05 sigma off."""

    def __init__(self, sampler, std_factor: float = 1.0, mean_shift_sigmas: float = 0.0) -> None:
        self.sampler, self.f, self.shift = sampler, std_factor, mean_shift_sigmas

    def __call__(self, plan, dtype, seed):
        x = self.sampler(plan.scaled(self.f) if self.f != 1.0 else plan, dtype, seed)
        return x + self.shift * plan.std


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("spec", [{"kind": "uniform", "low": -1.0, "high": 1.0}, {"kind": "normal", "std": 0.5}, {"kind": "he_normal"}], ids=["uniform", "normal", "truncated_normal"])
def test_power_two_percent_std_and_small_mean_shift_are_caught(backend, spec) -> None:
    sampler, _ = BACKENDS[backend]
    shape, layout = SHAPES["linear"]
    assert run_cell(spec, backend, sampler, shape, layout, "float32", seed=3).ok
    wrong_std = run_cell(spec, backend, _Off(sampler, std_factor=1.02), shape, layout, "float32", seed=3)
    assert not wrong_std.ok and abs(wrong_std.z_var) > Z, wrong_std.row()
    shifted = run_cell(spec, backend, _Off(sampler, mean_shift_sigmas=0.05), shape, layout, "float32", seed=3)
    assert not shifted.ok and abs(shifted.z_mean) > Z, shifted.row()


def test_bf16_rounded_cdf_accepts_a_correct_bf16_sample_and_rejects_a_wrong_one() -> None:
    import initspec
    from conformance.harness import _numpy, ks_pvalue

    plan = initspec.parse({"kind": "normal", "std": 0.02}).plan((400, 500))
    x = _numpy(plan, "float32", 5)
    import ml_dtypes

    xb = x.astype(ml_dtypes.bfloat16).astype(np.float64)
    assert ks_pvalue(xb, plan, "bfloat16") > 1e-4
    assert ks_pvalue((x * 1.02).astype(ml_dtypes.bfloat16).astype(np.float64), plan, "bfloat16") < 1e-4
