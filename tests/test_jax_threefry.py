"""initspec_jax.threefry: jax.random's bits, uniform and normal, bit for bit, from the written-out
hash; JAX's own functions where that definition does not hold; each shard from its own
counters under a mesh."""

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
from initspec_jax import threefry
from jax.extend.random import threefry2x32_p

SHAPES = [(), (1,), (7,), (3, 4), (2, 3, 5), (1, 9, 1), (257, 129), (0, 3), (4, 0)]
KEY = jax.random.key(7)


def _keys() -> list[Any]:
    """The same key typed and as its two raw words (as the samplers pass it)."""
    return [KEY, jax.random.key_data(KEY)]


def test_the_hash_is_the_primitive_for_any_counters_and_keys() -> None:
    rng = np.random.default_rng(0)
    x0, x1, k = (rng.integers(0, 2**32, n, dtype=np.uint32) for n in (1000, 1000, 2))
    x0[:10] = 0  # the counters' high word is 0 below 2**32 elements
    ours = jax.jit(threefry.threefry2x32)(k[0], k[1], x0, x1)
    theirs = jax.jit(threefry2x32_p.bind)(k[0], k[1], x0, x1)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_bits_uniform_and_normal_are_jax_randoms(shape: tuple[int, ...]) -> None:
    """Compared under jit, as the samplers run them (traced bounds, as the plan's numbers)."""
    cases = [
        (lambda k: threefry.bits(k, shape), lambda k: jax.random.bits(k, shape, jnp.uint32)),
        (
            lambda k, lo, hi: threefry.uniform(k, shape, jnp.float32, lo, hi),
            lambda k, lo, hi: jax.random.uniform(k, shape, jnp.float32, lo, hi),
        ),
        (
            lambda k: threefry.normal(k, shape, jnp.float32),
            lambda k: jax.random.normal(k, shape, jnp.float32),
        ),
    ]
    for ours, theirs in cases:
        args = (-0.3, 0.7) if ours.__code__.co_argcount == 3 else ()
        want = np.asarray(jax.jit(theirs)(KEY, *args))
        for key in _keys():
            got = np.asarray(jax.jit(ours)(key, *args))
            assert got.dtype == want.dtype and got.shape == shape
            np.testing.assert_array_equal(got, want)


def test_float64_and_64_bit_words_are_jax_randoms() -> None:
    with jax.enable_x64(True):
        for shape in [(5,), (33, 17)]:
            pairs = [
                (threefry.bits(KEY, shape, 64), jax.random.bits(KEY, shape, jnp.uint64)),
                (threefry.uniform(KEY, shape, jnp.float64), jax.random.uniform(KEY, shape, jnp.float64)),
                (threefry.normal(KEY, shape, jnp.float64), jax.random.normal(KEY, shape, jnp.float64)),
            ]
            for ours, theirs in pairs:
                assert ours.dtype == theirs.dtype
                np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))


def test_64_bit_words_without_x64_are_what_jax_random_gives() -> None:
    """JAX narrows uint64 to uint32 without x64 (and warns); so does this, through JAX."""
    with pytest.warns(UserWarning, match="uint64 is not available"):
        ours = threefry.bits(KEY, (6,), 64)
    with pytest.warns(UserWarning, match="uint64 is not available"):
        theirs = jax.random.bits(KEY, (6,), jnp.uint64)
    assert ours.dtype == theirs.dtype == np.uint32
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))


def test_a_large_normal_is_jax_randoms_and_the_check_can_fail() -> None:
    shape = (2048, 1536)  # 3.1M: several XLA partitions of the fused loop
    ours = np.asarray(jax.jit(lambda k: threefry.normal(k, shape, jnp.float32))(KEY))
    np.testing.assert_array_equal(ours, np.asarray(jax.jit(lambda k: jax.random.normal(k, shape))(KEY)))
    # a neighbouring key, or one word of the pair instead of their xor, differs everywhere
    other = np.asarray(jax.jit(lambda k: jax.random.normal(k, shape))(jax.random.key(8)))
    assert np.mean(ours == other) < 1e-4
    b0, b1 = threefry.threefry2x32(*threefry.key_words(KEY), jnp.uint32(0), jnp.arange(10, dtype=jnp.uint32))
    assert not np.array_equal(np.asarray(b0), np.asarray(jax.random.bits(KEY, (10,), jnp.uint32)))


def test_under_vmap_over_keys_as_jax_random() -> None:
    keys = jax.random.split(KEY, 4)
    ours = jax.jit(jax.vmap(lambda k: threefry.normal(k, (3, 5), jnp.float32)))(keys)
    theirs = jax.jit(jax.vmap(lambda k: jax.random.normal(k, (3, 5), jnp.float32)))(keys)
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))
    raw = jax.jit(jax.vmap(lambda k: threefry.bits(k, (3, 5))))(jax.random.key_data(keys))
    np.testing.assert_array_equal(np.asarray(raw), np.asarray(jax.vmap(lambda k: jax.random.bits(k, (3, 5)))(keys)))


def test_where_the_definition_does_not_hold_jax_random_draws() -> None:
    """An rbg key, or jax_threefry_partitionable off, gets jax.random's own values (they
    differ from the partitionable threefry ones: the fallback is really taken)."""
    shape = (6, 5)
    rbg = jax.random.key(3, impl="rbg")
    assert threefry.key_words(rbg) is None
    np.testing.assert_array_equal(
        np.asarray(threefry.normal(rbg, shape, jnp.float32)),
        np.asarray(jax.random.normal(rbg, shape, jnp.float32)),
    )
    partitionable = np.asarray(threefry.bits(KEY, shape))
    with jax.threefry_partitionable(False):
        assert threefry.key_words(KEY) is None
        legacy = np.asarray(jax.jit(lambda k: threefry.bits(k, shape))(KEY))
        np.testing.assert_array_equal(legacy, np.asarray(jax.random.bits(KEY, shape, jnp.uint32)))
    assert not np.array_equal(legacy, partitionable)


def test_2_to_the_32_elements_or_more_use_jax_random() -> None:
    """The counters here are 32-bit; a larger array's bits come from JAX's primitive (traced
    only: nothing of that size is allocated)."""
    small = str(jax.make_jaxpr(lambda k: threefry.bits(k, (2**16, 2**16 - 1)))(KEY))
    large = str(jax.make_jaxpr(lambda k: threefry.bits(k, (2**16, 2**16)))(KEY))
    assert "random_bits" not in small and "shift_left" in small
    assert "random_bits" in large


MESH_SCRIPT = textwrap.dedent(
    """
    import re
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import NamedSharding, PartitionSpec as P
    from initspec_jax import initializer

    assert len(jax.devices()) == 8, jax.devices()
    mesh = jax.make_mesh((4, 2), ("x", "y"))
    for spec, shape, pspec in [
        ({"kind": "trunc_normal_", "std": 0.02}, (64, 48), P("x", "y")),
        ({"kind": "he_uniform"}, (3, 3, 16, 32), P(None, None, "y", "x")),
        ({"kind": "normal", "std": 0.5}, (40, 24), P(None, "x")),
    ]:
        init = initializer(spec)
        sharding = NamedSharding(mesh, pspec)
        compiled = (
            jax.jit(lambda k: init(k, shape, jnp.float32), out_shardings=sharding)
            .lower(jax.random.key(0)).compile()
        )
        out = compiled(jax.random.key(0))
        whole = init(jax.random.key(0), shape, jnp.float32)
        assert len(whole.sharding.device_set) == 1
        # the same ops on fewer elements: equal up to XLA's fusion (last bits)
        np.testing.assert_array_max_ulp(np.asarray(out), np.asarray(whole), maxulp=4)
        local = sharding.shard_shape(shape)
        assert {s.data.shape for s in out.addressable_shards} == {local}
        hlo = compiled.as_text()
        # every uint32 array (counters, words) is the shard's or a per-axis iota of it
        words = {w for w in re.findall(r"u32\\[([0-9,]*)\\]", hlo) if w}
        sizes = {int(np.prod([int(n) for n in w.split(",")])) for w in words}
        assert max(sizes) == int(np.prod(local)), (spec, words)
        assert not re.search(r"all-gather|all-reduce|all-to-all|collective-permute", hlo)
        print("ok", spec["kind"], shape, pspec, local)
    """
)


def test_native_draws_on_an_8_device_mesh_compute_each_shard_from_its_own_counters() -> None:
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
        "JAX_PLATFORMS": "cpu",
    }
    result = subprocess.run(
        [sys.executable, "-c", MESH_SCRIPT], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    assert result.stdout.count("ok ") == 3, result.stdout
