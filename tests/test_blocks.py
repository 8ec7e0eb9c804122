"""Logical blocks of fused parameters (issue 20, item 1): a fused parameter initialized block
by block with ``rng="portable"`` is bit-identical to the concatenation of the separate
parameters of the unfused twin (named by the blocks' key paths through ``path_map``), in
torch and in Flax, on real model code: HF GPT-2's ``Conv1D`` ``c_attn`` (stored (in, 3d)),
torchtitan 0.3.0's grouped-query ``wqkv`` against its own ``wq``/``wk``/``wv``, a Llama
gate/up projection; also stacked experts, an LSTM forget-gate slice, per-block fans in the
report, shards of a fused parameter, and bad input (an ``InitSpecError`` naming the rule,
the parameter and the numbers, nothing written).
"""

from __future__ import annotations

import json
import math
import warnings
from typing import Any

import numpy as np
import pytest

import initspec
from initspec import GlobalShard, InitSpecError, InitSpecWarning

torch = pytest.importorskip("torch")
initspec_torch = pytest.importorskip("initspec_torch")
nn = torch.nn

D = 16  # model width of the small twins
SEED = 7


def quiet(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call ``fn`` with the InitSpecWarning for rules a twin does not use silenced (each
    policy below serves both the fused model and its twin)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InitSpecWarning)
        return fn(*args, **kwargs)


def snapshot(module: nn.Module) -> dict[str, bytes]:
    return {k: v.detach().numpy().tobytes() for k, v in module.state_dict().items()}


# --- GPT-2 (HF Conv1D, stored (in, 3d)) -----------------------------------------------

GPT2_POLICY = {
    "initspec": 1,
    "rules": [
        # xavier depends on both fans: per block (D, D), not the fused (D, 3D)
        {
            "match": {"path": ["*.c_attn.weight"]},
            "init": {"kind": "xavier_normal"},
            "blocks": {"axis": "out", "split": ["q", "k", "v"]},
        },
        {
            "match": {"path": ["*.c_attn.bias"]},
            "init": {"kind": "normal", "std": 0.5},
            "blocks": {"axis": "out", "split": ["q", "k", "v"]},
        },
        # the twin's separate parameters, named by the blocks' key paths
        {"match": {"path": ["*.c_attn.weight.*"]}, "init": {"kind": "xavier_normal"}},
        {"match": {"path": ["*.c_attn.bias.*"]}, "init": {"kind": "normal", "std": 0.5}},
    ],
}


def gpt2(n_layer: int = 2) -> nn.Module:
    pytest.importorskip("transformers")
    from transformers import GPT2Config, GPT2Model

    cfg = GPT2Config(n_embd=D, n_layer=n_layer, n_head=2, vocab_size=64, n_positions=16)
    return GPT2Model(cfg)


class SeparateQKV(nn.Module):
    """The unfused twin of GPT-2's attention projections: h.{i}.attn.{q,k,v}, each an HF
    Conv1D(D, D) (weight stored (in, out), as c_attn's)."""

    def __init__(self, n_layer: int) -> None:
        super().__init__()
        from transformers.pytorch_utils import Conv1D

        self.h = nn.ModuleList(
            nn.ModuleDict({"attn": nn.ModuleDict({n: Conv1D(D, D) for n in "qkv"})})
            for _ in range(n_layer)
        )


def qkv_map(n_layer: int, local: str, fused: str, leaves: tuple[str, ...]) -> dict[str, str]:
    """``h.{i}.attn.{q}.weight`` -> ``h.{i}.attn.c_attn.weight.q`` (and so for k, v, bias)."""
    return {
        local.format(i=i, n=n, leaf=leaf): fused.format(i=i, n=n, leaf=leaf)
        for i in range(n_layer)
        for n in "qkv"
        for leaf in leaves
    }


def test_gpt2_c_attn_equals_its_separate_qkv_twin_and_has_per_block_fans() -> None:
    model, twin = gpt2(), SeparateQKV(2)
    report = quiet(initspec_torch.apply, GPT2_POLICY, model, SEED, rng="portable")
    quiet(
        initspec_torch.apply,
        GPT2_POLICY,
        twin,
        SEED,
        rng="portable",
        path_map=qkv_map(
            2, "h.{i}.attn.{n}.{leaf}", "h.{i}.attn.c_attn.{leaf}.{n}", ("weight", "bias")
        ),
    )
    for i in range(2):
        fused = model.h[i].attn.c_attn
        parts = twin.h[i]["attn"]
        w = torch.cat([parts[n].weight for n in "qkv"], dim=1)  # Conv1D: (in, out)
        b = torch.cat([parts[n].bias for n in "qkv"], dim=0)
        assert torch.equal(fused.weight, w)
        assert torch.equal(fused.bias, b)
    rows = {r["path"]: r for r in report.rows()}
    q = rows["h.0.attn.c_attn.weight.q"]
    assert q["block_of"] == "h.0.attn.c_attn.weight"
    assert q["fans"] == [D, D] and q["shape"] == [D, D]
    assert q["region"] == {"axis": 1, "start": 0, "stop": D, "squeeze": False, "overlay": False}
    assert rows["h.0.attn.c_attn.weight"]["fans"] == [D, 3 * D]
    # xavier_normal per block: sqrt(2 / (D + D)); on the fused fans it would be sqrt(2 / 4D)
    assert q["plan"].startswith(f"normal(mean=0, std={math.sqrt(2 / (2 * D)):.4g})")
    assert rows["h.1.attn.c_attn.bias.v"]["region"]["start"] == 2 * D
    parsed = json.loads(report.to_json())["parameters"]
    assert [r["path"] for r in parsed] == [r["path"] for r in report.rows()]
    assert "2 parameters" not in report.table() and "(12 blocks)" in report.table()


def test_gpt2_c_attn_in_flax_equals_torch() -> None:
    """The same policy on a Flax Dense(3D) kernel (stored (in, 3D), as Conv1D's weight)
    named like GPT-2's c_attn: the same values, bit for bit."""
    jax = pytest.importorskip("jax")
    import flax.linen as fnn
    import initspec_jax

    class Attn(fnn.Module):
        @fnn.compact
        def __call__(self, x: Any) -> Any:
            return fnn.Dense(3 * D, name="c_attn")(x)

    class H(fnn.Module):
        @fnn.compact
        def __call__(self, x: Any) -> Any:
            return Attn(name="attn")(x)

    model = gpt2(1)
    quiet(initspec_torch.apply, GPT2_POLICY, model, SEED, rng="portable")
    flax_model = fnn.Sequential([H()])
    params = flax_model.init(jax.random.key(0), np.ones((1, D), np.float32))
    tree = {"params": {"h": {"0": params["params"]["layers_0"]}}}  # canonical h.0.attn...
    new, report = quiet(initspec_jax.apply, GPT2_POLICY, tree, SEED, rng="portable")
    kernel = np.asarray(new["params"]["h"]["0"]["attn"]["c_attn"]["kernel"])
    bias = np.asarray(new["params"]["h"]["0"]["attn"]["c_attn"]["bias"])
    assert np.array_equal(kernel, model.h[0].attn.c_attn.weight.detach().numpy())
    assert np.array_equal(bias, model.h[0].attn.c_attn.bias.detach().numpy())
    assert [r["path"] for r in report.rows() if r.get("block_of")][:3] == [
        "h.0.attn.c_attn.weight.q",
        "h.0.attn.c_attn.weight.k",
        "h.0.attn.c_attn.weight.v",
    ]


# --- torchtitan 0.3.0: grouped-query wqkv against its own wq / wk / wv ------------------


def test_torchtitan_wqkv_equals_its_separate_wq_wk_wv_in_torch_and_flax() -> None:
    pytest.importorskip("torchtitan", reason="torchtitan (dev extra)")
    from test_presets_real import N_LAYERS, llama3_config

    fused = llama3_config(tied=False, fuse_qkv=True).build()
    separate = llama3_config(tied=False, fuse_qkv=False).build()
    wq = separate.layers["0"].attention.qkv_linear.wq.weight
    nq, nkv = wq.shape[0], separate.layers["0"].attention.qkv_linear.wk.weight.shape[0]
    policy = {
        "initspec": 1,
        "rules": [
            {
                "match": {"path": ["*.wqkv.weight"]},
                "init": {"kind": "kaiming_uniform", "a": 2.23606797749979},
                "blocks": {"split": [["q", nq], ["k", nkv], ["v", nkv]]},
            },
            {
                "match": {"path": ["*.wqkv.weight.*"]},
                "init": {"kind": "kaiming_uniform", "a": 2.23606797749979},
            },
            {"match": {}, "skip": True},
        ],
    }
    names = {
        f"layers.{i}.attention.qkv_linear.w{n}.weight": f"layers.{i}.attention.qkv_linear.wqkv.weight.{n}"
        for i in range(N_LAYERS)
        for n in "qkv"
    }
    report = quiet(initspec_torch.apply, policy, fused, SEED, rng="portable")
    quiet(initspec_torch.apply, policy, separate, SEED, rng="portable", path_map=names)
    for i in range(N_LAYERS):
        f = fused.layers[str(i)].attention.qkv_linear.wqkv.weight
        s = separate.layers[str(i)].attention.qkv_linear
        assert torch.equal(f, torch.cat([s.wq.weight, s.wk.weight, s.wv.weight], dim=0))
    rows = {r["path"]: r for r in report.rows()}
    assert rows["layers.0.attention.qkv_linear.wqkv.weight.k"]["shape"] == [nkv, wq.shape[1]]

    # Flax: a Dense kernel (in, nq + 2 nkv) under the same name, the same values transposed
    pytest.importorskip("flax")
    import initspec_jax

    dim = wq.shape[1]
    tree = {
        "layers": {
            "0": {
                "attention": {
                    "qkv_linear": {"wqkv": {"kernel": np.zeros((dim, nq + 2 * nkv), np.float32)}}
                }
            }
        }
    }
    new, _ = quiet(initspec_jax.apply, policy, tree, SEED, rng="portable")
    kernel = np.asarray(new["layers"]["0"]["attention"]["qkv_linear"]["wqkv"]["kernel"])
    assert np.array_equal(
        kernel.T, fused.layers["0"].attention.qkv_linear.wqkv.weight.detach().numpy()
    )


# --- Llama gate/up fused (w13) vs w1 / w3, torch and Flax nnx -----------------------------

HIDDEN = 24
GATE_UP = {
    "initspec": 1,
    "rules": [
        {
            "match": {"path": ["*.w13.weight"]},
            "init": {"kind": "trunc_normal", "std": 0.02},
            "blocks": {"split": ["gate", "up"], "init": {"up": {"kind": "he_normal"}}},
        },
        {"match": {"path": ["*.w13.weight.gate"]}, "init": {"kind": "trunc_normal", "std": 0.02}},
        {"match": {"path": ["*.w13.weight.up"]}, "init": {"kind": "he_normal"}},
        {"match": {}, "skip": True},
    ],
}
GATE_UP_MAP = {"ffn.w1.weight": "ffn.w13.weight.gate", "ffn.w3.weight": "ffn.w13.weight.up"}


class FusedFFN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.ffn = nn.ModuleDict({"w13": nn.Linear(D, 2 * HIDDEN, bias=False)})


class SeparateFFN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.ffn = nn.ModuleDict(
            {"w1": nn.Linear(D, HIDDEN, bias=False), "w3": nn.Linear(D, HIDDEN, bias=False)}
        )


def test_llama_gate_up_fused_equals_separate_in_torch_and_flax_nnx() -> None:
    fused, sep = FusedFFN(), SeparateFFN()
    quiet(initspec_torch.apply, GATE_UP, fused, SEED, rng="portable")
    quiet(initspec_torch.apply, GATE_UP, sep, SEED, rng="portable", path_map=GATE_UP_MAP)
    w = torch.cat([sep.ffn["w1"].weight, sep.ffn["w3"].weight], dim=0)
    assert torch.equal(fused.ffn["w13"].weight, w)

    pytest.importorskip("flax")
    import initspec_jax
    from flax import nnx

    class FlaxFused(nnx.Module):
        def __init__(self) -> None:
            self.ffn = nnx.Dict(w13=nnx.Linear(D, 2 * HIDDEN, use_bias=False, rngs=nnx.Rngs(0)))

    class FlaxSep(nnx.Module):
        def __init__(self) -> None:
            self.ffn = nnx.Dict(
                w1=nnx.Linear(D, HIDDEN, use_bias=False, rngs=nnx.Rngs(0)),
                w3=nnx.Linear(D, HIDDEN, use_bias=False, rngs=nnx.Rngs(1)),
            )

    ff, fs = FlaxFused(), FlaxSep()
    flax_map = {"ffn.w1.kernel": "ffn.w13.weight.gate", "ffn.w3.kernel": "ffn.w13.weight.up"}
    quiet(initspec_jax.apply_nnx, GATE_UP, ff, SEED, rng="portable")
    quiet(initspec_jax.apply_nnx, GATE_UP, fs, SEED, rng="portable", path_map=flax_map)
    kf = np.asarray(ff.ffn["w13"].kernel.get_value())
    ks = np.concatenate([np.asarray(fs.ffn[n].kernel.get_value()) for n in ("w1", "w3")], axis=1)
    assert np.array_equal(kf, ks)
    assert np.array_equal(kf.T, fused.ffn["w13"].weight.detach().numpy())


# --- experts, slices, shards ------------------------------------------------------------

E, OUT, IN = 4, 6, 10


class Stacked(nn.Module):
    """Stacked experts (E, out, in), as torchtitan's GroupedExperts stores w1."""

    def __init__(self) -> None:
        super().__init__()
        self.moe = nn.Module()
        self.moe.w1 = nn.Parameter(torch.empty(E, OUT, IN))


EXPERTS = {
    "initspec": 1,
    "rules": [
        {
            "match": {"path": ["moe.w1"]},
            "layout": {"in": [2], "out": [1], "batch": [0]},
            "init": {"kind": "kaiming_uniform", "a": 2.23606797749979},
            "blocks": {"experts": E},
        },
        {
            "match": {"path": ["moe.w1.*"]},
            "init": {"kind": "kaiming_uniform", "a": 2.23606797749979},
        },
    ],
}


def test_each_stacked_expert_equals_a_separate_linear_and_has_its_own_fans() -> None:
    stacked = Stacked()
    report = quiet(initspec_torch.apply, EXPERTS, stacked, SEED, rng="portable")
    rows = {r["path"]: r for r in report.rows()}
    assert rows["moe.w1.3"]["fans"] == [IN, OUT] and rows["moe.w1.3"]["shape"] == [OUT, IN]
    experts = nn.ModuleList(nn.Linear(IN, OUT, bias=False) for _ in range(E))
    quiet(
        initspec_torch.apply,
        EXPERTS,
        experts,
        SEED,
        rng="portable",
        path_map={f"{e}.weight": f"moe.w1.{e}" for e in range(E)},
    )
    assert torch.equal(stacked.moe.w1, torch.stack([m.weight for m in experts]))
    bound = 1 / math.sqrt(IN)  # kaiming_uniform(a=sqrt(5)) on an expert's fan_in = IN
    assert float(stacked.moe.w1.detach().abs().max()) <= bound


def test_lstm_forget_gate_slice_is_one_and_the_rest_is_the_rule_s() -> None:
    hidden = 6
    base = {"match": {"path": ["bias_*"]}, "init": {"kind": "uniform", "a": -0.5, "b": 0.5}}
    forget = {"name": "forget", "part": [1, 4], "init": {"kind": "constant", "value": 1.0}}
    for rng in ("portable", "native"):
        plain, gated = nn.LSTM(4, hidden), nn.LSTM(4, hidden)
        quiet(initspec_torch.apply, {"initspec": 1, "rules": [base]}, plain, SEED, rng=rng)
        report = quiet(
            initspec_torch.apply,
            {"initspec": 1, "rules": [{**base, "slices": [forget]}]},
            gated,
            SEED,
            rng=rng,
        )
        for name in ("bias_ih_l0", "bias_hh_l0"):
            b, p = getattr(gated, name), getattr(plain, name)
            assert torch.equal(b[hidden : 2 * hidden], torch.ones(hidden))
            keep = torch.cat([b[:hidden], b[2 * hidden :]])
            assert torch.equal(keep, torch.cat([p[:hidden], p[2 * hidden :]]))
            assert float(keep.detach().abs().max()) <= 0.5
        row = {r["path"]: r for r in report.rows()}["bias_ih_l0.forget"]
        assert row["region"]["overlay"] and row["region"]["start"] == hidden


def test_a_shard_of_a_fused_parameter_equals_that_slice_of_the_whole() -> None:
    """Rows [a, b) of a fused (q 64 | k 32 | v 32) weight held as a plain local tensor
    (path_map with a GlobalShard), crossing the q/k boundary: the values are those rows of
    the whole parameter, computed from the blocks' global indices."""
    policy = {
        "initspec": 1,
        "rules": [
            {
                "match": {"path": ["wqkv.weight"]},
                "init": {"kind": "normal", "std": 0.02},
                "blocks": {
                    "split": [["q", 64], ["k", 32], ["v", 32]],
                    "init": {"v": {"kind": "xavier_uniform"}},
                },
            }
        ],
    }
    whole = nn.Module()
    whole.wqkv = nn.Linear(16, 128, bias=False)
    quiet(initspec_torch.apply, policy, whole, SEED, rng="portable")
    for a, b in ((40, 100), (0, 64), (96, 128), (70, 80)):
        part = nn.Module()
        part.wqkv = nn.Linear(16, b - a, bias=False)
        shard = GlobalShard("wqkv.weight", (128, 16), (a, 0))
        report = quiet(
            initspec_torch.apply,
            policy,
            part,
            SEED,
            rng="portable",
            path_map={"wqkv.weight": shard},
        )
        assert torch.equal(part.wqkv.weight, whole.wqkv.weight[a:b]), (a, b)
        assert report.rows()[0]["shape"] == [128, 16]
    # the same shard in JAX (a local array of the global kernel)
    pytest.importorskip("flax")
    import initspec_jax

    tree = {"wqkv": {"kernel": np.zeros((16, 60), np.float32)}}
    new, _ = quiet(
        initspec_jax.apply,
        policy,
        tree,
        SEED,
        rng="portable",
        path_map={"wqkv.kernel": GlobalShard("wqkv.kernel", (16, 128), (0, 40))},
    )
    expect = whole.wqkv.weight[40:100].detach().numpy().T
    assert np.array_equal(np.asarray(new["wqkv"]["kernel"]), expect)


def test_a_shard_needs_the_portable_stream() -> None:
    part = nn.Linear(4, 3)
    before = snapshot(part)
    with pytest.raises(InitSpecError, match="needs rng='portable'"):
        quiet(
            initspec_torch.apply,
            {"initspec": 1, "rules": [{"match": {"path": ["weight"]}, "init": {"kind": "normal"}}]},
            part,
            path_map={"weight": GlobalShard("weight", (6, 4), (3, 0))},
        )
    assert snapshot(part) == before


# --- bad input: InitSpecError naming rule, parameter and numbers; nothing written -------


def _rule(**extra: Any) -> dict[str, Any]:
    return {"initspec": 1, "rules": [{"name": "qkv", "match": {"path": ["qkv.weight"]}, **extra}]}


BAD = [
    pytest.param(
        _rule(init={"kind": "normal"}, blocks={"split": [["q", 8], ["k", 8], ["v", 7]]}),
        ["rule #0 qkv", "qkv.weight (shape (24, 8)", "8 + 8 + 7 = 23", "(24)"],
        id="sizes-do-not-add-up",
    ),
    pytest.param(
        _rule(init={"kind": "normal"}, blocks={"split": 5}),
        ["rule #0 qkv", "qkv.weight", "24 is not divisible into 5 equal parts"],
        id="equal-split-does-not-divide",
    ),
    pytest.param(
        _rule(
            init={"kind": "normal"},
            slices=[{"name": "f", "start": 20, "stop": 30, "init": {"kind": "ones"}}],
        ),
        ["rule #0 qkv", "qkv.weight", "[20, 30) lies outside axis 0", "(size 24)"],
        id="slice-outside",
    ),
    pytest.param(
        {
            "initspec": 1,
            "rules": [
                {
                    "name": "qkv",
                    "match": {"path": ["qkv.bias"]},
                    "init": {"kind": "normal"},
                    "blocks": {"split": ["q", "k", "v"], "init": {"k": {"kind": "kaiming_normal"}}},
                }
            ],
        },
        [
            "rule #0 qkv",
            "qkv.bias (shape (24,)",
            "block 'k' (shape (8,), kaiming_normal)",
            "1 dims",
        ],
        id="block-spec-needs-more-dims",
    ),
    pytest.param(
        _rule(init={"kind": "normal"}, blocks={"experts": 24}),
        ["rule #0 qkv", "qkv.weight", "axis 0 of (24, 8) is the out axis of layout 'torch'"],
        id="expert-axis-is-out",
    ),
    pytest.param(
        _rule(init={"kind": "normal"}, blocks={"experts": 6}),
        ["rule #0 qkv", "experts: 6 but axis 0 of (24, 8) has 24 entries"],
        id="experts-count",
    ),
]


@pytest.mark.parametrize(("policy", "needles"), BAD)
def test_bad_blocks_name_rule_parameter_and_numbers_and_write_nothing(policy, needles) -> None:
    model = nn.Module()
    model.qkv = nn.Linear(8, 24)
    before = snapshot(model)
    with pytest.raises(InitSpecError) as err:
        quiet(initspec_torch.apply, policy, model, rng="portable")
    for needle in needles:
        assert needle in str(err.value), (needle, str(err.value))
    assert snapshot(model) == before


def test_path_map_mapping_two_locals_to_one_global_is_refused() -> None:
    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3))
    before = snapshot(model)
    policy = {"initspec": 1, "rules": [{"match": {}, "init": {"kind": "normal"}}]}
    with pytest.raises(
        InitSpecError, match=r"maps '0.weight' and '1.weight' to one global name 'w'"
    ):
        initspec_torch.apply(policy, model, path_map={"0.weight": "w", "1.weight": "w"})
    with pytest.raises(
        InitSpecError, match=r"maps '0.bias' and '1.bias' to one global name '1.bias'"
    ):
        initspec_torch.apply(policy, model, path_map={"0.bias": "1.bias"})
    with pytest.raises(
        InitSpecError, match=r"offset 2 \+ local size 3 = 5 exceeds the global size 4"
    ):
        initspec_torch.apply(
            policy, model, rng="portable", path_map={"0.weight": GlobalShard("w", (4, 3), (2, 0))}
        )
    assert snapshot(model) == before


def test_policy_shapes_of_blocks_are_validated_on_load() -> None:
    cases = [
        ({"split": ["q", "q"]}, "repeated: q"),
        ({"split": 2, "experts": 2}, "exactly one of split"),
        ({"split": ["q", "k"], "init": {"v": {"kind": "ones"}}}, "does not have"),
        ({"split": [["q", "x"]]}, "$.rules[0].blocks.split"),
    ]
    for blocks, needle in cases:
        with pytest.raises(initspec.PolicyError) as err:
            initspec.load_policy(_rule(init={"kind": "normal"}, blocks=blocks))
        assert needle in str(err.value), (blocks, str(err.value))
    with pytest.raises(initspec.PolicyError, match="init"):
        initspec.load_policy(_rule(blocks={"split": ["q", "k"], "init": {"q": {"kind": "ones"}}}))
    ok = initspec.load_policy(
        _rule(
            blocks={
                "split": ["q", "k"],
                "init": {"q": {"kind": "ones"}, "k": {"kind": "glorot_normal"}},
            }
        )
    )
    assert ok.rules[0].blocks is not None and ok.rules[0].init is None


def _blocked_model() -> nn.Module:
    model = nn.Module()
    model.qkv = nn.Linear(8, 24)
    with torch.no_grad():
        for t in model.parameters():
            t.copy_(torch.randn(t.shape, generator=torch.Generator().manual_seed(3)))
    return model


def _failing_apply(model: nn.Module, k: int, **kwargs: Any) -> tuple[Any, BaseException]:
    """Apply a q/k/v blocks policy with the k-th block write failing after half its block."""
    from test_atomicity import FailOn

    failing = FailOn(initspec_torch.portable.write_, k=k, midway=True)
    policy = _rule(init={"kind": "normal"}, blocks={"split": ["q", "k", "v"]})
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(initspec_torch.portable, "write_", failing)
        with pytest.raises(BaseException) as err:
            quiet(initspec_torch.apply, policy, model, rng="portable", **kwargs)
    return failing, err.value


@pytest.mark.parametrize("k", [1, 2, 3])
def test_a_failure_while_writing_a_block_with_backup_leaves_the_model_as_it_was(k: int) -> None:
    """The atomicity pattern of tests/test_atomicity.py on a blocked parameter, with
    ``atomic="backup"``: the k-th block write (of q, k, v) fails after writing half of its
    block; the fused weight and every other tensor are bit-identical to before (one copy of
    the fused weight, restored last), and the failure reaches the caller."""
    from test_atomicity import caused_by_injection

    model = _blocked_model()
    before = snapshot(model)
    failing, err = _failing_apply(model, k, atomic="backup")
    assert failing.fired and caused_by_injection(err)
    # everything restored: the write's own error, no PartialWriteError listing the blocks
    assert not isinstance(err, initspec.PartialWriteError), err
    assert snapshot(model) == before


@pytest.mark.parametrize("k", [1, 2, 3])
def test_a_failure_while_writing_a_block_in_place_names_the_fused_parameter(k: int) -> None:
    """By default (in place, no copy), a failure no check foresees cannot be undone: a
    ``PartialWriteError`` names the fused weight (the policy matches only it); nothing else
    changed."""
    from test_atomicity import caused_by_injection, named_in

    model = _blocked_model()
    before = snapshot(model)
    failing, err = _failing_apply(model, k)
    assert failing.fired and caused_by_injection(err)
    assert isinstance(err, initspec.PartialWriteError)
    assert set(named_in(err)) == {"qkv.weight"}
    after = snapshot(model)
    assert {n for n in before if after[n] != before[n]} == {"qkv.weight"}


def test_a_fused_parameter_is_copied_once_for_atomicity() -> None:
    """One job per block, one copy per parameter (the first job's, restored last)."""
    backend = initspec_torch.backend.TorchBackend()
    w = torch.zeros(6, 2)
    first, again = backend.snapshot(w), backend.snapshot(w)
    assert first is not None and again is None
    w.fill_(5.0)
    backend.restore(w, again)
    backend.restore(w, first)
    assert not w.any()


def test_native_stream_blocks_use_their_own_fans_in_torch_and_flax() -> None:
    """xavier_uniform per block: bound sqrt(6 / (D + D)); on the fused (3D, D) fans it would
    be sqrt(6 / 4D), 0.707 times smaller. All D * D values of a block lie inside the block
    bound, and some lie outside the fused one (a block drawn on the fused fans would have
    all D * D = 256 inside with probability 0.707**256 < 1e-38)."""
    policy = {
        "initspec": 1,
        "rules": [
            {
                "match": {"path": ["qkv.weight"]},
                "init": {"kind": "xavier_uniform"},
                "blocks": {"split": ["q", "k", "v"]},
            },
            {"match": {}, "skip": True},
        ],
    }
    block, fused = math.sqrt(6 / (2 * D)), math.sqrt(6 / (4 * D))
    model = nn.Module()
    model.qkv = nn.Linear(D, 3 * D)
    initspec_torch.apply(policy, model, SEED)
    again = nn.Module()
    again.qkv = nn.Linear(D, 3 * D)
    initspec_torch.apply(policy, again, SEED)
    w = model.qkv.weight.detach()
    assert torch.equal(w, again.qkv.weight)  # reproducible
    parts = [w[i * D : (i + 1) * D].numpy() for i in range(3)]
    pytest.importorskip("flax")
    import initspec_jax

    tree = {"qkv": {"kernel": np.zeros((D, 3 * D), np.float32)}}
    new, _ = initspec_jax.apply(policy, tree, SEED)
    kernel = np.asarray(new["qkv"]["kernel"])
    parts += [kernel[:, i * D : (i + 1) * D] for i in range(3)]
    for p in parts:
        assert np.abs(p).max() <= block and np.abs(p).max() > fused
    assert not np.array_equal(parts[0], parts[1])  # each block its own key


def test_a_block_of_a_dtensor_with_the_native_stream_is_refused_before_any_write() -> None:
    """The native stream cannot follow a DTensor's shards inside a block: refused by the
    checks (``TorchBackend.unwritable``), so nothing is written, not even the parameters
    that come before it."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Shard, distribute_tensor

    own = not dist.is_initialized()
    if own:
        dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        mesh = init_device_mesh("cpu", (1,))
        model = nn.Module()
        model.first = nn.Linear(4, 4)
        model.qkv = nn.Linear(8, 24)
        model.qkv.weight = nn.Parameter(distribute_tensor(model.qkv.weight.detach(), mesh, [Shard(0)]))
        before = {n: p.full_tensor().clone() if hasattr(p, "full_tensor") else p.detach().clone()
                  for n, p in model.named_parameters()}  # fmt: skip
        policy = {"initspec": 1, "rules": [
            {"match": {"path": ["qkv.weight"]}, "init": {"kind": "normal"},
             "blocks": {"split": ["q", "k", "v"]}},
            {"match": {"path": ["*"]}, "init": {"kind": "zeros"}},
        ]}  # fmt: skip
        with pytest.raises(InitSpecError, match="of a DTensor needs rng='portable'"):
            quiet(initspec_torch.apply, policy, model)
        for n, p in model.named_parameters():
            value = p.full_tensor() if hasattr(p, "full_tensor") else p.detach()
            assert torch.equal(value, before[n]), n
    finally:
        if own:
            dist.destroy_process_group()
