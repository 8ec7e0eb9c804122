"""Real model code described right (#16 item 1 and the Python registry of item 2): HF
Conv1D, wrappers, parametrizations, parameters sharing memory, register_module."""

from __future__ import annotations

import copy
import math

import initspec_torch
import pytest
import torch
from initspec_torch.describe import describe, register_module
from torch import nn
from torch.nn.utils.parametrizations import orthogonal, weight_norm

import initspec
from initspec import BackendError, PartialWriteError, ResolutionError

KAIMING = {
    "initspec": 1,
    "rules": [
        {"match": {"kind": "linear", "role": "kernel"}, "init": {"kind": "kaiming_normal"}},
        {"match": {"role": "bias"}, "init": {"kind": "torch_linear_bias"}},
    ],
}


def conv1d() -> type[nn.Module]:
    pytest.importorskip("transformers")
    from transformers.pytorch_utils import Conv1D

    return Conv1D  # type: ignore[no-any-return]


def test_hf_conv1d_is_a_linear_stored_in_out() -> None:
    """GPT2Config(n_embd=64)'s c_fc is Conv1D(4 * 64, 64), weight (64, 256) = (in, out):
    fan_in 64, so kaiming_normal's std is sqrt(2 / 64) = 0.177 (was 0.0884 with the torch
    (out, in) layout read on it), as the (out, in) Linear of the same layer."""
    Conv1D = conv1d()

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c_fc = Conv1D(256, 64)
            self.fc = nn.Linear(64, 256)

    rows = {r["path"]: r for r in initspec_torch.explain(KAIMING, Block()).rows()}
    assert rows["c_fc.weight"]["kind"] == "linear"
    assert rows["c_fc.weight"]["layout"] == "torch_transposed"
    assert rows["c_fc.weight"]["fans"] == rows["fc.weight"]["fans"] == [64, 256]
    assert rows["c_fc.weight"]["plan"] == rows["fc.weight"]["plan"]
    assert f"std={math.sqrt(2 / 64):.4g}" in rows["c_fc.weight"]["plan"]
    # the bias takes the fans of its (in, out) weight
    assert rows["c_fc.bias"]["plan"] == rows["fc.bias"]["plan"]


def test_hf_conv1d_and_its_flax_dense_twin_have_one_plan_and_one_portable_stream() -> None:
    """The port: Flax Dense(256) on 64 features has kernel (64, 256), the same storage order
    as Conv1D's weight: same plan, and with rng='portable' the same values."""
    Conv1D = conv1d()
    pytest.importorskip("flax")
    import initspec_jax
    import jax.numpy as jnp
    from flax import nnx

    class TorchBlock(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c_fc = Conv1D(256, 64)

    class FlaxBlock(nnx.Module):
        def __init__(self) -> None:
            self.c_fc = nnx.Linear(64, 256, rngs=nnx.Rngs(0))

    t, f = TorchBlock(), FlaxBlock()
    policy = {
        "initspec": 1,
        "rules": [
            {"match": {"kind": "linear", "role": "kernel"}, "init": {"kind": "kaiming_normal"}},
            {"match": {"role": "bias"}, "init": {"kind": "zeros"}},
        ],
    }
    rt = initspec_torch.apply(policy, t, seed=3, rng="portable")
    rf = initspec_jax.apply_nnx(policy, f, seed=3, rng="portable")
    plans_t = {r["path"]: r["plan"] for r in rt.rows()}
    plans_f = {r["path"].replace("kernel", "weight"): r["plan"] for r in rf.rows()}
    assert plans_t["c_fc.weight"] == plans_f["c_fc.weight"]
    import numpy as np

    flax_kernel = np.array(jnp.asarray(f.c_fc.kernel.get_value()))
    assert np.array_equal(t.c_fc.weight.detach().numpy(), flax_kernel)


def _values(m: nn.Module) -> dict[str, torch.Tensor]:
    return {p.info.path: p.tensor.detach().clone() for p in describe(m)}


def test_hf_gpt2_from_config_conv1d_fans() -> None:
    """HF GPT2LMHeadModel(GPT2Config(n_embd=64)): c_fc.weight (64, 256) has fan_in 64 and
    kaiming_normal std sqrt(2 / 64) = 0.177 (0.0884 with torch's layout read on it); the tied
    lm_head is one parameter."""
    transformers = pytest.importorskip("transformers")
    cfg = transformers.GPT2Config(n_embd=64, n_layer=2, n_head=2, vocab_size=100, n_positions=16)
    model = transformers.GPT2LMHeadModel(cfg)
    policy = {"initspec": 1, "rules": [KAIMING["rules"][0], {"init": {"kind": "zeros"}}]}
    rows = {r["path"]: r for r in initspec_torch.explain(policy, model).rows()}
    c_fc = rows["transformer.h.0.mlp.c_fc.weight"]
    assert (c_fc["kind"], c_fc["fans"]) == ("linear", [64, 256])
    assert f"std={math.sqrt(2 / 64):.4g}" in c_fc["plan"]
    assert rows["transformer.wte.weight"]["shared_with"] == ["lm_head.weight"]


@pytest.mark.parametrize("wrap", ["DataParallel", "compile", "checkpoint_wrapper"])
def test_wrappers_keep_paths_plans_and_values(wrap: str) -> None:
    """A wrapped model is described with the bare model's paths (the framework path keeps
    the wrapper's), so a depth-scaled policy matches and per-path seeds stay."""

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = nn.ModuleList(nn.Linear(8, 8) for _ in range(3))

    policy = {
        "initspec": 1,
        "rules": [
            {
                "match": {"path": ["layers.*.weight"]},
                "init": {"kind": "normal", "std": 0.02},
                "depth_scale": {"n_layers": "count:layers.*"},
            },
            {"match": {"role": "bias"}, "init": {"kind": "zeros"}},
        ],
        "unmatched": "error",
    }
    bare = Net()
    wrapped_inner = copy.deepcopy(bare)
    wrapped: nn.Module
    if wrap == "DataParallel":
        wrapped, prefix = nn.DataParallel(wrapped_inner), "module."
    elif wrap == "compile":
        wrapped, prefix = torch.compile(wrapped_inner), "_orig_mod."  # type: ignore[assignment]
    else:
        from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import (
            checkpoint_wrapper,
        )

        # it names parameters without its attribute already (its named_parameters strips it)
        wrapped, prefix = checkpoint_wrapper(wrapped_inner), ""
    r_bare = initspec_torch.apply(policy, bare, seed=5)
    r_wrap = initspec_torch.apply(policy, wrapped, seed=5)
    for a, b in zip(r_bare.rows(), r_wrap.rows(), strict=True):
        assert a["path"] == b["path"] and a["plan"] == b["plan"]
        assert b["framework_path"] == prefix + a["path"]
    got, want = _values(wrapped), _values(bare)
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)


def test_parametrized_weight_is_the_owners_kernel() -> None:
    lin = nn.Linear(5, 5)
    orthogonal(lin)
    described = {p.info.path: p.info for p in describe(lin)}
    info = described["weight"]
    assert (info.kind, info.role, info.layout) == ("linear", "kernel", "torch")
    assert info.framework_path == "parametrizations.weight.original"


def test_weight_norm_writes_v_and_sets_g_to_its_norm() -> None:
    """weight_norm's v is the weight a policy describes; g is set to ||v|| (as weight_norm
    does when applied), so the effective weight is exactly v: N(0, 0.5^2) here."""
    lin = nn.Linear(64, 48)
    weight_norm(lin)
    report = initspec_torch.apply(
        {
            "initspec": 1,
            "rules": [
                {"match": {"role": "kernel"}, "init": {"kind": "normal", "std": 0.5}},
                {"match": {"role": "bias"}, "init": {"kind": "zeros"}},
            ],
            "unmatched": "error",
        },
        lin,
        seed=1,
    )
    assert {r["path"] for r in report.rows()} == {"weight", "bias"}
    framework = {r["path"]: r["framework_path"] for r in report.rows()}
    assert framework["weight"] == (
        "parametrizations.weight.original1 (and parametrizations.weight.original0 = its norm)"
    )
    v = lin.parametrizations.weight.original1.detach()
    assert torch.allclose(lin.weight.detach(), v, rtol=1e-6, atol=1e-7)
    # 3072 draws: the std's standard error is 0.5 / sqrt(2 * 3072) = 0.0064; 5 SE = 0.032
    assert abs(float(v.std()) - 0.5) < 0.032


def test_weight_norm_g_is_restored_with_v_when_a_later_write_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    import initspec_torch.backend as backend

    lin = nn.Sequential(nn.Linear(6, 6), nn.Linear(6, 6))
    weight_norm(lin[0])
    before = {k: v.clone() for k, v in lin.state_dict().items()}
    real, calls = backend.TorchNative, {"n": 0}

    def failing(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("injected")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(backend, "TorchNative", failing)
    with pytest.raises(RuntimeError, match="injected"):
        initspec_torch.apply("torch-defaults", lin, seed=1, atomic="backup")
    after = lin.state_dict()
    assert all(torch.equal(after[k], before[k]) for k in before)
    # the default writes in place: the error names what it wrote (v, whose g follows it)
    calls["n"] = 0
    with pytest.raises(PartialWriteError, match="0.weight: written in place"):
        initspec_torch.apply("torch-defaults", lin, seed=1)


def test_parameters_sharing_memory_are_refused() -> None:
    class Shared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            base = torch.zeros(4, 3)
            self.p = nn.Parameter(base)
            self.q = nn.Parameter(base.data[:2])

    with pytest.raises(ResolutionError, match="sharing memory"):
        initspec_torch.apply("torch-defaults", Shared())


def test_register_module_describes_an_unknown_class() -> None:
    class MyProj(nn.Module):  # stores its weight (in, out), like HF Conv1D
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.empty(16, 32))

    class Sub(MyProj):
        pass

    assert describe(Sub())[0].info.kind == "other"
    register_module("MyProj", kind="linear", layout="torch_transposed")
    try:
        info = describe(Sub())[0].info  # matched through a base class's name
        assert (info.kind, info.role, info.layout) == ("linear", "kernel", "torch_transposed")
        from initspec.layout import fans

        assert fans(info.shape, info.layout) == (16, 32)
    finally:
        import importlib

        module = importlib.import_module("initspec_torch.describe")
        module._REGISTERED.pop("MyProj")
        module._description.cache_clear()
    with pytest.raises(BackendError, match="kind 'dense' is not one of"):
        register_module("MyProj", kind="dense")


def test_jax_register_module_describes_an_unknown_class() -> None:
    pytest.importorskip("flax")
    import initspec_jax
    import jax.numpy as jnp
    from flax import nnx
    from initspec_jax import describe as jdescribe

    class Proj(nnx.Module):  # a custom projection holding a (out, in) kernel
        def __init__(self) -> None:
            self.kernel = nnx.Param(jnp.zeros((32, 16)))

    class Net(nnx.Module):
        def __init__(self) -> None:
            self.proj = Proj()

    assert initspec_jax.describe_nnx(Net())[0].info.kind == "other"
    initspec_jax.register_module("Proj", kind="linear", layout="torch")
    try:
        info = initspec_jax.describe_nnx(Net())[0].info
        assert (info.kind, info.role, info.layout) == ("linear", "kernel", "torch")
    finally:
        jdescribe._REGISTERED.pop("Proj")


def test_policy_modules_describe_an_unknown_class_as_data() -> None:
    """``"modules"`` in the policy: the class (matched through a base class's name) becomes a
    linear stored (in, out); its bias takes the fans of that kernel."""

    class ProjBase(nn.Module):
        pass

    class MyProj(ProjBase):
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.empty(16, 32))  # (in, out)
            self.bias = nn.Parameter(torch.empty(32))

    policy = {
        "initspec": 1,
        "modules": {"ProjBase": {"kind": "linear", "layout": "torch_transposed"}},
        "rules": [
            {"match": {"kind": "linear", "role": "kernel"}, "init": {"kind": "kaiming_normal"}},
            {"match": {"kind": "linear", "role": "bias"}, "init": {"kind": "torch_linear_bias"}},
        ],
        "strict": True,
    }
    model = nn.Module()
    model.proj = MyProj()
    rows = {r["path"]: r for r in initspec_torch.explain(policy, model).rows()}
    assert rows["proj.weight"]["fans"] == [16, 32]
    assert f"std={math.sqrt(2 / 16):.4g}" in rows["proj.weight"]["plan"]
    assert f"high={1 / math.sqrt(16):.4g}" in rows["proj.bias"]["plan"]


def test_rule_layout_overrides_the_description() -> None:
    """A Linear weight read as (in, out) by the rule that matches it."""
    policy = {"initspec": 1, "rules": [
        {"match": {"role": "kernel"}, "layout": "torch_transposed", "init": {"kind": "kaiming_normal"}},
        {"match": {"role": "bias"}, "init": {"kind": "zeros"}},
    ]}  # fmt: skip
    rows = {r["path"]: r for r in initspec_torch.explain(policy, nn.Linear(8, 2)).rows()}
    assert rows["weight"]["fans"] == [2, 8]
    assert f"std={math.sqrt(2 / 2):.4g}" in rows["weight"]["plan"]


def test_bad_module_description_is_a_policy_error() -> None:
    from initspec import PolicyError, load_policy

    with pytest.raises(PolicyError, match=r"modules\.MyProj\.kind"):
        load_policy({"initspec": 1, "modules": {"MyProj": {"kind": "dense"}}})
    with pytest.raises(PolicyError, match=r"rules\[0\]\.layout"):
        load_policy({"initspec": 1, "rules": [{"init": {"kind": "zeros"}, "layout": "sideways"}]})


def test_nnx_param_holding_a_python_number_is_a_0d_parameter() -> None:
    pytest.importorskip("flax")
    import initspec_jax
    from flax import nnx

    class M(nnx.Module):
        def __init__(self) -> None:
            self.temperature = nnx.Param(3.0)

    m = M()
    report = initspec_jax.apply_nnx(
        {"initspec": 1, "rules": [{"init": {"kind": "constant", "value": 0.5}}]}, m
    )
    assert report.rows()[0]["shape"] == [] and float(m.temperature.get_value()) == 0.5


def test_spec_json_text_refuses_duplicate_keys() -> None:
    with pytest.raises(initspec.SpecError, match="duplicate key"):
        initspec.parse('{"kind": "normal", "kind": "zeros"}')


def test_embedding_bag_padding_row_is_zeroed_by_torch_defaults() -> None:
    bag = nn.EmbeddingBag(10, 4, padding_idx=2)
    initspec_torch.apply("torch-defaults", bag, seed=0)
    assert float(bag.weight[2].abs().sum()) == 0 and float(bag.weight[3].abs().sum()) > 0
