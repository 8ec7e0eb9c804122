"""The portable stream on torch equals the NumPy reference (docs/portable-random.md, section 6).

- bits: Random123 known answers and the reference's words, counters above 2**32 included;
- uniform: bit-identical to NumPy in float32 and float64;
- normal, truncated normal: the measured fraction of identical elements (printed) is at least
  99.99% and every element within 1 ulp of the target dtype; float64 is measured as well;
- float16 / bfloat16: the float64 value rounded once (torch's own cast rounds twice);
- layouts, shards (``init_shard_``), chunking, non-contiguous tensors, ``apply``;
- bad input: each an ``InitSpecError`` that writes nothing.

Every test runs twice: torch CPU through the compiled kernel (``initspec/_stream.c``, where it
is built) and through the torch operations (the code a GPU runs), against NumPy's reference
code (``initspec.portable`` without the kernel).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import initspec_torch
import numpy as np
import pytest
import torch
from initspec_torch import portable
from torch import nn

import initspec
from initspec import portable as ref


@pytest.fixture(params=["kernel", "torch-ops"], autouse=True)
def torch_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Which code torch CPU runs: the compiled kernel, or the torch operations (as on CUDA)."""
    if request.param == "torch-ops":
        monkeypatch.setattr(ref, "_kernel", None)
    elif not ref.COMPILED:
        pytest.skip("the compiled kernel is not built in this install")
    return str(request.param)


@contextlib.contextmanager
def reference_code() -> Iterator[None]:
    """NumPy's reference code, not the compiled kernel, for the expected values."""
    saved = ref._kernel
    ref._kernel = None
    try:
        yield
    finally:
        ref._kernel = saved


# Random123 kat_vectors: (counter words, key words, expected words).
KAT = [
    ((0, 0), (0, 0), (0x6B200159, 0x99BA4EFE)),
    ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
    ((0x243F6A88, 0x85A308D3), (0x13198A2E, 0x03707344), (0xC4923A9C, 0x483DF7A0)),
]


@pytest.mark.parametrize("ctr,key,expected", KAT)
def test_threefry_known_answers(ctr, key, expected) -> None:
    x0 = torch.tensor([ctr[0]], dtype=torch.int64)
    x1 = torch.tensor([ctr[1]], dtype=torch.int64)
    y0, y1 = portable.threefry2x32_(key, x0, x1)
    assert (int(y0), int(y1)) == expected


def test_words_equal_the_reference_beyond_32_bit_counters() -> None:
    key = ref.param_key(7, "encoder.layers.0.fc1.weight")
    counters = np.concatenate(
        [np.arange(5000), (1 << 32) - 3 + np.arange(6), (5 << 40) + np.arange(5000) * 977]
    ).astype(np.int64)
    b0, b1 = portable.words(key, torch.from_numpy(counters))
    ours = (b0.numpy().astype(np.uint64) << np.uint64(32)) | b1.numpy().astype(np.uint64)
    np.testing.assert_array_equal(ours, ref.bits64(key, counters))


def test_ndtri_equals_the_reference_at_branch_edges_and_tails() -> None:
    # Central / tail threshold exp(-2) and 1 - exp(-2), the far-tail branch (t >= 8), and
    # the extreme stream values 2**-53 and 1 - 2**-53: the same operations in the same order
    # (log and sqrt through NumPy on CPU), so the same float64 values.
    p = np.array(
        [2.0**-53, 1e-300, 1e-20, 1.2e-14, 0.01, np.exp(-2), np.nextafter(np.exp(-2), 1)]
        + [0.25, 0.5, 0.75, 1 - np.exp(-2), 0.99, 1 - 2.0**-53]
    )
    np.testing.assert_array_equal(portable.ndtri(torch.from_numpy(p)).numpy(), ref.ndtri(p))


def test_sqrt_rn_is_correctly_rounded() -> None:
    # torch.sqrt on CPU is not (about 1% of float64 results are an ulp off numpy's IEEE sqrt).
    x = np.random.default_rng(0).uniform(4.0, 1500.0, 200_000)  # ndtri's -2 log y range
    np.testing.assert_array_equal(portable.sqrt_rn(torch.from_numpy(x.copy())).numpy(), np.sqrt(x))


def _torch(
    spec: Any, shape: tuple[int, ...], layout: str, dtype: torch.dtype, seed: int = 0
) -> torch.Tensor:
    t = torch.empty(shape, dtype=dtype)
    return initspec_torch.init_(t, spec, layout, seed=seed, path="w", rng="portable")


def _numpy(spec: Any, shape: tuple[int, ...], layout: str, dtype: str, seed: int = 0) -> np.ndarray:
    with reference_code():
        return initspec.sample(
            spec, shape, layout, seed=seed, dtype=dtype, path="w", rng="portable"
        )


SHAPES = [
    ((64, 32, 3, 3), "torch"),
    ((3, 3, 32, 64), "flax"),
    ((1000,), "torch"),
    ((5, 1, 7), "flax"),
]


UNIFORMS = [
    {"kind": "uniform", "low": -0.37, "high": 1.91},
    {"kind": "uniform", "low": 3.0, "high": 1e6},
]


@pytest.mark.parametrize("shape,layout", SHAPES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("spec", UNIFORMS + [{"kind": "torch_linear_weight"}])
def test_uniform_is_bit_identical_to_numpy(spec, shape, layout, dtype) -> None:
    if spec["kind"] == "torch_linear_weight" and len(shape) < 2:
        spec = {"kind": "torch_linear_bias"}
        ctx = initspec.PlanContext(weight_fans=(17, 4))
        ours = initspec_torch.init_(
            torch.empty(shape, dtype=getattr(torch, dtype)),
            spec,
            seed=3,
            path="w",
            context=ctx,
            rng="portable",
        )
        with reference_code():
            want = initspec.sample(
                spec, shape, seed=3, dtype=dtype, path="w", context=ctx, rng="portable"
            )
        np.testing.assert_array_equal(ours.numpy(), want)
        return
    ours = _torch(spec, shape, layout, getattr(torch, dtype), seed=3)
    np.testing.assert_array_equal(ours.numpy(), _numpy(spec, shape, layout, dtype, seed=3))


def _ulps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a - b| in units of the spacing of ``b``'s dtype at ``b``."""
    spacing = np.spacing(np.abs(b)).astype(np.float64)
    return np.abs(a.astype(np.float64) - b.astype(np.float64)) / spacing


NORMALS = [
    {"kind": "normal", "mean": 0.1, "std": 0.02},
    {"kind": "truncated_normal", "std": 1.0, "low": 1.0, "high": 3.0},  # mirrored (a > 0)
    {"kind": "truncated_normal", "std": 1.0, "low": -7.0, "high": -6.5},  # far lower tail
    {"kind": "trunc_normal_", "std": 0.02},
]


@pytest.mark.parametrize("spec", NORMALS, ids=lambda s: f"{s['kind']}-{s.get('low', '')}")
def test_normal_and_truncated_normal_match_numpy(spec, capsys) -> None:
    shape = (512, 256)  # 2**17 elements: 99.99% allows 13 differences
    for dtype in ("float32", "float64"):
        ours = _torch(spec, shape, "torch", getattr(torch, dtype)).numpy()
        want = _numpy(spec, shape, "torch", dtype)
        same = float(np.mean(ours == want))
        worst = float(_ulps(ours, want).max())
        with capsys.disabled():
            print(
                f"\n  torch CPU vs NumPy {spec['kind']} {dtype}: identical {same:.6%}, max {worst:g} ulp"
            )
        assert same >= 0.9999
        assert worst <= 1


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_16_bit_dtypes_are_the_float64_value_rounded_once(dtype) -> None:
    spec = {"kind": "normal", "std": 0.7}
    ours = _torch(spec, (256, 256), "torch", getattr(torch, dtype)).float().numpy()
    x = _numpy(spec, (256, 256), "torch", "float64")
    if dtype == "float16":
        want = x.astype(np.float16).astype(np.float32)  # NumPy rounds float64 -> half once
    else:
        want = _round_bf16(x)
    np.testing.assert_array_equal(ours, want)


def _round_bf16(x: np.ndarray) -> np.ndarray:
    """float64 -> bfloat16, round to nearest even, directly: of the two bfloat16 neighbours
    (float32 patterns with 16 zero low bits) take the nearer, ties to the even pattern."""
    lo32 = x.astype(np.float32)
    bits = lo32.view(np.uint32) & np.uint32(0xFFFF0000)
    down = bits.view(np.float32).astype(np.float64)  # truncated toward zero
    up = (bits + np.uint32(0x10000)).view(np.float32).astype(np.float64)
    d_down, d_up = np.abs(x - down), np.abs(up - x)  # exact: x and both neighbours are close
    take_up = (d_up < d_down) | ((d_up == d_down) & ((bits >> np.uint32(16)) & np.uint32(1) == 1))
    return np.where(take_up, up, down).astype(np.float32)


def test_round_once_avoids_torchs_double_rounding() -> None:
    x = torch.tensor([1 + 2.0**-8 + 2.0**-30, 1 + 2.0**-11 + 2.0**-30], dtype=torch.float64)
    assert x.to(torch.bfloat16)[0].item() == 1.0  # torch: float64 -> float32 -> bfloat16
    assert portable.round_once(x, torch.bfloat16)[0].item() == 1 + 2.0**-7
    assert portable.round_once(x, torch.float16)[1].item() == 1 + 2.0**-10


def test_torch_and_flax_layouts_give_the_same_weights() -> None:
    spec = {"kind": "kaiming_normal", "nonlinearity": "relu"}
    conv = _torch(spec, (16, 8, 3, 3), "torch", torch.float32)
    kernel = _torch(spec, (3, 3, 8, 16), "flax", torch.float32)
    assert torch.equal(conv, kernel.permute(3, 2, 0, 1))
    dense = _torch({"kind": "normal"}, (7, 5), "torch", torch.float32)
    assert torch.equal(dense, _torch({"kind": "normal"}, (5, 7), "flax", torch.float32).T)


@pytest.mark.parametrize(
    "shape,index",
    [
        ((257, 129), (slice(64, 128), slice(32, 96))),
        ((257, 129), (slice(0, 257, 3), slice(None))),
        ((8, 6, 5), (slice(2, 4), slice(None), slice(1, 5, 2))),
        ((10, 7), (slice(9, 10), slice(0, 0))),
    ],
)
@pytest.mark.parametrize("spec", [{"kind": "normal"}, {"kind": "uniform"}, {"kind": "orthogonal"}])
def test_a_shard_from_global_indices_equals_that_slice(shape, index, spec) -> None:
    if spec["kind"] == "orthogonal" and len(shape) < 2:
        pytest.skip("orthogonal needs 2 dims")
    full = _torch(spec, shape, "flax", torch.float32, seed=2)
    local = torch.empty(full[index].shape)
    initspec_torch.init_shard_(local, spec, shape, index, "flax", seed=2, path="w")
    assert torch.equal(local, full[index])
    with reference_code():
        want = initspec.sample(spec, shape, "flax", seed=2, path="w", rng="portable", index=index)
    np.testing.assert_array_equal(local.numpy(), want)


def test_chunks_and_strides_do_not_change_values(monkeypatch) -> None:
    spec = {"kind": "truncated_normal", "std": 0.5, "low": -1.0, "high": 0.25}
    full = _torch(spec, (300, 70), "torch", torch.float32)
    monkeypatch.setattr(portable, "CHUNK_CPU", 1000)
    assert torch.equal(full, _torch(spec, (300, 70), "torch", torch.float32))
    # A transposed view (not contiguous) gets the same value at each logical position.
    storage = torch.empty(70, 300)
    view = storage.T
    initspec_torch.init_(view, spec, seed=0, path="w", rng="portable")
    assert torch.equal(view, full)
    # channels_last: same logical values.
    cl = torch.empty(4, 3, 5, 5).to(memory_format=torch.channels_last)
    initspec_torch.init_(cl, {"kind": "normal"}, seed=1, path="c", rng="portable")
    plain = initspec_torch.init_(
        torch.empty(4, 3, 5, 5), {"kind": "normal"}, seed=1, path="c", rng="portable"
    )
    assert torch.equal(cl, plain)


@pytest.mark.parametrize(
    "spec,shape,layout",
    [
        ({"kind": "orthogonal", "gain": 1.5}, (20, 30), "torch"),
        ({"kind": "orthogonal"}, (3, 3, 8, 16), "flax"),
        ({"kind": "delta_orthogonal"}, (16, 8, 3, 3), "torch"),
    ],
)
def test_orthogonal_equals_numpy_to_1e12(spec, shape, layout) -> None:
    ours = _torch(spec, shape, layout, torch.float64).numpy()
    np.testing.assert_allclose(ours, _numpy(spec, shape, layout, "float64"), rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "spec,shape",
    [
        ({"kind": "sparse", "sparsity": 0.3}, (40, 25)),
        ({"kind": "dirac", "groups": 2}, (8, 4, 3, 3)),
        ({"kind": "eye"}, (5, 7)),
        ({"kind": "constant", "value": 0.25}, (4, 4)),
    ],
)
def test_structural_and_deterministic_specs_equal_numpy(spec, shape) -> None:
    for dtype in ("float32", "float64"):
        ours = _torch(spec, shape, "torch", getattr(torch, dtype)).numpy()
        np.testing.assert_array_equal(ours, _numpy(spec, shape, "torch", dtype))


def test_apply_portable_gives_each_parameter_its_stream() -> None:
    model = nn.Sequential(nn.Linear(12, 6), nn.ReLU(), nn.Conv2d(3, 4, 3))
    policy = {
        "initspec": 1,
        "rules": [
            {"match": {"role": "kernel"}, "init": {"kind": "kaiming_normal"}},
            {"match": {"role": "bias"}, "init": {"kind": "uniform", "low": -0.1, "high": 0.1}},
        ],
    }
    initspec_torch.apply(policy, model, seed=11, rng="portable")
    for name, p in model.named_parameters():
        spec = policy["rules"][0 if p.ndim > 1 else 1]["init"]
        with reference_code():
            want = initspec.sample(
                spec, tuple(p.shape), "torch", seed=11, path=name, rng="portable"
            )
        np.testing.assert_array_equal(p.detach().numpy(), want, err_msg=name)
    # native and portable are different streams
    native = nn.Sequential(nn.Linear(12, 6), nn.ReLU(), nn.Conv2d(3, 4, 3))
    initspec_torch.apply(policy, native, seed=11)
    assert not torch.equal(native[0].weight, model[0].weight)


def test_meta_tensors_are_left_alone() -> None:
    t = torch.empty(4, 4, device="meta")
    assert initspec_torch.init_(t, {"kind": "normal"}, rng="portable") is t


def _unchanged(t: torch.Tensor, fn: Any) -> None:
    before = t.clone()
    with pytest.raises(initspec.InitSpecError) as info:
        fn()
    assert torch.equal(t, before), "a refused call wrote into the tensor"
    assert isinstance(info.value, initspec.InitSpecError)


def test_bad_portable_input_is_an_initspec_error_and_writes_nothing() -> None:
    t = torch.zeros(6, 4)
    _unchanged(t, lambda: initspec_torch.init_(t, {"kind": "normal"}, rng="portable", stream=2))
    _unchanged(t, lambda: initspec_torch.init_(t, {"kind": "normal"}, rng="mt19937"))
    gen = torch.Generator()
    _unchanged(
        t, lambda: initspec_torch.init_(t, {"kind": "normal"}, generator=gen, rng="portable")
    )
    # dtypes the stream does not define
    i = torch.zeros(3, 3, dtype=torch.int32)
    _unchanged(i, lambda: initspec_torch.init_(i, {"kind": "normal"}, rng="portable"))
    f8 = torch.zeros(3, 3, dtype=torch.float8_e4m3fn)
    with pytest.raises(initspec.BackendError):
        initspec_torch.init_(f8, {"kind": "normal"}, rng="portable")
    plan = initspec.parse({"kind": "normal"}).plan((3, 3), "torch")
    with pytest.raises(initspec.BackendError, match="does not define dtype"):
        portable.sample(plan, (0, 0), (0, 1), torch.complex64)
    # shards that do not tile the global shape
    local = torch.zeros(2, 4)
    for index in [
        (slice(0, 2),),  # one slice per dimension
        (slice(0, 2), slice(0, 5)),  # beyond the global size
        (slice(4, 8), slice(None)),  # beyond the global size
        (slice(0, 2), slice(None, None, -1)),  # negative step
        (slice(0, 2), 3),  # not a slice
        (slice(0, 3), slice(None)),  # local shape (2, 4) is not the slice's (3, 4)
    ]:
        _unchanged(
            local,
            lambda index=index: initspec_torch.init_shard_(
                local, {"kind": "normal"}, (6, 4), index
            ),
        )
    _unchanged(
        local,
        lambda: initspec_torch.init_shard_(
            local, {"kind": "normal"}, (6, 4), (slice(0, 2), slice(None)), stream=0
        ),
    )
    model = nn.Linear(3, 2)
    w = model.weight.detach().clone()
    with pytest.raises(initspec.BackendError, match="stream version"):
        initspec_torch.apply(
            {"rules": [{"init": {"kind": "zeros"}}]}, model, rng="portable", stream=3
        )
    assert torch.equal(model.weight, w)


def _ulps_t(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """|a - b| in units of the spacing of ``b``'s dtype at ``b`` (any float dtype, CPU)."""
    mag = b.abs()
    spacing = (torch.nextafter(mag, torch.full_like(mag, math.inf)) - mag).double()
    return (a.double() - b.double()).abs() / spacing


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize(
    "spec", [{"kind": "uniform"}, {"kind": "normal", "std": 0.02}, {"kind": "trunc_normal_"}]
)
def test_cuda_equals_cpu(spec, capsys) -> None:
    # Computed on the GPU (never on the host and copied): the int64 Threefry, the float64
    # transform and the single rounding run as CUDA kernels.
    shape = (2048, 1024)
    for dtype in (torch.float32, torch.float64, torch.bfloat16):
        cpu = _torch(spec, shape, "torch", dtype)
        gpu = torch.empty(shape, dtype=dtype, device="cuda")
        initspec_torch.init_(gpu, spec, seed=0, path="w", rng="portable")
        back = gpu.cpu()
        same = (back == cpu).double().mean().item()
        worst = _ulps_t(back, cpu).max().item()
        with capsys.disabled():
            print(
                f"\n  torch CUDA vs CPU {spec['kind']} {dtype}: identical {same:.6%}, "
                f"max {worst:g} ulp"
            )
        if spec["kind"] == "uniform":
            assert same == 1.0
        else:
            assert same >= 0.9999
            assert worst <= (4 if dtype == torch.float64 else 1)
