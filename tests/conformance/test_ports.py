"""Ports torch -> Flax, checked per parameter: for twin models (an MLP, a CNN with groups,
a transposed conv and batch norm, and a transformer block with embedding, attention, layer
norm and MLP), every preset and two custom policies give each pair of twin parameters the
same rule and the same plan, and values with the same distribution (two-sample KS,
p > 1e-4, fixed seeds; constants exactly)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import initspec

torch = pytest.importorskip("torch")
nnx = pytest.importorskip("flax.nnx")
import initspec_jax  # noqa: E402
import initspec_torch  # noqa: E402

tnn = torch.nn
LEAF = {"weight": ("kernel", "scale", "embedding"), "bias": ("bias",)}


def torch_mlp():
    m = tnn.Module()
    m.fc1 = tnn.Linear(64, 128)
    m.fc2 = tnn.Linear(128, 10)
    return m


def flax_mlp():
    class M(nnx.Module):
        def __init__(self, rngs):
            self.fc1 = nnx.Linear(64, 128, rngs=rngs)
            self.fc2 = nnx.Linear(128, 10, rngs=rngs)

    return M(nnx.Rngs(0))


def torch_cnn():
    m = tnn.Module()
    m.conv1 = tnn.Conv2d(3, 16, 3)
    m.gconv = tnn.Conv2d(16, 32, 3, groups=4)
    m.bn = tnn.BatchNorm2d(32)
    m.deconv = tnn.ConvTranspose2d(32, 8, 4)
    return m


def flax_cnn():
    class M(nnx.Module):
        def __init__(self, rngs):
            self.conv1 = nnx.Conv(3, 16, (3, 3), rngs=rngs)
            self.gconv = nnx.Conv(16, 32, (3, 3), feature_group_count=4, rngs=rngs)
            self.bn = nnx.BatchNorm(32, rngs=rngs)
            self.deconv = nnx.ConvTranspose(32, 8, (4, 4), rngs=rngs)

    return M(nnx.Rngs(0))


D = 64


def torch_block():
    m = tnn.Module()
    m.emb = tnn.Embedding(300, D)
    m.ln_1 = tnn.LayerNorm(D)
    m.attn = tnn.Module()
    for name in ("q", "k", "v", "o"):
        setattr(m.attn, name, tnn.Linear(D, D))
    m.ln_2 = tnn.LayerNorm(D)
    m.mlp = tnn.Module()
    m.mlp.fc = tnn.Linear(D, 4 * D)
    m.mlp.c_proj = tnn.Linear(4 * D, D)
    return m


def flax_block():
    class Attn(nnx.Module):
        def __init__(self, rngs):
            self.q, self.k, self.v, self.o = (nnx.Linear(D, D, rngs=rngs) for _ in range(4))

    class MLP(nnx.Module):
        def __init__(self, rngs):
            self.fc = nnx.Linear(D, 4 * D, rngs=rngs)
            self.c_proj = nnx.Linear(4 * D, D, rngs=rngs)

    class M(nnx.Module):
        def __init__(self, rngs):
            self.emb = nnx.Embed(300, D, rngs=rngs)
            self.ln_1 = nnx.LayerNorm(D, rngs=rngs)
            self.attn = Attn(rngs)
            self.ln_2 = nnx.LayerNorm(D, rngs=rngs)
            self.mlp = MLP(rngs)

    return M(nnx.Rngs(0))


TWINS = {
    "mlp": (torch_mlp, flax_mlp),
    "cnn": (torch_cnn, flax_cnn),
    "block": (torch_block, flax_block),
}

CUSTOM = {
    "custom-relu": {
        "initspec": 1,
        "unmatched": "error",
        "rules": [
            {
                "match": {"kind": ["conv", "conv_transpose"], "role": "kernel"},
                "init": {"kind": "kaiming_normal", "nonlinearity": "relu", "mode": "fan_out"},
            },
            {"match": {"kind": "linear", "role": "kernel"}, "init": {"kind": "he_uniform"}},
            {"match": {"role": "bias"}, "init": {"kind": "normal", "std": 0.01}},
            {"match": {"kind": "norm", "role": "scale"}, "init": {"kind": "ones"}},
            {
                "match": {"kind": "embedding"},
                "init": {"kind": "trunc_normal_", "std": 0.02, "a": -0.04, "b": 0.04},
            },
        ],
    },
    "custom-paths": {
        "initspec": 1,
        "unmatched": "keep",
        "rules": [
            {
                "match": {"path": ["*c_proj.weight", "*c_proj.kernel"]},
                "init": {"kind": "orthogonal", "gain": 0.5},
            },
            {"match": {"path": ["attn.*"], "role": "kernel"}, "init": {"kind": "glorot_normal"}},
            {
                "match": {"regex": r"(conv1|fc1)\.(weight|kernel)"},
                "init": {"kind": "lecun_uniform"},
            },
            {
                "match": {"role": "kernel"},
                "init": {
                    "kind": "variance_scaling",
                    "scale": 2.0,
                    "mode": "fan_avg",
                    "distribution": "truncated_normal",
                },
            },
        ],
    },
}
POLICIES = [*initspec.presets(), *CUSTOM]


def values_torch(model):
    return {k: v.detach().double().numpy() for k, v in model.named_parameters()}


def values_flax(model):
    return {
        ".".join(map(str, p)): np.asarray(v[...], dtype=np.float64)
        for p, v in nnx.iter_graph(model)
        if isinstance(v, nnx.Param)
    }


@pytest.mark.parametrize("twin", list(TWINS))
@pytest.mark.parametrize("policy_name", POLICIES)
def test_port_per_parameter(twin: str, policy_name: str) -> None:
    policy = CUSTOM.get(policy_name, policy_name)
    tmodel, fmodel = TWINS[twin][0](), TWINS[twin][1]()
    try:
        treport = initspec_torch.apply(policy, tmodel, seed=7)
    except initspec.ResolutionError as terr:
        # A policy that cannot handle the torch model cannot handle its twin either, for the
        # same parameters (e.g. gpt2's depth scaling on a model without h.* blocks).
        with pytest.raises(initspec.ResolutionError) as ferr:
            initspec_jax.apply_nnx(policy, fmodel, seed=7)
        assert len(ferr.value.problems) == len(terr.problems)
        return
    freport = initspec_jax.apply_nnx(policy, fmodel, seed=7)
    trows = {r["path"]: r for r in treport.rows()}
    frows = {r["path"]: r for r in freport.rows()}
    assert len(trows) == len(frows)
    tvals, fvals = values_torch(tmodel), values_flax(fmodel)
    for path, tr in trows.items():
        owner, leaf = path.rsplit(".", 1)
        twin_path = next(
            (f"{owner}.{alt}" for alt in LEAF[leaf] if f"{owner}.{alt}" in frows), None
        )
        assert twin_path is not None, path
        fr = frows[twin_path]
        assert (tr["status"], tr["rule_index"], tr["plan"]) == (
            fr["status"],
            fr["rule_index"],
            fr["plan"],
        ), (path, tr, fr)
        if tr["status"] != "init":
            continue
        a, b = tvals[path].ravel(), fvals[twin_path].ravel()
        if np.all(a == a[0]):
            np.testing.assert_array_equal(b, a[0], err_msg=path)
        else:
            p = stats.ks_2samp(a, b).pvalue
            assert p > 1e-4, f"{path} vs {twin_path}: KS p = {p:.2e} ({tr['plan']})"
