"""initspec_torch.capture: a model's own init, recorded while it is built, as a policy.

Each test builds a model with its own init code (torch defaults, HF's ``_init_weights``,
explicit ``torch.nn.init`` calls, in-place tensor methods), captures it, and checks the
policy against what that code does, computed here from the formulas of the code itself
(torch's ``reset_parameters``, HF's ``_init_weights``): the plan ``initspec_torch.explain``
gives each parameter of a fresh build.
"""

from __future__ import annotations

import json
import math
import sys
import warnings
from pathlib import Path

import pytest
import torch
from initspec_torch import capture, capture_report, explain
from torch import nn

from initspec.errors import InitSpecError

transformers = pytest.importorskip("transformers")
sys.path.insert(0, str(Path(__file__).parent))  # real_packages


def plans(policy, model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = explain(policy, model)
    return {r["path"]: r for r in report.rows()}


class Defaults(nn.Module):
    """torch's own defaults: Linear, Embedding (with a padding row), LayerNorm."""

    def __init__(self, d: int = 8) -> None:
        super().__init__()
        self.emb = nn.Embedding(10, d, padding_idx=0)
        self.l1 = nn.Linear(d, 2 * d)
        self.l2 = nn.Linear(2 * d, d)
        self.ln = nn.LayerNorm(d)


def test_torch_defaults_become_their_plans() -> None:
    policy = capture(Defaults)
    rows = plans(policy, Defaults())
    # Linear.reset_parameters: kaiming_uniform_(a=sqrt(5)) = U(+-1/sqrt(fan_in)), bias the same.
    for name, fan_in in (("l1", 8), ("l2", 16)):
        bound = 1 / math.sqrt(fan_in)
        for leaf in ("weight", "bias"):
            assert rows[f"{name}.{leaf}"]["plan"].startswith(
                f"uniform(low={-bound:.4g}, high={bound:.4g})"
            ), rows[f"{name}.{leaf}"]
    assert rows["emb.weight"]["plan"] == "normal(mean=0, std=1)"
    assert rows["ln.weight"]["plan"] == "constant(1)"
    assert rows["ln.bias"]["plan"] == "constant(0)"
    emb_rule = policy.rules[rows["emb.weight"]["rule_index"]]
    assert emb_rule.zero_padding_row  # Embedding(padding_idx=0) zeroes that row
    assert len(policy.rules) == 5


def _gpt2(n_layer: int = 3, n_embd: int = 32):
    cfg = transformers.GPT2Config(
        n_layer=n_layer, n_embd=n_embd, n_head=4, vocab_size=100, n_positions=64,
        bos_token_id=0, eos_token_id=0,
    )  # fmt: skip
    return transformers.GPT2LMHeadModel(cfg)


def test_hf_gpt2_init_weights_with_depth_scaling() -> None:
    report = capture_report(lambda: _gpt2(3))
    policy = report.policy
    assert len(policy.rules) == 4, report.rules_text()
    assert report.skipped == {}
    # The policy carries GPT-2's scheme, not the 3-layer numbers: applied to 6 layers,
    # c_proj gets 0.02 / sqrt(2 * 6).
    rows = plans(policy, _gpt2(6))
    std = 0.02 / math.sqrt(2 * 6)
    for path, row in rows.items():
        if path.endswith("c_proj.weight"):
            assert row["plan"].startswith(f"normal(mean=0, std={std:.4g})"), (path, row)
        elif path.endswith(("c_attn.weight", "c_fc.weight", "wte.weight", "wpe.weight")):
            assert row["plan"].startswith("normal(mean=0, std=0.02)"), (path, row)
        elif path.endswith(".bias"):
            assert row["plan"] == "constant(0)", (path, row)
        else:
            assert row["plan"] == "constant(1)", (path, row)


def test_build_that_raises_or_returns_no_module() -> None:
    def boom() -> nn.Module:
        raise RuntimeError("no config")

    with pytest.raises(InitSpecError, match="raised RuntimeError: no config"):
        capture(boom)
    with pytest.raises(InitSpecError, match="returned int, not a torch.nn.Module"):
        capture(lambda: 3)  # type: ignore[arg-type, return-value]

    class Nothing(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.empty(3, 4))

    with pytest.raises(InitSpecError, match="initialized nothing"):
        capture(Nothing)


# What is recorded -------------------------------------------------------------------------


def _value(report, path: str) -> str:
    return next(r for r in report.rows() if r["path"] == path)["value"]


def test_writes_through_data_slices_ties_and_the_last_write_wins() -> None:
    class M(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(12, 6)
            self.emb.weight.data.normal_(0.0, 0.5)  # through .data
            self.emb.weight.data[3].zero_()  # a slice: no padding_idx, so not expressible
            self.tok = nn.Embedding(12, 6, padding_idx=2)
            with torch.no_grad():
                self.tok.weight.uniform_(-0.1, 0.1)
                self.tok.weight[2] = 0.0  # __setitem__ on the padding row
            self.fc = nn.Linear(6, 6)
            nn.init.normal_(self.fc.weight, std=3.0)
            nn.init.xavier_normal_(self.fc.weight, gain=2.0)  # the last write wins
            self.head = nn.Linear(6, 12, bias=False)
            self.head.weight = self.tok.weight  # tied: one parameter, two names

    report = capture_report(M)
    assert report.skipped == {"emb.weight": "rows [3] written apart from the rest"}
    assert _value(report, "tok.weight") == "uniform(low=-0.1, high=0.1) (padding row zero)"
    assert _value(report, "fc.weight") == "xavier_normal(gain=2)"
    rows = plans(report.policy, M())
    assert rows["tok.weight"]["shared_with"] == ["head.weight"]
    assert rows["tok.weight"]["plan"] == "uniform(low=-0.1, high=0.1)"
    assert policy_rule(report.policy, rows["tok.weight"]).zero_padding_row
    std = 2.0 * math.sqrt(2.0 / 12)  # xavier_normal_: gain * sqrt(2 / (fan_in + fan_out))
    assert rows["fc.weight"]["plan"].startswith(f"normal(mean=0, std={std:.4g})")
    assert rows["emb.weight"]["status"] == "skip"


def policy_rule(policy, row):
    return policy.rules[row["rule_index"]]


def test_arithmetic_after_a_draw_and_global_rng_draws() -> None:
    class M(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(8, 8)
            nn.init.normal_(self.a.weight, std=0.02)
            self.a.weight.data.mul_(0.5).add_(0.1)  # N(0.1, 0.01)
            self.b = nn.Linear(8, 16)
            nn.init.kaiming_uniform_(self.b.weight, nonlinearity="relu")
            self.b.weight.data *= 0.25  # a fan-based spec: a gain
            self.c = nn.Parameter(torch.randn(4, 8) * 0.3)  # the global RNG, scaled
            self.d = nn.Linear(8, 8)
            with torch.no_grad():
                self.d.weight.copy_(torch.rand(8, 8) * 2 - 1)  # U(-1, 1) from the global RNG
            self.e = nn.Parameter(torch.empty(5).fill_(0.7))
            self.f = nn.Parameter(torch.empty(3, 3).normal_(std=0.02))  # before it is a Parameter

    report = capture_report(M)
    assert report.skipped == {}
    assert _value(report, "a.weight") == "normal(mean=0.1, std=0.01)"
    assert _value(report, "b.weight") == "kaiming_uniform(nonlinearity=relu) x 0.25"
    assert _value(report, "c") == "normal(std=0.3)"
    assert _value(report, "d.weight") == "uniform(low=-1)"
    assert _value(report, "e") == "constant(value=0.7)"
    assert _value(report, "f") == "normal(std=0.02)"
    assert any(
        "global-RNG" in call
        for call in next(r for r in report.rows() if r["path"] == "d.weight")["calls"]
    )
    rows = plans(report.policy, M())
    bound = 0.25 * math.sqrt(3.0) * math.sqrt(2.0) / math.sqrt(8)  # kaiming_uniform_ relu, x 0.25
    assert rows["b.weight"]["plan"].startswith(f"uniform(low={-bound:.4g}, high={bound:.4g})")


def test_inexpressible_values_become_named_skip_rules() -> None:
    class M(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            pos = torch.arange(16.0)[:, None] * torch.exp(-torch.arange(0.0, 8.0, 2.0))[None]
            self.table = nn.Parameter(torch.cat([torch.sin(pos), torch.cos(pos)], dim=1))
            self.cut = nn.Linear(4, 4)
            nn.init.normal_(self.cut.weight)
            self.cut.weight.data.clamp_(-1.0, 1.0)  # mass at +-1: no catalog kind
            self.coin = nn.Parameter(torch.empty(6).bernoulli_(0.3))
            self.given = nn.Parameter(torch.tensor([1.0, 2.0, 3.0]))
            self.ok = nn.Parameter(torch.zeros(2))

    report = capture_report(M)
    skipped = report.skipped
    assert skipped["table"].startswith("sinusoidal table: values computed by")
    assert skipped["cut.weight"] == "clamp_(-1, 1) cuts a normal(std=1): mass at the bounds"
    assert "bernoulli_" in skipped["coin"]
    assert skipped["given"] == "values given as data (torch.tensor)"
    assert "ok" not in skipped and "cut.bias" not in skipped
    names = {r.name for r in report.policy.rules if r.skip}
    assert {f"skip: {reason}" for reason in skipped.values()} == names
    rows = plans(report.policy, M())
    assert {p for p, r in rows.items() if r["status"] == "skip"} == set(skipped)


def test_timm_trunc_normal_chains_are_truncated_normals() -> None:
    from real_packages import import_timm

    timm = import_timm()
    from timm.layers import trunc_normal_, trunc_normal_tf_

    def build() -> nn.Module:
        m = nn.Sequential(nn.Linear(32, 32), nn.Linear(32, 32), nn.Linear(32, 32))
        trunc_normal_(
            m[0].weight, std=0.02
        )  # timm's own: uniform_ -> erfinv_ -> mul_ -> add_ -> clamp_
        trunc_normal_(m[1].weight, mean=0.1, std=1.0, a=-1.0, b=2.0)
        trunc_normal_tf_(m[2].weight, std=0.05)  # bounds +-2 in std units, then mul_ / add_
        return m

    report = capture_report(build)
    assert report.skipped == {}
    assert _value(report, "0.weight") == "truncated_normal(std=0.02)"
    assert _value(report, "1.weight") == "truncated_normal(mean=0.1, low=-1)"
    assert _value(report, "2.weight") == "truncated_normal(std=0.05, low=-0.1, high=0.1)"
    assert timm is not None


def test_torchtitan_style_depth_init_over_layers() -> None:
    class M(nn.Module):
        def __init__(self, n: int = 4) -> None:
            super().__init__()
            self.layers = nn.ModuleList(nn.Linear(16, 16, bias=False) for _ in range(n))
            for i, layer in enumerate(self.layers):
                std = 0.02 / math.sqrt(2 * (i + 1))
                nn.init.trunc_normal_(layer.weight, std=std, a=-3 * std, b=3 * std)

    report = capture_report(M)
    (rule,) = report.policy.rules
    assert rule.depth_scale is not None
    assert (rule.depth_scale.factor, rule.depth_scale.layer_id, rule.depth_scale.offset) == (
        2.0, "layers.{layer_id}.*", 1,
    )  # fmt: skip
    rows = plans(report.policy, M(6))  # and it reaches layers it never saw
    std = 0.02 / math.sqrt(2 * 6)
    assert rows["layers.5.weight"]["plan"].startswith(f"truncated_normal(mean=0, std={std:.4g}")


def test_also_turns_stds_that_follow_a_fan_into_fan_based_specs() -> None:
    from tests.fixtures.capture_models import mlp, wide_mlp

    alone = capture_report(mlp)  # one fan (20): the std stays a number
    assert [r.init.model_dump() for r in alone.policy.rules if r.match.role == ["kernel"]] == [
        {"kind": "normal", "mean": 0.0, "std": 20**-0.5}
    ]
    report = capture_report(mlp, also=wide_mlp)
    kernel = next(r for r in report.policy.rules if r.match.role == ["kernel"])
    assert kernel.init is not None
    assert kernel.init.model_dump() == {
        "kind": "variance_scaling", "scale": 1.0, "mode": "fan_in", "distribution": "normal",
    }  # fmt: skip
    # Applied to a third width: std = 1/sqrt(fan_in) there too.
    third = nn.Sequential(nn.Linear(7, 9), nn.ReLU(), nn.Linear(9, 5))
    rows = plans(report.policy, third)
    assert rows["0.weight"]["plan"].startswith(f"normal(mean=0, std={7**-0.5:.4g})")
    assert rows["2.weight"]["plan"].startswith(f"normal(mean=0, std={9**-0.5:.4g})")


def test_hf_conv1d_reads_torch_fans_in_its_own_layout() -> None:
    conv1d = transformers.pytorch_utils.Conv1D

    def build() -> nn.Module:
        m = conv1d(48, 16)  # nf=48 outputs, nx=16 inputs: weight (16, 48), stored (in, out)
        nn.init.kaiming_normal_(m.weight)  # torch reads size(1) = 48 as fan_in
        return m

    report = capture_report(build)
    rows = plans(report.policy, build())
    assert rows["weight"]["plan"].startswith(f"normal(mean=0, std={math.sqrt(2 / 48):.4g})")
    assert report.policy.rules[0].init.mode == "fan_out"  # type: ignore[union-attr]


# How it runs -------------------------------------------------------------------------------


def test_global_rngs_are_untouched_and_nothing_is_left_patched() -> None:
    import random
    import sys

    import numpy as np

    def build() -> nn.Module:
        m = nn.Sequential(nn.Linear(64, 64), nn.Linear(64, 64))
        m[0].weight.data.copy_(torch.randn(64, 64))
        np.random.rand(3), random.random()
        return m

    torch.manual_seed(123)
    np.random.seed(123)
    random.seed(123)
    states = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    init_fns = dict(vars(torch.nn.init))
    profile = sys.getprofile()
    for device in ("meta", "cpu"):
        capture(build, device=device)
    assert torch.equal(torch.get_rng_state(), states[0])
    assert np.array_equal(np.random.get_state()[1], states[1])
    assert random.getstate() == states[2]
    assert dict(vars(torch.nn.init)) == init_fns
    assert sys.getprofile() is profile
    assert torch.empty(1).device.type == "cpu"  # no device or function mode left on


def test_meta_by_default_and_cpu_where_the_init_needs_values() -> None:
    def needs_values() -> nn.Module:
        m = nn.Linear(8, 8)
        if m.weight.abs().max().item() > 10:  # data-dependent: meta has no values
            raise AssertionError
        nn.init.zeros_(m.bias)
        return m

    report = capture_report(needs_values)
    assert any("meta build failed" in n and "built on the CPU" in n for n in report.notes)
    assert report.skipped == {}
    assert capture_report(Defaults).notes[0] == "build: built on meta"


def test_llama_7b_config_is_captured_on_meta() -> None:
    # 6.7e9 parameters: 27 GB in float32 that a meta build never allocates.
    cfg = transformers.LlamaConfig()
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.intermediate_size) == (4096, 32, 11008)
    report = capture_report(lambda: transformers.LlamaForCausalLM(cfg))
    assert report.skipped == {}
    assert [r.init.kind for r in report.policy.rules if r.init] == ["ones", "normal"]
    assert report.notes[0] == "build: built on meta"


def test_bad_device_and_non_callable() -> None:
    with pytest.raises(InitSpecError, match="not a torch device"):
        capture(Defaults, device="nowhere")
    with pytest.raises(InitSpecError, match="zero-argument callable"):
        capture(3)  # type: ignore[arg-type]


# The command line -----------------------------------------------------------------------


def test_cli_capture_prints_rules_and_table_and_writes_the_policy(tmp_path, capsys) -> None:
    from initspec.cli import main
    from initspec.policy import load_policy

    out = tmp_path / "policy.json"
    ref = "tests.fixtures.capture_models:mlp"
    assert main(["capture", "--torch", ref, "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert (
        "#0 " in text
        and "0.weight" in text
        and "torch.nn.init.normal_(mean=0, std=0.223607)" in text
    )
    policy = load_policy(out)
    assert len(policy.rules) == 2
    also = "tests.fixtures.capture_models:wide_mlp"
    assert main(["capture", "--torch", ref, "--also", also, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["policy"]["rules"][0]["init"]["kind"] == "variance_scaling"
    assert {r["path"] for r in doc["parameters"]} == {"0.weight", "0.bias", "2.weight", "2.bias"}
    assert main(["capture", "--torch", "tests.fixtures.capture_models:nothing"]) == 2
    assert "initialized nothing" in capsys.readouterr().err
    assert main(["capture", "--torch", "tests.fixtures.cli_models:broken"]) == 2
    assert main(["capture", "--torch", "nomodule"]) == 2


def test_when_several_fans_fit_the_known_constant_names_the_mode() -> None:
    # fan_in = d and fan_out = 3d scale together between the builds: N(0, 2/fan_out) is also
    # N(0, (2/3)/fan_in). He's 2 names fan_out.
    def build(d: int) -> nn.Module:
        m = nn.Linear(d, 3 * d)
        nn.init.normal_(m.weight, std=math.sqrt(2.0 / (3 * d)))
        return m

    report = capture_report(lambda: build(8), also=lambda: build(16))
    kernel = report.policy.rules[[r.match.role for r in report.policy.rules].index(["kernel"])]
    assert kernel.init is not None
    assert (kernel.init.scale, kernel.init.mode) == (2.0, "fan_out")  # type: ignore[union-attr]
    note = next(r["note"] for r in report.rows() if r["path"] == "weight")
    assert "also fits: std**2 x fan_in = 0.666667" in note


def test_absolute_truncation_bounds_keep_a_fan_std_literal_and_say_so() -> None:
    def build(d: int) -> nn.Module:
        m = nn.Linear(d, d)
        nn.init.trunc_normal_(m.weight, std=d**-0.5)  # HF's lecun_normal_: bounds +-2, absolute
        return m

    report = capture_report(lambda: build(8), also=lambda: build(32))
    assert any("their truncation bounds are absolute numbers" in n for n in report.notes)
    assert _value(report, "weight") == f"truncated_normal(std={8**-0.5:.6g})"


def test_torch_module_defaults_name_their_kinds() -> None:
    class M(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = nn.LSTM(6, 10, num_layers=2)
            self.attn = nn.MultiheadAttention(12, 3)
            self.conv = nn.Conv2d(3, 8, 3)
            self.bn = nn.BatchNorm2d(8)

    report = capture_report(M)
    assert report.skipped == {}
    kinds = {r["path"]: r["value"] for r in report.rows()}
    assert kinds["rnn.weight_ih_l0"] == "uniform(low=-0.316228, high=0.316228)"  # 1/sqrt(10)
    assert kinds["attn.in_proj_weight"] == "xavier_uniform()"
    rows = plans(report.policy, M())
    rules = {p: report.policy.rules[r["rule_index"]].init.kind for p, r in rows.items()}  # type: ignore[union-attr]
    assert rules["rnn.weight_hh_l1"] == rules["rnn.bias_ih_l0"] == "torch_rnn"
    assert rules["conv.bias"] == "torch_linear_bias"
    assert rules["attn.in_proj_bias"] == rules["attn.out_proj.bias"] == rules["bn.bias"] == "zeros"
    for path, row in rows.items():
        assert row["plan"] == report.expected[path]


def test_iteration_and_advanced_indexing_are_not_mistaken() -> None:
    class M(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Parameter(torch.zeros(4))
            _ = [float(x) for x in self.a.detach().cpu()] if not self.a.is_meta else list(self.a)
            _ = int(torch.ones(()).sum()) if not self.a.is_meta else 0
            self.b = nn.Parameter(torch.ones(4))
            with torch.no_grad():
                self.b[torch.tensor([True, False, True, False])] = 0.0  # writes b, not a copy
                self.b[torch.tensor([1, 3])].zero_()  # zeroes a copy: b unchanged by it

    report = capture_report(M)
    assert _value(report, "a") == "zeros()"  # iterating over a tensor writes nothing
    assert report.skipped == {"b": "an assignment through a tensor index"}


def test_storage_identity_on_meta_is_what_capture_keys_on() -> None:
    # On meta every data_ptr() is 0; the StorageImpl behind .data, views and slices is the
    # parameter's own, and two parameters have two.
    from initspec_torch.capture_record import _key

    with torch.device("meta"):
        a, b = nn.Linear(4, 4), nn.Linear(4, 4)
    assert a.weight.data_ptr() == b.weight.data_ptr() == 0
    assert _key(a.weight) == _key(a.weight.data) == _key(a.weight.data[1]) == _key(a.weight.t())
    assert _key(a.weight) != _key(b.weight) and _key(a.weight) != _key(a.bias)


def test_transformers_guarded_init_is_honoured() -> None:
    from transformers import initialization as hf_init

    def build() -> nn.Module:
        m = nn.Linear(8, 8)
        hf_init.normal_(m.weight, std=0.5)  # HF's wrapper calls torch's original normal_
        m.weight._is_hf_initialized = True  # type: ignore[attr-defined]
        hf_init.normal_(m.weight, std=9.0)  # guarded: writes nothing
        hf_init.zeros_(m.bias)
        return m

    report = capture_report(build)
    assert _value(report, "weight") == "normal(std=0.5)"
    assert _value(report, "bias") == "zeros()"


def test_integer_parameters_are_skipped_with_the_reason() -> None:
    class M(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.steps = nn.Parameter(torch.zeros(3, dtype=torch.int64), requires_grad=False)

    report = capture_report(M)
    assert report.skipped == {"steps": "a int64 parameter: policies initialize floats only"}


def test_conv_transpose_defaults() -> None:
    report = capture_report(lambda: nn.ConvTranspose2d(4, 6, 3))
    rows = plans(report.policy, nn.ConvTranspose2d(4, 6, 3))
    bound = 1 / math.sqrt(6 * 9)  # torch reads dim 1 (the 6 output channels) x k as fan_in
    for leaf in ("weight", "bias"):
        assert rows[leaf]["plan"].startswith(f"uniform(low={-bound:.4g}, high={bound:.4g})")
    bias_rule = report.policy.rules[rows["bias"]["rule_index"]]
    assert bias_rule.init is not None and bias_rule.init.model_dump() == {
        "kind": "torch_linear_bias", "mode": "fan_out",
    }  # fmt: skip


def test_a_model_made_before_build_ran_initialized_nothing_there() -> None:
    made = Defaults()
    with pytest.raises(InitSpecError, match="made before build"):
        capture(lambda: made, device=None)


def test_degenerate_draws_are_constants() -> None:
    def build() -> nn.Module:
        m = nn.Linear(3, 3)
        nn.init.normal_(m.weight, mean=0.25, std=0.0)
        m.bias.data.uniform_(0.5, 0.5)
        return m

    report = capture_report(build)
    assert (_value(report, "weight"), _value(report, "bias")) == (
        "constant(value=0.25)", "constant(value=0.5)",
    )  # fmt: skip


def test_slices_of_a_drawn_tensor_copied_into_parameters() -> None:
    class M(nn.Module):
        def __init__(self, d: int = 8) -> None:
            super().__init__()
            fused = torch.empty(3 * d, d)
            nn.init.xavier_uniform_(fused)  # fans of the fused (3d, d) tensor
            self.q = nn.Parameter(fused[:d].clone())
            self.o = nn.Linear(d, 2 * d)
            w = torch.empty(2 * d, 2 * d)
            nn.init.orthogonal_(w)
            with torch.no_grad():
                self.o.weight.copy_(w[:, :d])  # part of an orthogonal matrix: no catalog kind

    report = capture_report(M)
    bound = math.sqrt(6.0 / (8 + 24))  # xavier_uniform_ on (24, 8)
    assert _value(report, "q") == f"uniform(low={-bound:.6g}, high={bound:.6g})"
    assert report.skipped == {"o.weight": "a slice of orthogonal()"}


def test_a_build_that_replaces_the_profile_function() -> None:
    import sys

    def build() -> nn.Module:
        m = nn.Linear(4, 4)
        previous = sys.getprofile()
        sys.setprofile(None)  # a build that profiles itself, say
        try:
            nn.init.uniform_(m.weight, -0.5, 0.5)  # dispatches through the mode: still recorded
            nn.init.xavier_normal_(m.bias.view(2, 2))  # its tensor ops only: normal_(0, std)
        finally:
            sys.setprofile(previous)
        return m

    report = capture_report(build)
    assert any("replaced capture's profile function" in n for n in report.notes)
    assert _value(report, "weight") == "uniform(low=-0.5, high=0.5)"
    assert _value(report, "bias") == f"normal(std={math.sqrt(2 / 4):.6g})"


def test_timm_efficientnet_is_he_on_fan_out_not_depth_scaling() -> None:
    # _init_weight_goog: N(0, 2 / fan_out) with fan_out = k * k * out / groups (for a
    # depthwise conv that is torch's fan_in). Some of those stds are 0.5 / sqrt(2 * 7) by
    # arithmetic: no depth scaling may be read into them.
    from real_packages import import_timm

    timm = import_timm()
    report = capture_report(lambda: timm.create_model("efficientnet_b0", pretrained=False))
    assert report.skipped == {}
    assert not any(r.depth_scale for r in report.policy.rules)
    kernels = [r.init for r in report.policy.rules if r.init and r.init.kind == "variance_scaling"]
    assert {(k.scale, k.mode) for k in kernels} == {(2.0, "fan_in"), (2.0, "fan_out")}  # type: ignore[attr-defined]
    assert len(report.policy.rules) == 5


def test_the_core_side_of_capture_imports_no_framework() -> None:
    import subprocess

    code = (
        "import sys, initspec.capture, initspec.cli_capture, initspec.cli; "
        "initspec.cli.build_parser(); "
        "bad = [m for m in ('torch', 'jax', 'flax', 'transformers') if m in sys.modules]; "
        "print(','.join(bad)); sys.exit(1 if bad else 0)"
    )
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=repo)
    assert proc.returncode == 0, proc.stdout + proc.stderr
