"""Fingerprints (initspec.fingerprints, docs/fingerprint.md).

- the element hash against an independent pure-Python computation, the compiled kernel
  against the NumPy reference (every dtype size, strided blocks, counters beyond 2**32);
- what the fingerprint sees: every single-element change, a swap, a permutation, a
  transposition without a layout, the dtype and the shape; what it does not: the order of
  the elements' visits, the stored layout (torch (out, in) vs Flax (in, out));
- shard sums add up to the whole tensor's for uneven and strided shardings (explicit cases
  and hypothesis);
- a torch model and its Flax nnx twin initialized with ``rng="portable"`` have one
  fingerprint, unsharded and (a subprocess) on an 8-device CPU mesh; ``rng="native"`` gives
  each framework its own numbers and fingerprint (FSDP2: tests/test_fingerprint_distributed.py);
- bad input: an ``InitSpecError`` naming the parameter.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import fingerprint_twins as twins
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import initspec
from initspec import fingerprints as fpr
from initspec.stream import block

M64 = (1 << 64) - 1
SEED = 7
needs_kernel = pytest.mark.skipif(not fpr.COMPILED, reason="compiled kernel not built")


def _py_mix(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def _py_hash(i: int, v: int) -> int:
    """h(i, v) with Python integers, from the definition in docs/fingerprint.md."""
    return _py_mix(_py_mix(((i + 1) * 0x9E3779B97F4A7C15) & M64) ^ v)


def test_element_hash_matches_the_definition() -> None:
    # SplitMix64 seeded with 0: its first output is 0xE220A8397B1DCDAF (Vigna's splitmix64.c)
    assert _py_mix(0x9E3779B97F4A7C15) == 0xE220A8397B1DCDAF
    rng = np.random.default_rng(0)
    counters = np.concatenate([[0, 1, 2**32 - 1, 2**32, 2**63 - 1], rng.integers(0, 2**62, 50)])
    bits = rng.integers(0, 2**63, counters.size, dtype=np.uint64) * np.uint64(2)
    got = fpr.element_hash(counters.astype(np.uint64), bits)
    assert got.tolist() == [_py_hash(int(i), int(v)) for i, v in zip(counters, bits, strict=True)]


DTYPES = ["float16", "bfloat16", "float32", "float64"]


def _array(shape: tuple[int, ...], dtype: str, seed: int = 0) -> np.ndarray:
    """Random values of ``dtype`` (bfloat16: ml_dtypes', as JAX gives it)."""
    x = np.random.default_rng(seed).standard_normal(shape)
    if dtype == "bfloat16":
        import ml_dtypes

        return x.astype(ml_dtypes.bfloat16)
    return x.astype(dtype)


@needs_kernel
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "shape,perm,index",
    [
        ((130, 41), (0, 1), None),  # dense, several kernel blocks of 512
        ((41, 130), (1, 0), None),  # counters strided along the last axis
        ((3, 4, 5, 6), (3, 2, 0, 1), (slice(1, 3), slice(None), slice(0, 5, 2), slice(2, 6))),
        ((), (), None),
        ((0, 5), (0, 1), None),
    ],
)
def test_compiled_kernel_equals_the_numpy_reference(dtype, shape, perm, index) -> None:
    blk = block(shape, perm, index)
    bits, _ = fpr.value_bits(_array(blk.shape, dtype))
    ref = fpr.block_sum(bits, blk, compiled=False)
    assert fpr.block_sum(bits, blk, compiled=True) == ref
    assert fpr.block_sum(bits, blk, compiled=True, threads=3) == ref
    # the definition itself, element by element
    counters = fpr._counters(blk, 0, blk.numel)
    want = sum(_py_hash(int(i), int(v)) for i, v in zip(counters, bits.reshape(-1), strict=True))
    assert ref == want & M64


@needs_kernel
def test_counters_beyond_32_bits_and_threads() -> None:
    from initspec.stream import Block

    blk = Block((600_000,), (5 << 40) + 3, (1,))
    bits = np.random.default_rng(1).integers(0, 2**32, blk.shape, dtype=np.uint32)
    ref = fpr.block_sum(bits, blk, compiled=False)
    assert fpr.block_sum(bits, blk, compiled=True, threads=4) == ref
    assert fpr.block_sum(bits[:10], Block((10,), blk.offset, (1,))) == (
        sum(_py_hash(blk.offset + k, int(v)) for k, v in enumerate(bits[:10])) & M64
    )


def _fp(x: np.ndarray, layout: str = "torch") -> str:
    return initspec.fingerprint({"w": x}, layout=layout).digest


def test_every_single_element_change_changes_the_fingerprint() -> None:
    x = _array((7, 9), "float32")
    base = _fp(x)
    rng = np.random.default_rng(2)
    seen = {base}
    for flat in range(x.size):  # every element, one random bit flipped
        y = x.copy()
        y.reshape(-1).view(np.uint32)[flat] ^= np.uint32(1 << int(rng.integers(32)))
        seen.add(_fp(y))
    assert len(seen) == x.size + 1
    zeros = np.zeros((3, 3), np.float32)
    signed = zeros.copy()
    signed[1, 2] = -0.0
    assert _fp(zeros) != _fp(signed)  # bits, not values


def test_permutations_change_the_fingerprint() -> None:
    x = _array((6, 8), "float32")
    swapped = x.copy()
    swapped[0, 0], swapped[5, 7] = x[5, 7], x[0, 0]
    permuted = np.random.default_rng(3).permutation(x.reshape(-1)).reshape(x.shape)
    rolled = np.roll(x, 1)
    digests = {_fp(x), _fp(swapped), _fp(permuted), _fp(rolled), _fp(x.T.copy().reshape(x.shape))}
    assert len(digests) == 5


def test_the_layout_not_the_storage_order_decides() -> None:
    w = _array((16, 8, 3, 3), "float32")  # torch conv weight (out, in, kh, kw)
    k = np.ascontiguousarray(w.transpose(2, 3, 1, 0))  # its Flax kernel (kh, kw, in, out)
    assert _fp(w, "torch") == _fp(k, "flax")
    assert _fp(np.asfortranarray(w), "torch") == _fp(w, "torch")  # memory order is not seen
    assert _fp(k, "torch") != _fp(w, "torch")  # a kernel read in the wrong layout


def test_dtype_and_shape_are_part_of_the_digest() -> None:
    import ml_dtypes

    bits = np.random.default_rng(4).integers(0, 2**15, (4, 6), dtype=np.uint16)
    f16, bf16 = bits.view(np.float16), bits.view(ml_dtypes.bfloat16)
    assert _fp(f16) != _fp(bf16)
    s16 = initspec.fingerprint({"w": f16}).params["w"].sum
    assert s16 == initspec.fingerprint({"w": bf16}).params["w"].sum  # equal bits, equal sums
    v = _array((24,), "float32")
    assert len({_fp(v), _fp(v.reshape(4, 6), "embedding"), _fp(v.reshape(1, 24))}) == 3


def _partition(n: int, cuts: list[int]) -> list[slice]:
    points = sorted({0, n, *(c % (n + 1) for c in cuts)})
    return [slice(a, b) for a, b in zip(points, points[1:], strict=False)]


@pytest.mark.parametrize(
    "shape,layout,cuts",
    [
        ((10, 7), "torch", [[3, 6, 9], [5]]),  # uneven rows and columns
        ((7, 10), "flax", [[1], [4, 5]]),  # a Flax kernel: counters transposed
        ((3, 3, 5, 6), "flax", [[], [2], [1, 4], [3]]),
        ((13,), "torch", [[4, 8, 12]]),  # a bias, and a 1-element last shard
        ((9, 4), "torch", [[0, 0, 9], []]),  # empty shards
    ],
)
def test_shard_sums_add_up_to_the_whole(shape, layout, cuts) -> None:
    x = _array(shape, "float32", seed=5)
    whole = fpr.shard_sum(x, shape, layout)
    parts = [[s] for s in _partition(shape[0], cuts[0])]
    for axis in range(1, len(shape)):
        parts = [p + [s] for p in parts for s in _partition(shape[axis], cuts[axis])]
    assert fpr.combine(fpr.shard_sum(x[tuple(p)], shape, layout, tuple(p)) for p in parts) == whole


def test_strided_shards_add_up_to_the_whole() -> None:
    # rows dealt round-robin to 3 ranks (a stride-3 slice each), columns split at 2
    x = _array((11, 5), "bfloat16")
    shards = [(slice(r, 11, 3), c) for r in range(3) for c in (slice(0, 2), slice(2, 5))]
    total = fpr.combine(fpr.shard_sum(x[s], x.shape, "flax", s) for s in shards)
    assert total == fpr.shard_sum(x, x.shape, "flax")


@settings(max_examples=60, deadline=None)
@given(
    shape=st.lists(st.integers(1, 9), min_size=1, max_size=3).map(tuple),
    cuts=st.lists(st.lists(st.integers(0, 9), max_size=3), min_size=3, max_size=3),
    layout=st.sampled_from(["torch", "flax", "torch_transposed"]),
    dtype=st.sampled_from(DTYPES),
)
def test_any_uneven_sharding_combines_to_the_unsharded_sum(shape, cuts, layout, dtype) -> None:
    x = _array(shape, dtype, seed=len(shape))
    parts: list[list[slice]] = [[]]
    for axis, n in enumerate(shape):
        parts = [p + [s] for p in parts for s in _partition(n, cuts[axis])]
    sums = [fpr.shard_sum(x[tuple(p)], shape, layout, tuple(p)) for p in parts]
    assert fpr.combine(sums) == fpr.shard_sum(x, shape, layout)
    assert fpr.combine(reversed(sums)) == fpr.combine(sums)


def test_fingerprint_object_diff_table_and_dict() -> None:
    a = {"fc.weight": _array((4, 3), "float32"), "fc.bias": _array((4,), "float32")}
    b = {"fc.bias": a["fc.bias"], "fc.weight": a["fc.weight"].copy()}
    fa, fb = initspec.fingerprint(a), initspec.fingerprint(b)
    # the mappings' order is not seen
    assert fa == fb and fa.digest == str(fb) and fa.diff(fb) == []
    b["fc.weight"][1, 1] += 1.0
    b["head.weight"] = _array((2, 4), "float32")
    diff = fa.diff(initspec.fingerprint(b))
    assert len(diff) == 2 and "fc.weight" in diff[0] and "values differ" in diff[0]
    assert diff[1] == "head.weight: only in the second"
    assert "fc.weight  float32  4x3" in fa.table() and fa.digest in fa.table()
    d = fa.to_dict()
    assert d["digest"] == fa.digest and d["params"]["fc.weight"]["canonical_shape"] == [4, 3]
    # the key is the portable stream's: Flax's leaf name reads as torch's
    flax = initspec.fingerprint(
        {"fc.kernel": np.ascontiguousarray(a["fc.weight"].T), "fc.bias": a["fc.bias"]},
        layout="flax",
    )
    assert flax == fa


def test_bad_input_is_an_initspec_error() -> None:
    with pytest.raises(initspec.BackendError, match="'w'.*int32.*float16"):
        initspec.fingerprint({"w": np.zeros(3, np.int32)})
    with pytest.raises(initspec.BackendError, match="mapping"):
        initspec.fingerprint(np.zeros(3))  # type: ignore[arg-type]
    with pytest.raises(initspec.BackendError, match="same fingerprint key"):
        initspec.fingerprint({"fc.weight": np.zeros(3), "fc.kernel": np.zeros(3)})
    with pytest.raises(initspec.BackendError, match="not among the tensors"):
        initspec.fingerprint({"w": np.zeros(3)}, layouts={"v": "flax"})
    with pytest.raises(initspec.ShapeError, match="shard"):
        fpr.shard_sum(np.zeros((2, 3), np.float32), (4, 3), "torch", (slice(0, 3), slice(None)))
    with pytest.raises(initspec.BackendError, match="outside"):
        fpr.shard_sum(np.zeros((2, 3), np.float32), (4, 3), "torch", (slice(3, 5), slice(None)))
    torch = pytest.importorskip("torch")
    with pytest.raises(initspec.BackendError, match="'w': a Tensor is not an array NumPy"):
        initspec.fingerprint({"w": torch.zeros(2, dtype=torch.bfloat16)})
    with pytest.raises(initspec.BackendError, match="not the bits"):
        fpr.shard_sum(np.zeros(3, np.uint32), (3,), dtype="float16")


# --- torch and Flax --------------------------------------------------------------------------


def _torch(rng: str) -> initspec.Fingerprint:
    import initspec_torch

    model = twins.torch_model()
    initspec_torch.apply(twins.POLICY, model, seed=SEED, rng=rng)
    return initspec_torch.fingerprint(model)


def test_torch_fingerprint_equals_the_core_on_its_state_dict() -> None:
    torch = pytest.importorskip("torch")
    import initspec_torch

    model = torch.nn.Sequential(torch.nn.Linear(5, 3), torch.nn.ConvTranspose2d(3, 2, 2))
    initspec_torch.apply("torch-defaults", model, seed=1)
    sd = {k: v.numpy() for k, v in model.state_dict().items()}
    core = initspec.fingerprint(sd, layouts={"1.weight": "torch_transposed"})
    assert initspec_torch.fingerprint(model) == core
    assert initspec_torch.fingerprint(model, threads=1) == core
    # bfloat16, which NumPy lacks, and a tied weight (counted once)
    emb = torch.nn.Embedding(6, 4).to(torch.bfloat16)
    head = torch.nn.Linear(4, 6, bias=False).to(torch.bfloat16)
    head.weight = emb.weight
    tied = torch.nn.ModuleDict({"emb": emb, "head": head})
    got = initspec_torch.fingerprint(tied)
    assert list(got.params) == ["emb.weight"] and got.params["emb.weight"].dtype == "bfloat16"
    with pytest.raises(initspec.BackendError, match="meta"):
        initspec_torch.fingerprint(torch.nn.Linear(2, 2, device="meta"))


def test_jax_fingerprint_of_a_linen_tree_and_bad_values() -> None:
    jax = pytest.importorskip("jax")
    import initspec_jax
    import jax.numpy as jnp

    kernel = _array((5, 3), "float32")
    tree = {"params": {"fc": {"kernel": jnp.asarray(kernel), "bias": jnp.zeros(3)}}}
    got = initspec_jax.fingerprint(tree)
    want = initspec.fingerprint(
        {"fc.weight": np.ascontiguousarray(kernel.T), "fc.bias": np.zeros(3, np.float32)}
    )
    assert got == want
    abstract = {"fc": {"kernel": jax.ShapeDtypeStruct((5, 3), jnp.float32)}}
    with pytest.raises(initspec.BackendError, match="abstract"):
        initspec_jax.fingerprint(abstract)
    with pytest.raises(initspec.BackendError, match="int32"):
        initspec_jax.fingerprint({"fc": {"kernel": jnp.zeros((2, 2), jnp.int32)}})


MESH_SCRIPT = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, sys.argv[1])
    import jax
    from jax.sharding import NamedSharding, PartitionSpec as P
    from flax import nnx
    import fingerprint_twins as twins
    import initspec_jax

    assert len(jax.devices()) == 8, jax.devices()
    mesh = jax.make_mesh((4, 2), ("x", "y"))

    def params(model):
        return {".".join(map(str, p)): v for p, v in nnx.iter_graph(model) if isinstance(v, nnx.Param)}

    def twin(rng, sharded):
        model = twins.nnx_model()
        if not sharded:  # on one device
            initspec_jax.apply_nnx(twins.POLICY, model, seed=int(sys.argv[2]), rng=rng)
            return model
        for name, var in params(model).items():
            spec = NamedSharding(mesh, P(*twins.NNX_SPECS[name]))
            var.set_value(jax.device_put(var.get_value(), spec))
        with jax.set_mesh(mesh):  # explicit mesh axes: jit needs the mesh context
            initspec_jax.apply_nnx(twins.POLICY, model, seed=int(sys.argv[2]), rng=rng)
        return model

    out = {}
    for rng in ("portable", "native"):
        for sharded in (False, True):
            model = twin(rng, sharded)
            fp = initspec_jax.fingerprint(model)
            out[f"{rng}/{'mesh' if sharded else 'one device'}"] = {
                "digest": fp.digest,
                "params": {k: p.digest for k, p in fp.params.items()},
                "shards": {
                    k: len({str(s.index) for s in v.get_value().addressable_shards})
                    for k, v in params(model).items()
                },
            }
    print("RESULT " + json.dumps(out))
    """
)


@pytest.fixture(scope="module", autouse=True)
def mesh_run() -> Any:
    """The Flax runs on an 8-device CPU mesh, in a subprocess started when this module
    starts (where Flax is installed): it works on the other core while the in-process tests
    run."""
    import importlib.util

    if importlib.util.find_spec("flax") is None:
        yield None
        return
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=8 --xla_backend_optimization_level=0",
        "JAX_PLATFORMS": "cpu",
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", MESH_SCRIPT, str(Path(__file__).parent), str(SEED)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


@pytest.fixture(scope="module")
def flax_twin(mesh_run: Any) -> dict[str, Any]:
    """The subprocess's results: the twin's fingerprints by (rng, placement)."""
    pytest.importorskip("torch")
    if mesh_run is None:
        pytest.skip("flax is not installed")
    stdout, stderr = mesh_run.communicate(timeout=300)
    assert mesh_run.returncode == 0, stdout[-3000:] + stderr[-6000:]
    lines = [ln for ln in stdout.splitlines() if ln.startswith("RESULT ")]
    assert lines, stdout[-3000:] + stderr[-6000:]
    out: dict[str, Any] = json.loads(lines[-1].removeprefix("RESULT "))
    return out


def test_torch_model_and_flax_twin_have_one_portable_fingerprint(flax_twin) -> None:
    torch_fp = _torch("portable")
    assert set(torch_fp.params) == set(flax_twin["portable/mesh"]["params"]) == {
        "embed.weight", "ln.weight", "ln.bias", "fc1.weight", "fc1.bias",
        "fc2.weight", "fc2.bias", "conv.weight", "conv.bias",
    }  # fmt: skip
    for where in ("portable/one device", "portable/mesh"):
        assert flax_twin[where]["params"] == {k: p.digest for k, p in torch_fp.params.items()}
        assert flax_twin[where]["digest"] == torch_fp.digest
    # on the mesh each parameter really is split into as many shards as its spec says
    for name, spec in twins.NNX_SPECS.items():
        want = math.prod({"x": 4, "y": 2}[a] for a in spec if a is not None)
        assert flax_twin["portable/mesh"]["shards"][name] == want, name


def test_native_streams_differ_across_frameworks(flax_twin) -> None:
    # torch's generator and JAX's: other numbers in each framework (FSDP2's shards:
    # tests/test_fingerprint_distributed.py). JAX's on the mesh is not asserted equal or
    # unequal to one device's (docs/fingerprint.md says what was measured).
    torch_native, torch_portable = _torch("native"), _torch("portable")
    flax_native = flax_twin["native/one device"]["digest"]
    assert len({torch_native.digest, torch_portable.digest, flax_native}) == 3
    assert flax_twin["native/mesh"]["digest"] not in {torch_native.digest, torch_portable.digest}
    assert torch_native == _torch("native")  # each is still deterministic
