"""The portable stream in JAX equals the NumPy reference (docs/portable-random.md, section 6).

- bits: Random123 known answers and the reference's words, counters above 2**32 included;
- uniform: bit-identical to NumPy (and torch) in float32 and float64;
- normal, truncated normal: measured fraction of identical elements (printed) at least
  99.99%, every element within 1 ulp;
- float16 / bfloat16: the float64 value rounded once (XLA's own convert rounds twice);
- layouts, shards, ``jax.jit``, an 8-device CPU mesh (each device computing its shard only),
  ``apply`` / ``apply_nnx``, the Flax twin of a torch layer;
- bad input: each an ``InitSpecError``.

float64 targets are computed under ``jax.enable_x64`` (a context manager: the global
setting of the test process is left as it is).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from initspec_jax import initializer
from initspec_jax import portable as jportable

import initspec
from initspec import portable as ref

KAT = [
    ((0, 0), (0, 0), (0x6B200159, 0x99BA4EFE)),
    ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
    ((0x243F6A88, 0x85A308D3), (0x13198A2E, 0x03707344), (0xC4923A9C, 0x483DF7A0)),
]


def test_threefry_known_answers() -> None:
    # JAX's threefry2x32 primitive, which the stream uses, on the Random123 vectors (one
    # program for the three); the counter split of global indices is the next test's.
    from jax.extend.random import threefry2x32_p

    k0, k1, x0, x1 = (
        jnp.asarray(np.array(c, np.uint32))
        for c in zip(*[(key[0], key[1], ctr[0], ctr[1]) for ctr, key, _ in KAT], strict=True)
    )
    y0, y1 = jax.jit(lambda *a: threefry2x32_p.bind(*a))(k0, k1, x0, x1)
    assert list(zip(np.asarray(y0).tolist(), np.asarray(y1).tolist(), strict=True)) == [
        e for _, _, e in KAT
    ]


def test_words_equal_the_reference_beyond_32_bit_counters() -> None:
    key = ref.param_key(7, "encoder.layers.0.fc1.weight")
    shape, perm = (5000, 7), (1, 0)
    index = (slice(100, 4100, 3), slice(2, 7))
    blk = jportable.block(shape, perm, index)
    blk = jportable.Block(blk.shape, blk.offset + (5 << 40), blk.mults)  # far beyond 2**32
    with jax.enable_x64(True):
        b0, b1 = jax.jit(jportable.words, static_argnums=1)(
            jnp.asarray(np.array(key, np.uint32)), blk
        )
    ours = (np.asarray(b0).astype(np.uint64) << np.uint64(32)) | np.asarray(b1).astype(np.uint64)
    counters = ref.counters_for(shape, perm, index) + (5 << 40)
    np.testing.assert_array_equal(ours, ref.bits64(key, counters))


def _jax(spec: Any, shape: tuple[int, ...], layout: str, dtype: str, seed: int = 0) -> np.ndarray:
    init = initializer(spec, layout, rng="portable", seed=seed, path="w")
    with jax.enable_x64(dtype == "float64"):
        return np.asarray(init(None, shape, getattr(jnp, dtype)))


def _numpy(spec: Any, shape: tuple[int, ...], layout: str, dtype: str, seed: int = 0) -> np.ndarray:
    return initspec.sample(spec, shape, layout, seed=seed, dtype=dtype, path="w", rng="portable")


SHAPES = [
    ((64, 32, 3, 3), "torch"),
    ((3, 3, 32, 64), "flax"),
    ((5, 1, 7), "flax"),
    ((1 << 16,), "torch"),  # a vector that fills its size bucket: returned as computed
]
UNIFORMS = [
    {"kind": "uniform", "low": -0.37, "high": 1.91},
    {"kind": "uniform", "low": 3.0, "high": 1e6},
]


@pytest.mark.parametrize("shape,layout", SHAPES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("spec", UNIFORMS)
def test_uniform_is_bit_identical_to_numpy(spec, shape, layout, dtype) -> None:
    ours = _jax(spec, shape, layout, dtype, seed=3)
    assert ours.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(ours, _numpy(spec, shape, layout, dtype, seed=3))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_uniform_is_bit_identical_across_numpy_torch_and_jax(dtype) -> None:
    torch = pytest.importorskip("torch")
    import initspec_torch

    spec = {"kind": "he_uniform"}
    t = torch.empty(48, 24, 3, 3, dtype=getattr(torch, dtype))
    initspec_torch.init_(t, spec, "torch", seed=9, path="w", rng="portable")
    j = _jax(spec, (3, 3, 24, 48), "flax", dtype, seed=9)
    n = _numpy(spec, (48, 24, 3, 3), "torch", dtype, seed=9)
    np.testing.assert_array_equal(t.numpy(), n)
    np.testing.assert_array_equal(j.transpose(3, 2, 0, 1), n)


def _ulps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    spacing = np.spacing(np.abs(b)).astype(np.float64)
    return np.abs(a.astype(np.float64) - b.astype(np.float64)) / spacing


NORMALS = [
    {"kind": "normal", "mean": 0.1, "std": 0.02},
    {"kind": "truncated_normal", "std": 1.0, "low": 1.0, "high": 3.0},  # mirrored (a > 0)
    {"kind": "truncated_normal", "std": 1.0, "low": -7.0, "high": -6.5},  # far lower tail
    {"kind": "trunc_normal_", "std": 0.02},
]


@pytest.mark.parametrize("spec", NORMALS, ids=lambda s: f"{s['kind']}{s.get('low', '')}")
def test_normal_and_truncated_normal_match_numpy(spec, capsys) -> None:
    shape = (512, 256)  # 2**17 elements: 99.99% allows 13 differences
    for dtype in ("float32", "float64"):
        ours = _jax(spec, shape, "flax", dtype)
        want = _numpy(spec, shape, "flax", dtype)
        same = float(np.mean(ours == want))
        worst = float(_ulps(ours, want).max())
        with capsys.disabled():
            print(
                f"\n  JAX CPU vs NumPy {spec['kind']} {dtype}: identical {same:.6%}, max {worst:g} ulp"
            )
        assert same >= 0.9999
        assert worst <= 1


def test_ndtri_equals_the_reference_at_branch_edges_and_tails() -> None:
    p = np.array(
        [2.0**-53, 1e-300, 1e-20, 1.2e-14, 0.01, np.exp(-2), np.nextafter(np.exp(-2), 1)]
        + [0.25, 0.5, 0.75, 1 - np.exp(-2), 0.99, 1 - 2.0**-53]
    )
    with jax.enable_x64(True):
        ours = np.asarray(jax.jit(jportable.ndtri)(jnp.asarray(p)))
    np.testing.assert_array_equal(ours, ref.ndtri(p))


def _round_bf16(x: np.ndarray) -> np.ndarray:
    """float64 -> bfloat16, round to nearest even, directly (see test_portable_torch)."""
    bits = x.astype(np.float32).view(np.uint32) & np.uint32(0xFFFF0000)
    down = bits.view(np.float32).astype(np.float64)
    up = (bits + np.uint32(0x10000)).view(np.float32).astype(np.float64)
    d_down, d_up = np.abs(x - down), np.abs(up - x)
    take_up = (d_up < d_down) | ((d_up == d_down) & ((bits >> np.uint32(16)) & np.uint32(1) == 1))
    return np.where(take_up, up, down).astype(np.float32)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_16_bit_dtypes_are_the_float64_value_rounded_once(dtype) -> None:
    spec = {"kind": "normal", "std": 0.7}
    ours = _jax(spec, (256, 256), "flax", dtype).astype(np.float32)
    x = _numpy(spec, (256, 256), "flax", "float64")
    want = x.astype(np.float16).astype(np.float32) if dtype == "float16" else _round_bf16(x)
    np.testing.assert_array_equal(ours, want)


def test_round_once_avoids_xlas_double_rounding() -> None:
    with jax.enable_x64(True):
        x = jnp.asarray([1 + 2.0**-8 + 2.0**-30, 1 + 2.0**-11 + 2.0**-30], jnp.float64)
        assert float(jax.jit(lambda v: v.astype(jnp.bfloat16))(x)[0]) == 1.0  # via float32
        bf16 = jax.jit(lambda v: jportable.round_once(v, np.dtype(jnp.bfloat16)))(x)
        f16 = jax.jit(lambda v: jportable.round_once(v, np.dtype(np.float16)))(x)
    assert float(bf16[0]) == 1 + 2.0**-7
    assert float(f16[1]) == 1 + 2.0**-10


def test_torch_and_flax_layouts_and_jit_give_the_same_weights() -> None:
    spec = {"kind": "kaiming_normal", "nonlinearity": "relu"}
    conv = _jax(spec, (16, 8, 3, 3), "torch", "float32")
    kernel = _jax(spec, (3, 3, 8, 16), "flax", "float32")
    np.testing.assert_array_equal(conv, kernel.transpose(3, 2, 0, 1))
    # Under an outer jit the N-D program is traced (a 2-D shape: XLA CPU compiles Threefry on
    # small N-D shapes slowly).
    init = initializer(spec, "flax", rng="portable", seed=0, path="w")
    jitted = jax.jit(lambda k: init(k, (72, 16)))(jax.random.key(5))
    np.testing.assert_array_equal(np.asarray(jitted), _jax(spec, (72, 16), "flax", "float32"))


def test_flax_dense_equals_the_torch_linear_twin() -> None:
    torch = pytest.importorskip("torch")
    import flax.linen as nn
    import initspec_torch

    spec = {"kind": "trunc_normal_", "std": 0.02}
    lin = torch.nn.Linear(20, 12)
    initspec_torch.init_(lin.weight, spec, seed=4, path="fc.weight", rng="portable")
    dense = nn.Dense(12, kernel_init=initializer(spec, rng="portable", seed=4, path="fc.weight"))
    params = dense.init(jax.random.key(0), jnp.ones((1, 20)))["params"]
    np.testing.assert_array_equal(np.asarray(params["kernel"]).T, lin.weight.detach().numpy())


@pytest.mark.parametrize(
    "shape,index,spec",
    [
        ((257, 129), (slice(64, 128), slice(32, 96)), {"kind": "normal"}),
        ((257, 129), (slice(0, 257, 3), slice(None)), {"kind": "orthogonal"}),
        ((8, 6, 5), (slice(2, 4), slice(None), slice(1, 5, 2)), {"kind": "lecun_uniform"}),
    ],
)
def test_a_shard_from_global_indices_equals_that_slice(shape, index, spec) -> None:
    plan = initspec.parse(spec).plan(shape, "flax")
    key, perm = ref.param_key(2, "w"), ref.layout_perm(shape, "flax")
    full = np.asarray(jportable.sample(plan, key, perm))
    shard = np.asarray(jportable.sample(plan, key, perm, index=index))
    np.testing.assert_array_equal(shard, full[index])


@pytest.mark.parametrize(
    "spec,shape,layout",
    [
        ({"kind": "orthogonal", "gain": 1.5}, (30, 20), "flax"),
        ({"kind": "delta_orthogonal"}, (3, 3, 8, 16), "flax"),
    ],
)
def test_orthogonal_equals_numpy_to_1e12(spec, shape, layout) -> None:
    ours = _jax(spec, shape, layout, "float64")
    np.testing.assert_allclose(ours, _numpy(spec, shape, layout, "float64"), rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "spec,shape",
    [
        ({"kind": "sparse", "sparsity": 0.3}, (25, 40)),
        ({"kind": "dirac", "groups": 2}, (3, 3, 4, 8)),
        ({"kind": "eye"}, (5, 7)),
        ({"kind": "constant", "value": 0.25}, (4, 4)),
    ],
)
def test_structural_and_deterministic_specs_equal_numpy(spec, shape) -> None:
    for dtype in ("float32", "float64"):
        np.testing.assert_array_equal(
            _jax(spec, shape, "flax", dtype), _numpy(spec, shape, "flax", dtype)
        )


def test_float64_without_x64_is_float32_of_the_same_values() -> None:
    init = initializer({"kind": "normal"}, rng="portable", seed=1, path="w")
    out = init(None, (50, 40), jnp.float64)
    if jax.config.jax_enable_x64:
        pytest.skip("x64 is on in this process")
    assert out.dtype == jnp.float32
    np.testing.assert_array_equal(
        np.asarray(out), _numpy({"kind": "normal"}, (50, 40), "flax", "float32", seed=1)
    )


def test_apply_and_apply_nnx_portable_give_each_parameter_its_stream() -> None:
    from flax import nnx
    from initspec_jax import apply, apply_nnx

    policy = {
        "initspec": 1,
        "rules": [
            {"match": {"role": "kernel"}, "init": {"kind": "kaiming_normal"}},
            {"match": {"role": "bias"}, "init": {"kind": "uniform", "low": -0.1, "high": 0.1}},
        ],
    }

    # A linen parameter tree as model.init returns it (built directly: the native
    # initializers' compilation is not what this test is about).
    zeros = {"kernel": jnp.zeros((5, 12)), "bias": jnp.zeros(12)}
    params = {"params": {"fc1": zeros, "fc2": {"kernel": jnp.zeros((12, 6)), "bias": jnp.zeros(6)}}}
    new, _ = apply(policy, params, seed=11, rng="portable")
    for layer, fan in (("fc1", (5, 12)), ("fc2", (12, 6))):
        for leaf, spec, shape in (
            ("kernel", policy["rules"][0]["init"], fan),
            ("bias", policy["rules"][1]["init"], fan[1:]),
        ):
            want = initspec.sample(
                spec, shape, "flax", seed=11, path=f"{layer}.{leaf}", rng="portable"
            )
            np.testing.assert_array_equal(np.asarray(new["params"][layer][leaf]), want)
    lin = nnx.Linear(5, 12, kernel_init=nnx.initializers.zeros, rngs=nnx.Rngs(0))
    apply_nnx(policy, lin, seed=11, rng="portable")
    want = initspec.sample(
        policy["rules"][0]["init"], (5, 12), "flax", seed=11, path="kernel", rng="portable"
    )
    np.testing.assert_array_equal(np.asarray(lin.kernel[...]), want)


def test_empty_tensors_are_accepted_as_by_numpy() -> None:
    # float16 has no value in [1e-8, 2e-8): refused for a non-empty tensor, as by NumPy, but
    # an empty one has nothing to write.
    spec = {"kind": "uniform", "low": 1e-8, "high": 2e-8}
    init = initializer(spec, rng="portable")
    assert init(None, (0, 5), jnp.float16).shape == (0, 5)
    assert initspec.sample(spec, (0, 5), dtype="float16", rng="portable").shape == (0, 5)
    with pytest.raises(initspec.BackendError, match="no value"):
        init(None, (2, 5), jnp.float16)


def test_bad_portable_input_is_an_initspec_error() -> None:
    from flax import nnx
    from initspec_jax import apply_nnx

    with pytest.raises(initspec.BackendError, match="stream version"):
        initializer({"kind": "normal"}, rng="portable", stream=2)
    with pytest.raises(initspec.BackendError, match="rng"):
        initializer({"kind": "normal"}, rng="philox")
    init = initializer({"kind": "normal"}, rng="portable")
    for dtype in (jnp.int32, jnp.complex64, jnp.uint8):
        with pytest.raises(initspec.BackendError):
            init(None, (3, 3), dtype)
    plan = initspec.parse({"kind": "normal"}).plan((6, 4), "flax")
    for index in [
        (slice(0, 2),),
        (slice(0, 2), slice(0, 5)),
        (slice(4, 8), slice(None)),
        (slice(0, 2), slice(None, None, -1)),
        (slice(0, 2), 3),
    ]:
        with pytest.raises(initspec.BackendError):
            jportable.sample(plan, (0, 0), (1, 0), index=index)
    with pytest.raises(initspec.BackendError, match="stream version"):
        jportable.sample(plan, (0, 0), (1, 0), stream=0)
    lin = nnx.Linear(3, 2, kernel_init=nnx.initializers.ones, rngs=nnx.Rngs(0))
    before = np.asarray(lin.kernel[...]).copy()
    with pytest.raises(initspec.BackendError, match="stream version"):
        apply_nnx(
            {"initspec": 1, "rules": [{"init": {"kind": "zeros"}}]}, lin, rng="portable", stream=3
        )
    np.testing.assert_array_equal(np.asarray(lin.kernel[...]), before)


MESH_SCRIPT = textwrap.dedent(
    """
    import re
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import NamedSharding, PartitionSpec as P
    import initspec
    from initspec_jax import initializer, apply

    assert len(jax.devices()) == 8, jax.devices()
    mesh = jax.make_mesh((4, 2), ("x", "y"))
    cases = [
        ({"kind": "trunc_normal_", "std": 0.02}, (64, 48), P("x", "y")),
        ({"kind": "he_uniform"}, (3, 3, 16, 32), P(None, None, "y", "x")),
        ({"kind": "orthogonal"}, (32, 16), P("x", "y")),
    ]
    for spec, shape, pspec in cases:
        init = initializer(spec, rng="portable", seed=1, path="w")
        sharding = NamedSharding(mesh, pspec)
        compiled = (
            jax.jit(lambda k: init(k, shape, jnp.float32), out_shardings=sharding)
            .lower(jax.random.key(0))
            .compile()
        )
        out = compiled(jax.random.key(0))
        whole = init(None, shape, jnp.float32)  # unsharded, on one device
        assert len(whole.sharding.device_set) == 1
        assert np.array_equal(np.asarray(out), np.asarray(whole)), spec
        ref = initspec.sample(spec, shape, "flax", seed=1, path="w", rng="portable")
        assert np.array_equal(np.asarray(out), ref), spec
        local = sharding.shard_shape(shape)
        assert {s.data.shape for s in out.addressable_shards} == {local}
        if spec["kind"] != "orthogonal":  # structural plans are built whole, then sliced
            # each device's program draws the words of its own shard only, no communication
            hlo = compiled.as_text()
            words = set(re.findall(r"u32\\[([0-9,]*)\\]", hlo)) - {"", "1", "2", "4", "8"}
            assert words == {",".join(map(str, local))}, (spec, words)
            assert not re.search(r"all-gather|all-reduce|all-to-all|collective-permute", hlo)
        print("ok", spec["kind"], shape, pspec, local)

    # apply on a parameter tree described by shardings only (jax.eval_shape style)
    s = NamedSharding(mesh, P("x", "y"))
    tree = {"fc": {"kernel": jax.ShapeDtypeStruct((16, 8), jnp.float32, sharding=s)}}
    policy = {"initspec": 1, "rules": [{"init": {"kind": "lecun_normal"}}]}
    with jax.set_mesh(mesh):  # explicit mesh axes: jit needs the mesh context (native too)
        new, _ = apply(policy, tree, seed=3, rng="portable")
    kernel = new["fc"]["kernel"]
    assert kernel.sharding == s, kernel.sharding
    want = initspec.sample({"kind": "lecun_normal"}, (16, 8), "flax", seed=3, path="fc.kernel",
                           rng="portable")
    assert np.array_equal(np.asarray(kernel), want)
    print("ok apply")
    """
)


@pytest.fixture(scope="module", autouse=True)
def mesh_run() -> Any:
    """The 8-device run, started in a subprocess when this module starts: it runs on the
    other core while the in-process tests run, and the mesh test collects it."""
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
        "JAX_PLATFORMS": "cpu",
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", MESH_SCRIPT],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


def test_jit_with_out_shardings_on_an_8_device_mesh_equals_the_unsharded_result(mesh_run) -> None:
    stdout, stderr = mesh_run.communicate(timeout=300)
    assert mesh_run.returncode == 0, stdout[-3000:] + stderr[-6000:]
    assert stdout.count("ok ") == 4, stdout
