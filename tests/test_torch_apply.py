"""initspec_torch.apply: parameter descriptions, torch-defaults parity, tied weights, all or
nothing, seeds, meta tensors, the report, CUDA.

Distribution checks are two-sample KS tests against a freshly constructed torch layer,
passing at p > 1e-4 as PyTorch's own init tests; plans are compared with torch's formulas
exactly (to float rounding).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
import torch
from initspec_torch import apply, describe, init_
from scipy import stats  # type: ignore[import-untyped]
from torch import nn

from initspec import BackendError, InitSpecError, PolicyError, ResolutionError, derive_seed
from initspec.plans import ConstantPlan, NormalPlan, UniformPlan

KS_P_MIN = 1e-4
SEED = 2024

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


class ScaleNorm(nn.Module):
    """A user-defined norm, as LLaMA's RMSNorm: recognized by its class name."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))


class Net(nn.Module):
    """One of every module kind apply knows, with the embedding tied to the output head."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(500, 64)
        self.conv = nn.Conv2d(16, 32, 3)
        self.up = nn.ConvTranspose2d(32, 16, 3)
        self.norm = nn.LayerNorm(64)
        self.bn = nn.BatchNorm2d(32)
        self.attn = nn.MultiheadAttention(64, 4, add_bias_kv=True)
        self.lstm = nn.LSTM(64, 96)
        self.scale = ScaleNorm(64)
        self.head = nn.Linear(64, 500)
        self.head.weight = self.emb.weight


def build(seed: int = 0, device: str = "cpu") -> Net:
    """A Net with torch's own initialization, built under a pinned global seed."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Net().to(device)


def state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def assert_same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


# Descriptions -----------------------------------------------------------------------------

EXPECTED: dict[str, tuple[str, str, str]] = {
    # path: (kind, role, layout)
    "emb.weight": ("embedding", "embedding", "embedding"),
    "conv.weight": ("conv", "kernel", "torch"),
    "conv.bias": ("conv", "bias", "torch"),
    "up.weight": ("conv_transpose", "kernel", "torch_transposed"),
    "up.bias": ("conv_transpose", "bias", "torch"),
    "norm.weight": ("norm", "scale", "torch"),
    "norm.bias": ("norm", "bias", "torch"),
    "bn.weight": ("norm", "scale", "torch"),
    "bn.bias": ("norm", "bias", "torch"),
    "attn.in_proj_weight": ("attention", "kernel", "torch"),
    "attn.in_proj_bias": ("attention", "bias", "torch"),
    "attn.bias_k": ("attention", "bias", "torch"),
    "attn.bias_v": ("attention", "bias", "torch"),
    "attn.out_proj.weight": ("linear", "kernel", "torch"),
    "attn.out_proj.bias": ("linear", "bias", "torch"),
    "lstm.weight_ih_l0": ("rnn", "kernel", "torch"),
    "lstm.weight_hh_l0": ("rnn", "kernel", "torch"),
    "lstm.bias_ih_l0": ("rnn", "bias", "torch"),
    "lstm.bias_hh_l0": ("rnn", "bias", "torch"),
    "scale.weight": ("norm", "scale", "torch"),
    "head.bias": ("linear", "bias", "torch"),
}


def test_describe_kinds_roles_layouts_and_context() -> None:
    params = {p.info.path: p.info for p in describe(build())}
    assert list(params) == list(EXPECTED)
    for path, (kind, role, layout) in EXPECTED.items():
        info = params[path]
        assert (info.kind, info.role, info.layout) == (kind, role, layout), path
        assert info.dtype == "float32" and info.device == "cpu"
    # The tied head weight is described once, under the first name.
    assert params["emb.weight"].shared_with == ("head.weight",)
    # Rules can match a base class: MHA's out_proj is a Linear subclass.
    assert params["attn.out_proj.weight"].module_types[:2] == (
        "NonDynamicallyQuantizableLinear",
        "Linear",
    )
    # Biases carry the fans of their weight, in that weight's layout; RNNs their hidden size.
    assert params["conv.bias"].context.weight_fans == (16 * 9, 32 * 9)
    assert params["up.bias"].context.weight_fans == (32 * 9, 16 * 9)
    assert params["head.bias"].context.weight_fans == (64, 500)
    assert params["attn.in_proj_bias"].context.weight_fans == (64, 192)
    assert params["attn.bias_k"].context.weight_fans is None
    assert params["lstm.bias_hh_l0"].context.hidden_size == 96


def test_describe_refuses_a_non_module() -> None:
    with pytest.raises(BackendError, match="nn.Module"):
        describe(torch.zeros(3))  # type: ignore[arg-type]


# torch-defaults reproduces reset_parameters ------------------------------------------------


def torch_bound(path: str, net: Net) -> float:
    """The bound torch's reset_parameters uses, from torch's own fan function."""
    fan_in = nn.init._calculate_fan_in_and_fan_out
    if path.startswith("lstm."):
        return 1.0 / math.sqrt(net.lstm.hidden_size)
    if path == "attn.in_proj_weight":
        fi, fo = fan_in(net.attn.in_proj_weight)
        return math.sqrt(6.0 / (fi + fo))
    owner = net.get_submodule(path.rpartition(".")[0])
    weight = owner.weight
    assert isinstance(weight, torch.Tensor)
    return 1.0 / math.sqrt(fan_in(weight)[0])


def test_torch_defaults_matches_reset_parameters() -> None:
    reference = build(seed=1)
    ours = build(seed=2)
    report = apply("torch-defaults", ours, seed=SEED)
    rows = {r.info.path: r for r in report.resolution.params}
    assert report.unmatched == 0
    theirs = dict(reference.named_parameters())
    for path, param in ours.named_parameters():
        plan = rows[path].plan
        if isinstance(plan, UniformPlan):
            bound = torch_bound(path, reference)
            assert math.isclose(plan.high, bound, rel_tol=1e-12) and plan.low == -plan.high, path
            assert float(param.detach().abs().max()) < bound, path
        if isinstance(plan, ConstantPlan):
            assert torch.equal(param, theirs[path]), path
        else:
            p = stats.ks_2samp(param.detach().ravel(), theirs[path].detach().ravel()).pvalue
            assert p > KS_P_MIN, (path, p)
    # Embedding N(0, 1); bias_k / bias_v xavier_normal with torch's fans (E, E): std sqrt(1/E).
    emb_plan = rows["emb.weight"].plan
    assert isinstance(emb_plan, NormalPlan) and (emb_plan.loc, emb_plan.scale) == (0.0, 1.0)
    bias_k = rows["attn.bias_k"].plan
    assert isinstance(bias_k, NormalPlan) and math.isclose(bias_k.scale, math.sqrt(1 / 64))


def test_tied_weights_initialized_once_and_reported() -> None:
    net = build()
    report = apply("torch-defaults", net, seed=SEED)
    assert net.head.weight is net.emb.weight
    paths = [r.info.path for r in report.resolution.params]
    assert "head.weight" not in paths and len(paths) == len(set(paths))
    row = next(r for r in report.to_dict()["parameters"] if r["path"] == "emb.weight")
    assert row["shared_with"] == ["head.weight"]
    assert "emb.weight (= head.weight)" in report.table()
    # Written once, from the generator of its first name: init_ with the same seed and path
    # gives the same bits.
    alone = init_(torch.empty(500, 64), {"kind": "normal"}, seed=SEED, path="emb.weight")
    assert torch.equal(net.emb.weight, alone)


# All or nothing -------------------------------------------------------------------------------


class WithCounter(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 16)
        self.steps = nn.Parameter(torch.zeros(3, dtype=torch.int64), requires_grad=False)


def rules(*items: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"initspec": 1, "rules": list(items), **extra}


# name: (model factory, policy, error class, fragments the message must contain)
BAD_POLICIES: dict[str, tuple[Callable[[], nn.Module], Any, type[Exception], list[str]]] = {
    "invalid_policy": (
        lambda: nn.Linear(8, 16),
        rules({"match": {}, "init": {"kind": "normal", "std": -1.0}}),
        PolicyError,
        ["$.rules[0].init.std"],
    ),
    # The weight (first) is fine; the bias (last) cannot take a fan-based spec.
    "fan_based_on_bias": (
        lambda: nn.Linear(8, 16),
        rules({"name": "everything", "match": {}, "init": {"kind": "kaiming_normal"}}),
        ResolutionError,
        ["bias", "(16,)", "#0 everything", "kaiming_normal"],
    ),
    "integer_parameter": (
        WithCounter,
        rules({"name": "all", "match": {}, "init": {"kind": "zeros"}}),
        ResolutionError,
        ["steps", "(3,)", "#0 all", "int64"],
    ),
    "overflow_in_half_precision": (
        lambda: nn.Linear(8, 16).half(),
        rules(
            {"match": {"role": "kernel"}, "init": {"kind": "zeros"}},
            {"name": "huge", "match": {"role": "bias"}, "init": {"kind": "constant", "value": 1e5}},
        ),
        ResolutionError,
        ["bias", "(16,)", "#1 huge", "float16", "overflow"],
    ),
    "unmatched_error": (
        lambda: nn.Linear(8, 16),
        rules({"match": {"role": "kernel"}, "init": {"kind": "zeros"}}, unmatched="error"),
        ResolutionError,
        ["bias", "no rule matches"],
    ),
    "bias_without_a_weight": (
        lambda: nn.MultiheadAttention(8, 2, add_bias_kv=True),
        rules({"name": "b", "match": {"role": "bias"}, "init": {"kind": "torch_linear_bias"}}),
        ResolutionError,
        ["bias_k", "(1, 1, 8)", "#0 b", "weight_fans"],
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_POLICIES))
def test_error_leaves_state_dict_bit_identical(name: str) -> None:
    factory, policy, error, fragments = BAD_POLICIES[name]
    module = factory()
    before = state(module)
    with pytest.raises(error) as info:
        apply(policy, module, seed=SEED)
    assert isinstance(info.value, InitSpecError)
    for fragment in fragments:
        assert fragment in str(info.value), fragment
    assert_same_state(state(module), before)


# Seeds ------------------------------------------------------------------------------------


def test_same_seed_same_bits_other_seed_other_bits() -> None:
    a, b, c = build(1), build(2), build(3)
    apply("torch-defaults", a, seed=7)
    apply("torch-defaults", b, seed=7)
    apply("torch-defaults", c, seed=8)
    assert_same_state(state(a), state(b))
    assert not torch.equal(a.conv.weight, c.conv.weight)


def test_policy_seed_is_the_default() -> None:
    policy = rules({"match": {}, "init": {"kind": "uniform"}}, seed=99)
    a, b = nn.Linear(4, 6), nn.Linear(4, 6)
    assert apply(policy, a).resolution.seed == 99
    apply(policy, b, seed=99)
    assert torch.equal(a.weight, b.weight)


def test_adding_a_layer_does_not_change_the_others() -> None:
    small = nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 5))
    large = nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 5), nn.Linear(5, 5))
    apply("torch-defaults", small, seed=3)
    apply("torch-defaults", large, seed=3)
    for key, value in small.state_dict().items():
        assert torch.equal(value, large.state_dict()[key]), key


def test_global_rng_state_untouched() -> None:
    before = torch.get_rng_state()
    apply("torch-defaults", build(), seed=5)
    assert torch.equal(torch.get_rng_state(), before)


_DIGEST = """
import hashlib, torch
from torch import nn
import initspec_torch
torch.manual_seed(GLOBAL_SEED)  # the global state must not matter
net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(8, 4), nn.LSTM(4, 6))
initspec_torch.apply("torch-defaults", net, seed=11)
digest = hashlib.sha256()
for key, value in net.state_dict().items():
    digest.update(key.encode()); digest.update(value.numpy().tobytes())
DIGEST = digest.hexdigest()
"""


def test_bit_identical_across_processes() -> None:
    child = _DIGEST.replace("GLOBAL_SEED", "12345") + "print(DIGEST)"
    run = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, check=True)
    here: dict[str, Any] = {}
    with torch.random.fork_rng(devices=[]):
        exec(_DIGEST.replace("GLOBAL_SEED", "1"), here)
    assert run.stdout.strip() == here["DIGEST"]


# Meta tensors -----------------------------------------------------------------------------


def small_net() -> nn.Module:
    # No Embedding or bias_k here: their normal_ on the meta device goes through torch._refs,
    # whose first use imports torch._dynamo (seconds), for nothing this test needs.
    return nn.Sequential(
        nn.Conv1d(4, 8, 3),
        nn.Flatten(0),
        nn.Linear(8, 16),
        nn.LayerNorm(16),
        nn.MultiheadAttention(16, 2),
        nn.LSTM(16, 8),
    )


def test_meta_reported_then_initialized_after_to_empty() -> None:
    with torch.device("meta"):
        lazy = small_net()
    report = apply("torch-defaults", lazy, seed=SEED)
    statuses = {r.info.path: r.status for r in report.resolution.params}
    assert set(statuses.values()) == {"meta"}
    assert "meta, not written" in report.table()
    assert all(p.is_meta for p in lazy.parameters())

    lazy.to_empty(device="cpu")
    report = apply("torch-defaults", lazy, seed=SEED)
    assert {r.status for r in report.resolution.params} == {"init"}
    eager = small_net()
    apply("torch-defaults", eager, seed=SEED)
    assert_same_state(state(lazy), state(eager))


# Report -----------------------------------------------------------------------------------


def test_report_table_json_and_unmatched_count() -> None:
    policy = rules(
        {"name": "kernels", "match": {"role": "kernel"}, "init": {"kind": "xavier_uniform"}},
        name="kernels-only",
    )
    model = nn.Sequential(nn.Linear(8, 16), nn.LayerNorm(16))
    report = apply(policy, model, seed=0)
    assert report.unmatched == 3  # 0.bias, 1.weight, 1.bias
    doc = json.loads(report.to_json())
    assert doc["policy"] == "kernels-only" and doc["unmatched"] == 3
    row = doc["parameters"][0]
    assert (row["path"], row["rule_index"], row["rule_name"]) == ("0.weight", 0, "kernels")
    assert row["spec"]["kind"] == "xavier_uniform" and row["dtype"] == "float32"
    assert row["device"] == "cpu" and "fan_in=8 fan_out=16" in row["plan"]
    lines = report.table().splitlines()
    header, rule = lines[0], lines[1]
    # Aligned: every column starts where the header's does.
    starts = [i for i, ch in enumerate(rule) if ch == "-" and (i == 0 or rule[i - 1] == " ")]
    for line in lines[2:6]:
        for start in starts[1:]:
            assert line[start - 1] == " ", line
    assert header.split()[0] == "parameter" and "4 parameters, 3 unmatched" in lines[-1]


def test_low_precision_model() -> None:
    model = nn.Sequential(nn.Linear(64, 128), nn.Linear(128, 32)).to(torch.bfloat16)
    report = apply("torch-defaults", model, seed=1)
    for r in report.resolution.params:
        plan, tensor = r.plan, model.get_parameter(r.info.path)
        assert isinstance(plan, UniformPlan) and tensor.dtype == torch.bfloat16
        values = tensor.detach().double()
        assert float(values.min()) >= plan.low and float(values.max()) < plan.high


# CUDA -------------------------------------------------------------------------------------


@pytest.mark.cuda
@requires_cuda
class TestCuda:
    def test_apply_on_device(self) -> None:
        a, b = build(1, "cuda"), build(2, "cuda")
        before = torch.cuda.get_rng_state()
        report = apply("torch-defaults", a, seed=SEED)
        apply("torch-defaults", b, seed=SEED)
        assert torch.equal(torch.cuda.get_rng_state(), before)
        assert all(p.is_cuda for p in a.parameters())
        assert {r["device"] for r in report.to_dict()["parameters"]} == {"cuda:0"}
        assert_same_state(state(a), state(b))
        reference = build(3)
        p = stats.ks_2samp(
            a.conv.weight.detach().cpu().ravel(), reference.conv.weight.detach().ravel()
        ).pvalue
        assert p > KS_P_MIN

    def test_seed_matches_init_on_device(self) -> None:
        net = build(0, "cuda")
        apply("torch-defaults", net, seed=SEED)
        gen = torch.Generator(device="cuda")
        gen.manual_seed(derive_seed(SEED, "emb.weight"))
        alone = init_(torch.empty(500, 64, device="cuda"), {"kind": "normal"}, generator=gen)
        assert torch.equal(net.emb.weight, alone)
