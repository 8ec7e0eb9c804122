"""The portable stream's NumPy reference: known answers, ndtri, shards, layouts, moments."""

from __future__ import annotations

import numpy as np
import pytest
from moments import plan_check

import initspec
from initspec import portable

# Random123 kat_vectors (counter words, then key words), as in the reference.
KAT = [
    ((0, 0), (0, 0), (0x6B200159, 0x99BA4EFE)),
    ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
    ((0x243F6A88, 0x85A308D3), (0x13198A2E, 0x03707344), (0xC4923A9C, 0x483DF7A0)),
]


@pytest.mark.parametrize("ctr,key,expected", KAT)
def test_threefry_known_answers(ctr, key, expected) -> None:
    y0, y1 = portable.threefry2x32(
        key, np.array([ctr[0]], np.uint32), np.array([ctr[1]], np.uint32)
    )
    assert (int(y0[0]), int(y1[0])) == expected


def test_threefry_equals_jax_bits() -> None:
    jax = pytest.importorskip("jax")
    from jax.extend.random import threefry_2x32

    key = portable.param_key(3, "layer.weight")
    n = 1000
    counters = np.arange(n, dtype=np.int64) + (5 << 32)
    words = threefry_2x32(
        jax.numpy.array(key, dtype=jax.numpy.uint32),
        jax.numpy.concatenate(
            [jax.numpy.full(n, 5, jax.numpy.uint32), jax.numpy.arange(n, dtype=jax.numpy.uint32)]
        ),
    )
    ours = portable.bits64(key, counters)
    np.testing.assert_array_equal(ours >> np.uint64(32), np.asarray(words[:n]).astype(np.uint64))
    np.testing.assert_array_equal(
        ours & np.uint64(0xFFFFFFFF), np.asarray(words[n:]).astype(np.uint64)
    )


def test_ndtri_equals_scipy() -> None:
    from scipy.special import ndtri

    rng = np.random.default_rng(0)
    p = np.concatenate(
        [
            rng.random(200_000),
            10.0 ** -np.arange(1, 308),
            1 - 10.0 ** -np.arange(1, 16),
            [0.5, np.exp(-2), 1 - np.exp(-2)],
        ]
    )
    ours, ref = portable.ndtri(p), ndtri(p)
    # Same algorithm (Cephes): within 2 float64 ulp everywhere.
    assert np.all(np.abs(ours - ref) <= 2 * np.spacing(np.abs(ref)))


def test_uniform_conversions_cover_the_open_and_half_open_interval() -> None:
    bits = np.array([0, 2**64 - 1], dtype=np.uint64)
    assert portable.uniform01(bits)[0] == 0.0 and portable.uniform01(bits)[1] < 1.0
    u = portable.uniform_open(bits)
    assert 0.0 < u[0] and u[1] < 1.0


SPECS = [
    {"kind": "uniform", "low": -0.5, "high": 2.0},
    {"kind": "normal", "mean": 0.1, "std": 0.02},
    {"kind": "he_normal"},
    {"kind": "truncated_normal", "std": 1.0, "low": 1.0, "high": 3.0},
    {"kind": "truncated_normal", "std": 1.0, "low": -7.0, "high": -6.5},
    {"kind": "trunc_normal_", "std": 0.02},
    {"kind": "torch_linear_weight"},
]


@pytest.mark.parametrize("raw", SPECS, ids=lambda r: r["kind"])
def test_portable_samples_match_plan(raw) -> None:
    shape = (400, 500)  # n = 200_000; tolerances in moments.py
    spec = initspec.parse(raw)
    x = initspec.sample(spec, shape, seed=1, dtype="float64", rng="portable", path="w")
    check = plan_check(x, spec.plan(shape))
    assert check.ok, check


def test_transposed_layouts_give_the_same_values() -> None:
    spec = {"kind": "kaiming_normal", "nonlinearity": "relu"}
    t = initspec.sample(spec, (16, 8, 3, 3), "torch", seed=4, rng="portable", path="conv.weight")
    f = initspec.sample(spec, (3, 3, 8, 16), "flax", seed=4, rng="portable", path="conv.weight")
    np.testing.assert_array_equal(t, f.transpose(3, 2, 0, 1))
    d = initspec.sample({"kind": "normal"}, (5, 7), "torch", rng="portable")
    np.testing.assert_array_equal(
        d, initspec.sample({"kind": "normal"}, (7, 5), "flax", rng="portable").T
    )


@pytest.mark.parametrize(
    "shape,index",
    [
        ((257, 129), (slice(64, 128), slice(32, 96))),
        ((257, 129), (slice(0, 257, 3), slice(None))),
        ((8, 6, 5), (slice(2, 4), slice(None), slice(1, 5, 2))),
    ],
)
@pytest.mark.parametrize("kind", ["normal", "uniform", "lecun_normal"])
def test_a_shard_from_global_indices_equals_that_slice(shape, index, kind) -> None:
    full = initspec.sample({"kind": kind}, shape, "flax", rng="portable", seed=2)
    shard = initspec.sample({"kind": kind}, shape, "flax", rng="portable", seed=2, index=index)
    np.testing.assert_array_equal(full[index], shard)


def test_chunking_does_not_change_values(monkeypatch) -> None:
    full = initspec.sample({"kind": "normal"}, (300, 70), rng="portable")
    monkeypatch.setattr(portable, "CHUNK", 1000)
    np.testing.assert_array_equal(
        full, initspec.sample({"kind": "normal"}, (300, 70), rng="portable")
    )


def test_structural_specs_in_portable_mode() -> None:
    q = initspec.sample({"kind": "orthogonal"}, (20, 30), rng="portable", dtype="float64")
    np.testing.assert_allclose(q @ q.T, np.eye(20), atol=1e-12)
    qf = initspec.sample({"kind": "orthogonal"}, (30, 20), "flax", rng="portable", dtype="float64")
    np.testing.assert_allclose(q, qf.T, atol=1e-12)
    s = initspec.sample(
        {"kind": "sparse", "sparsity": 0.5}, (10, 40), rng="portable", dtype="float64"
    )
    assert np.all((s == 0).sum(axis=0) == 5)
    assert np.array_equal(
        s,
        initspec.sample(
            {"kind": "sparse", "sparsity": 0.5}, (10, 40), rng="portable", dtype="float64"
        ),
    )


def test_same_seed_same_values_other_seed_or_path_differs() -> None:
    a = initspec.sample({"kind": "normal"}, (10, 10), rng="portable", seed=1, path="a")
    assert np.array_equal(
        a, initspec.sample({"kind": "normal"}, (10, 10), rng="portable", seed=1, path="a")
    )
    assert not np.array_equal(
        a, initspec.sample({"kind": "normal"}, (10, 10), rng="portable", seed=2, path="a")
    )
    assert not np.array_equal(
        a, initspec.sample({"kind": "normal"}, (10, 10), rng="portable", seed=1, path="b")
    )


def test_bad_portable_input() -> None:
    with pytest.raises(initspec.BackendError, match="stream version"):
        initspec.sample({"kind": "normal"}, (3,), rng="portable", stream=2)
    with pytest.raises(initspec.BackendError, match="one slice per dimension"):
        initspec.sample({"kind": "normal"}, (3, 3), rng="portable", index=(slice(0, 2),))
    with pytest.raises(initspec.BackendError, match="needs rng='portable'"):
        initspec.sample({"kind": "normal"}, (3, 3), index=(slice(0, 2), slice(None)))
    with pytest.raises(initspec.BackendError, match="rng"):
        initspec.sample({"kind": "normal"}, (3,), rng="mt19937")
