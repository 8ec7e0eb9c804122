"""The compiled kernel (initspec/_stream.c) equals NumPy's reference code of stream 1.

- uniform: bit-identical, every layout, shard (steps included), sub-range and thread split;
- normal and truncated normal (centre, mirrored, far tails, tiny std): float64 values
  identical on at least 99.99% of elements and within 1 ulp (the guarantee between
  backends, docs/portable-random.md; the measured fraction is printed), float32 the float64
  value rounded once;
- what the kernel cannot do (constants, structure, float16) falls back, and an install
  without it runs the NumPy code with the same values.
"""

from __future__ import annotations

import shutil
import sysconfig
from typing import Any

import numpy as np
import pytest

import initspec
from initspec import parse, portable, stream
from initspec.errors import BackendError

needs_kernel = pytest.mark.skipif(not portable.COMPILED, reason="the kernel is not built")


def test_the_kernel_is_built_where_a_c_compiler_exists() -> None:
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None:
        pytest.skip(f"no C compiler ({cc}) here: initspec runs the stream in NumPy")
    assert portable.COMPILED, "pip install did not build initspec._stream (see pyproject.toml)"


def _plan(spec: Any, shape: tuple[int, ...], layout: str = "torch") -> Any:
    return parse(spec).plan(shape, layout)


def _both(plan: Any, perm: tuple[int, ...], index: Any = None) -> tuple[np.ndarray, np.ndarray]:
    key = portable.param_key(5, "layer.weight")
    fast = portable.sample_plan_portable64(plan, key, perm, index, compiled=True)
    slow = portable.sample_plan_portable64(plan, key, perm, index, compiled=False)
    return fast, slow


@needs_kernel
def test_uniform_is_bit_identical_on_random_layouts_shards_and_ranges() -> None:
    rng = np.random.default_rng(1)
    key = portable.param_key(3, "x")
    for _ in range(200):
        nd = int(rng.integers(0, 5))
        shape = tuple(int(n) for n in rng.integers(1, 9, size=nd))
        perm = tuple(int(a) for a in rng.permutation(nd))
        index = []
        for n in shape:
            a = int(rng.integers(0, n))
            index.append(slice(a, int(rng.integers(a + 1, n + 1)), int(rng.integers(1, 4))))
        blk = portable.block(shape, perm, tuple(index))
        want = portable.uniform01(
            portable.bits64(key, portable.counters_for(shape, perm, tuple(index)).ravel())
        )
        start = int(rng.integers(0, blk.numel + 1))
        stop = int(rng.integers(start, blk.numel + 1))
        out = np.empty(stop - start)
        plan = _plan({"kind": "uniform", "low": 0.0, "high": 1.0}, (1,))
        assert portable.fill_compiled(out, plan, key, blk, start)
        np.testing.assert_array_equal(out, want[start:stop], err_msg=f"{shape} {perm} {index}")


@needs_kernel
@pytest.mark.parametrize(
    "spec",
    [
        {"kind": "uniform", "low": -0.37, "high": 1.91},
        {"kind": "uniform", "low": 3.0, "high": 1e6},
        {"kind": "kaiming_uniform", "a": 5**0.5},
    ],
)
@pytest.mark.parametrize(
    "shape,layout", [((96, 40, 3, 3), "torch"), ((3, 3, 40, 96), "flax"), ((4097, 3), "torch")]
)
def test_uniform_plans_equal_the_reference(spec, shape, layout) -> None:
    plan = _plan(spec, shape, layout)
    fast, slow = _both(plan, portable.layout_perm(shape, layout))
    np.testing.assert_array_equal(fast, slow)


NORMALS = [
    {"kind": "normal", "mean": 0.1, "std": 0.02},
    {"kind": "trunc_normal_", "std": 0.02},  # timm's defaults: [-2, 2] absolute, i.e. +-100 std
    {"kind": "truncated_normal", "std": 1.0, "low": -2.0, "high": 2.0},
    {"kind": "truncated_normal", "std": 1.0, "low": 1.0, "high": 3.0},  # mirrored (a > 0)
    {"kind": "truncated_normal", "std": 1.0, "low": 5.0, "high": 6.0},  # far upper tail
    {"kind": "truncated_normal", "std": 1.0, "low": -7.0, "high": -6.5},  # far lower tail
    {"kind": "truncated_normal", "std": 1e-8, "low": -2e-8, "high": 1e-8},
]


@needs_kernel
@pytest.mark.parametrize("spec", NORMALS, ids=lambda s: f"{s['kind']}{s.get('low', '')}")
def test_normal_and_truncated_normal_equal_the_reference(spec, capsys) -> None:
    shape = (512, 256)  # 2**17 elements: 99.99% allows 13 differences
    plan = _plan(spec, shape)
    fast, slow = _both(plan, (0, 1))
    same = float(np.mean(fast == slow))
    ulps = np.abs(fast - slow) / np.spacing(np.abs(slow))
    with capsys.disabled():
        print(f"\n  kernel vs NumPy {plan}: identical {same:.6%}, max {ulps.max():g} ulp")
    assert same >= 0.9999
    assert ulps.max() <= 1
    if isinstance(plan, initspec.plans.TruncatedNormalPlan):
        assert fast.min() >= plan.low and fast.max() <= plan.high


@needs_kernel
def test_ndtri_equals_the_reference_at_branch_edges_and_tails() -> None:
    e = stream.EXPM2
    p = np.array(
        [1e-300, 2.5e-16, np.exp(-32.0), np.nextafter(np.exp(-32.0), 1), e, np.nextafter(e, 1),
         0.25, 0.5, 0.75, 1 - e, np.nextafter(1 - e, 0), 1 - 2**-52]
    )  # fmt: skip
    assert [portable._kernel.ndtri(float(x)) for x in p] == portable.ndtri(p).tolist()  # type: ignore[union-attr]
    with pytest.raises(ValueError):
        portable._kernel.ndtri(0.0)  # type: ignore[union-attr]


@needs_kernel
def test_float32_is_the_float64_value_rounded_once_and_threads_change_nothing() -> None:
    key = portable.param_key(0, "w")
    plan = _plan({"kind": "normal", "std": 0.7}, (700, 1000))
    blk = portable.block(plan.shape, (0, 1))
    x64 = np.empty(plan.shape)
    assert portable.fill_compiled(x64, plan, key, blk)
    x32 = np.empty(plan.shape, dtype=np.float32)
    assert portable.fill_compiled(x32, plan, key, blk, threads=4)
    np.testing.assert_array_equal(x32, x64.astype(np.float32))
    split = np.empty(plan.shape)
    assert portable.fill_compiled(split, plan, key, blk, threads=3)
    np.testing.assert_array_equal(split, x64)


def test_what_the_kernel_cannot_do_falls_back(monkeypatch) -> None:
    key = portable.param_key(0, "w")
    blk = portable.block((8, 8), (0, 1))
    normal = _plan({"kind": "normal"}, (8, 8))
    assert not portable.fill_compiled(np.empty((8, 8), np.float16), normal, key, blk)
    assert not portable.fill_compiled(np.empty((8, 8)), _plan({"kind": "zeros"}, (8, 8)), key, blk)
    assert not portable.fill_compiled(np.empty((8, 8)).T, normal, key, blk)  # not C-contiguous
    assert not portable.fill_compiled(np.empty(8), normal, key, blk, start=60)  # past the end
    # Without the kernel (no compiler at install): the NumPy code, the same values.
    with_kernel = initspec.sample({"kind": "normal"}, (64, 64), seed=1, rng="portable")
    monkeypatch.setattr(portable, "_kernel", None)
    assert portable.kernel_args(normal) is None
    np.testing.assert_array_equal(
        initspec.sample({"kind": "normal"}, (64, 64), seed=1, rng="portable"), with_kernel
    )
    with pytest.raises(BackendError, match="not built"):
        portable.sample_plan_portable64(normal, key, (0, 1), compiled=True)


@needs_kernel
def test_the_kernel_refuses_bad_arguments() -> None:
    k = portable._kernel
    assert k is not None
    good = (0, 1, 2, 0, (4,), (1,), 0, 4, (0.0, 1.0))
    k.fill(np.empty(4), *good)
    for out, args, err in [
        (np.empty(4, np.int64), good, TypeError),
        (np.empty(3), good, ValueError),  # 4 elements asked
        (np.empty(4), (7, *good[1:]), ValueError),  # unknown kind
        (np.empty(4), (*good[:6], 2, 1, good[8]), ValueError),  # start > stop
        (np.empty(4), (*good[:8], (0.0,)), ValueError),  # params
        (np.empty(4), (0, 2**32, *good[2:]), ValueError),  # key word
        (np.empty(4), (*good[:4], (4, 1), (1,), *good[6:]), ValueError),  # ndim mismatch
    ]:
        with pytest.raises(err):
            k.fill(out, *args)
