"""``initspec_torch.check`` and ``initspec.testing`` on real torch and HF models."""

from __future__ import annotations

import warnings

import initspec_torch
import pytest
import torch
from torch import nn

import initspec.testing
from initspec import InitCheckError

transformers = pytest.importorskip("transformers")


def tiny_gpt2(seed: int) -> nn.Module:
    """HF GPT-2 with its own init (``_init_weights``), 2 layers of width 64."""
    config = transformers.GPT2Config(
        n_layer=2, n_embd=64, n_head=4, vocab_size=1000, n_positions=128
    )
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return transformers.GPT2LMHeadModel(config).eval()


def test_hf_gpt2_passes_the_gpt2_preset_across_20_seeds() -> None:
    # 28 parameters, 12 random (30 p-values): a correct init fails with probability <= 1e-4
    # per seed (Holm), so 20 passing seeds is what a correct check must show.
    for seed in range(20):
        report = initspec_torch.check(tiny_gpt2(seed), "gpt2")
        assert report.ok, f"seed {seed}\n{report.table(only_failed=True)}"
        assert report.counts()["ok"] == 28


def test_hf_gpt2_without_the_c_proj_depth_scaling_is_flagged() -> None:
    # The old HF bug: c_proj weights drawn with std 0.02 instead of 0.02 / sqrt(2 n_layer)
    # = 0.01: a 2x std error, on every c_proj weight, caught by the variance and KS tests.
    model = tiny_gpt2(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("c_proj.weight"):
                p.normal_(0.0, 0.02)
    report = initspec_torch.check(model, "gpt2")
    assert not report.ok
    bad = sorted(p.path for p in report.mismatched)
    assert bad == [f"transformer.h.{i}.{m}.c_proj.weight" for i in (0, 1) for m in ("attn", "mlp")]
    for p in report.mismatched:
        assert p.evidence["std_ratio"] == pytest.approx(2.0, rel=0.1)
        assert "normal(mean=0, std=0.01)" in (p.plan or "")


def test_a_bfloat16_model_initialized_by_apply_passes() -> None:
    for rng in ("native", "portable"):
        model = tiny_gpt2(0).to(torch.bfloat16)
        initspec_torch.apply("gpt2", model, seed=3, rng=rng)
        report = initspec_torch.check(model, "gpt2")
        assert report.ok, report.table(only_failed=True)
        assert {p.dtype for p in report.params} == {"bfloat16"}


def test_torch_defaults_on_torch_nn_modules_and_a_state_dict() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 32, 3), nn.BatchNorm2d(32), nn.Flatten(), nn.Linear(32 * 30 * 30, 64),
        nn.LayerNorm(64), nn.Linear(64, 10),
    )
    report = initspec_torch.check(model, "torch-defaults")
    assert report.ok, report.table()
    # the state dict (buffers included) is described from names and shapes
    sd = initspec_torch.check(model.state_dict(), "torch-defaults")
    verdicts = {p.path: p.verdict for p in sd.params}
    assert verdicts["3.weight"] == "ok" and verdicts["1.running_mean"] == "unmatched"
    assert sd.ok, sd.table()
    with torch.no_grad():
        model[3].weight.mul_(1.05)
    assert [p.path for p in initspec_torch.check(model, "torch-defaults").mismatched] == ["3.weight"]


class Block(nn.Module):
    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.fc = nn.Linear(256, 256)
        nn.init.normal_(self.fc.weight, std=0.02 * scale)
        nn.init.zeros_(self.fc.bias)


POLICY = {
    "initspec": 1,
    "name": "mine",
    "rules": [
        {"match": {"role": "bias"}, "init": {"kind": "zeros"}},
        {"match": {"kind": "linear"}, "init": {"kind": "normal", "std": 0.02}},
    ],
}


def test_assert_initialized_like_catches_a_wrongly_scaled_layer() -> None:
    # The example of docs/check.md: a model whose second block was scaled 1.1x by mistake.
    model = nn.Sequential(Block(), Block(scale=1.1), Block())
    with pytest.raises(AssertionError) as info:
        initspec.testing.assert_initialized_like(model, POLICY)
    assert isinstance(info.value, InitCheckError)
    message = str(info.value)
    assert "1 of 6 parameter(s) do not match the policy 'mine'" in message
    assert "1.fc.weight" in message and "0.fc.weight" not in message
    assert "std x1.1" in message
    report = initspec.testing.assert_initialized_like(nn.Sequential(Block(), Block()), POLICY)
    assert report.ok and len(report.params) == 4


def test_meta_parameters_cannot_be_checked() -> None:
    with torch.device("meta"):
        model = nn.Linear(4, 4)
    with pytest.raises(initspec.InitSpecError, match="meta device"):
        initspec_torch.check(model, POLICY)
