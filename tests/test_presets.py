"""Presets against the real implementations: PyTorch's reset_parameters, HF GPT-2 and BERT,
nanoGPT's and torchtitan's init code (transcribed: they ship no package)."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
from scipy import stats

from initspec.plans import ConstantPlan, UniformPlan

torch = pytest.importorskip("torch")
nn = torch.nn
initspec_torch = pytest.importorskip("initspec_torch")

KS_P = 1e-4  # as PyTorch's own init tests; seeds fixed


def check_against_plan(report, ours: nn.Module, theirs: nn.Module) -> None:
    """For every parameter: the framework's own values follow the distribution our preset
    planned for it (one-sample KS against the plan's exact CDF, p > 1e-4; constants exactly),
    and so do ours. One-sample tests against exact CDFs have more power than comparing two
    noisy samples, and do not depend on which of the two samples happened to be drawn."""
    plans = {p.info.path: p for p in report.resolution.params}
    theirs_by_name = dict(theirs.named_parameters(remove_duplicate=False))
    for name, a in ours.named_parameters():
        b = theirs_by_name[name]
        rp = plans[name]
        assert rp.status == "init", f"{name}: {rp.status}"
        plan = rp.plan
        for label, t in (("theirs", b), ("ours", a)):
            x = t.detach().double().flatten().numpy()
            if isinstance(plan, ConstantPlan):
                np.testing.assert_array_equal(x, plan.value, err_msg=f"{name} ({label})")
                continue
            p = stats.kstest(x, plan.cdf).pvalue
            assert p > KS_P, f"{name} ({label}): KS p = {p:.2e} against {plan.describe()}"
            if isinstance(plan, UniformPlan):
                assert x.min() >= plan.low and x.max() <= plan.high, (
                    f"{name} ({label}) outside {plan.describe()}"
                )


class Everything(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(300, 200)
        self.conv = nn.Conv2d(16, 32, 3)
        self.gconv = nn.Conv2d(16, 32, 3, groups=4)
        self.conv1d = nn.Conv1d(8, 64, 5)
        self.deconv = nn.ConvTranspose2d(32, 16, 4)
        self.gdeconv = nn.ConvTranspose2d(32, 16, 3, groups=4)
        self.emb = nn.Embedding(500, 64)
        self.ln = nn.LayerNorm(64)
        self.bn = nn.BatchNorm2d(32)
        self.gn = nn.GroupNorm(4, 32)
        self.rms = nn.RMSNorm(64)
        self.mha = nn.MultiheadAttention(64, 4)
        self.lstm = nn.LSTM(32, 48, num_layers=2)
        self.gru = nn.GRU(16, 40)


def test_torch_defaults_equals_reset_parameters() -> None:
    torch.manual_seed(0)
    theirs = Everything()
    ours = copy.deepcopy(theirs)
    with torch.no_grad():
        for p in ours.parameters():
            p.fill_(float("nan"))  # everything must be written by the preset
    report = initspec_torch.apply("torch-defaults", ours, seed=1)
    assert report.unmatched == 0, report.table()
    for name, a in ours.named_parameters():
        assert not torch.isnan(a).any(), name
    check_against_plan(report, ours, theirs)


def test_torch_defaults_bounds_are_torch_formulas() -> None:
    m = Everything()
    rows = {r["path"]: r for r in initspec_torch.apply("torch-defaults", m).rows()}
    assert rows["fc.weight"]["plan"].startswith(f"uniform(low={-1 / math.sqrt(300):.4g}")
    assert rows["fc.bias"]["plan"].startswith(f"uniform(low={-1 / math.sqrt(300):.4g}")
    # ConvTranspose: torch reads dim 1 (out/groups = 4) * k*k as fan_in
    assert rows["gdeconv.weight"]["plan"].startswith(f"uniform(low={-1 / math.sqrt(4 * 9):.4g}")
    assert rows["gdeconv.bias"]["plan"].startswith(f"uniform(low={-1 / math.sqrt(4 * 9):.4g}")
    assert rows["lstm.weight_hh_l1"]["plan"].startswith(f"uniform(low={-1 / math.sqrt(48):.4g}")
    assert rows["emb.weight"]["plan"] == "normal(mean=0, std=1)"
    assert rows["emb.weight"]["fans"] == [64, 500]
    assert rows["mha.in_proj_weight"]["plan"].startswith(
        f"uniform(low={-math.sqrt(6 / (64 + 192)):.4g}"
    )


transformers = pytest.importorskip("transformers")


def _hf_pair(model_cls, config):
    torch.manual_seed(0)
    theirs = model_cls(config)
    ours = copy.deepcopy(theirs)
    return ours, theirs


def test_gpt2_preset_equals_hf_gpt2() -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(
        n_layer=6,
        n_embd=128,
        n_head=4,
        vocab_size=2000,
        n_positions=256,
        bos_token_id=0,
        eos_token_id=0,
    )
    ours, theirs = _hf_pair(GPT2LMHeadModel, cfg)
    report = initspec_torch.apply("gpt2", ours, seed=3)
    assert report.unmatched == 0
    check_against_plan(report, ours, theirs)
    rows = {r["path"]: r for r in report.rows()}
    assert rows["transformer.h.5.mlp.c_proj.weight"]["plan"].startswith(
        f"normal(mean=0, std={0.02 / math.sqrt(12):.4g})"
    )
    assert rows["transformer.wte.weight"]["shared_with"] == ["lm_head.weight"]


def test_bert_preset_equals_hf_bert() -> None:
    from transformers import BertConfig, BertModel

    cfg = BertConfig(
        num_hidden_layers=2,
        hidden_size=128,
        num_attention_heads=4,
        intermediate_size=256,
        vocab_size=3000,
        max_position_embeddings=128,
        pad_token_id=None,
    )
    ours, theirs = _hf_pair(BertModel, cfg)
    report = initspec_torch.apply("bert", ours, seed=3)
    assert report.unmatched == 0
    check_against_plan(report, ours, theirs)


def test_nanogpt_preset_equals_nanogpt_init() -> None:
    """nanoGPT model.py: apply(_init_weights) (Linear, Embedding N(0, .02), bias 0), then
    c_proj.weight N(0, .02/sqrt(2 n_layer)); LayerNorm keeps its 1/0."""
    from benchmarks.models_torch import GPT2

    theirs = GPT2(4, 128, 2000, 256)
    for m in theirs.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, 0.0, 0.02)
    for pn, p in theirs.named_parameters():
        if pn.endswith("c_proj.weight"):
            nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * 4))
    ours = copy.deepcopy(theirs)
    check_against_plan(initspec_torch.apply("nanogpt", ours, seed=5), ours, theirs)


def test_torchtitan_preset_equals_torchtitan_init_weights() -> None:
    from benchmarks.models_torch import Llama, llama_hand_init

    theirs = Llama(d=256, n_layers=4, n_heads=4, n_kv=2, ffn=512, vocab=3000)
    torch.manual_seed(0)
    llama_hand_init(theirs)
    ours = copy.deepcopy(theirs)
    report = initspec_torch.apply("torchtitan-llama3", ours, seed=5)
    rows = {r["path"]: r for r in report.rows()}
    assert (
        "std=0.007071," in rows["layers.3.attention.wo.weight"]["plan"]
    )  # 0.02 / sqrt(2 * (3 + 1))
    assert rows["output.weight"]["plan"].startswith(
        f"truncated_normal(mean=0, std={256**-0.5:.4g}, low={-3 * 256**-0.5:.4g}"
    )
    check_against_plan(report, ours, theirs)


def test_keras_defaults_equals_keras_layers() -> None:
    """Keras 3's own Dense, Embedding and LayerNormalization (jax backend) against the plans
    keras-defaults gives the same parameters (Keras layout: kernel (in, out))."""
    import os

    os.environ.setdefault("KERAS_BACKEND", "jax")
    keras = pytest.importorskip("keras")
    from initspec.resolve import ParamInfo, resolve

    dense = keras.layers.Dense(300)
    dense.build((None, 200))
    emb = keras.layers.Embedding(500, 64)
    emb.build((None,))
    ln = keras.layers.LayerNormalization()
    ln.build((None, 64))
    theirs = {
        "dense.kernel": (np.asarray(dense.kernel.numpy()), "linear", "kernel", "keras"),
        "dense.bias": (np.asarray(dense.bias.numpy()), "linear", "bias", "keras"),
        "emb.embedding": (
            np.asarray(emb.embeddings.numpy()),
            "embedding",
            "embedding",
            "embedding",
        ),
        "ln.scale": (np.asarray(ln.gamma.numpy()), "norm", "scale", "keras"),
        "ln.bias": (np.asarray(ln.beta.numpy()), "norm", "bias", "keras"),
    }
    infos = [
        ParamInfo(path, x.shape, kind, role, layout, "float32")
        for path, (x, kind, role, layout) in theirs.items()
    ]
    res = resolve("keras-defaults", infos)
    for rp in res.params:
        x = theirs[rp.info.path][0].astype(np.float64).ravel()
        if isinstance(rp.plan, ConstantPlan):
            np.testing.assert_array_equal(x, rp.plan.value, err_msg=rp.info.path)
        else:
            p = stats.kstest(x, rp.plan.cdf).pvalue
            assert p > KS_P, f"{rp.info.path}: KS p = {p:.2e} against {rp.plan.describe()}"


def test_vit_jax_preset_equals_timm_jax_init() -> None:
    """timm VisionTransformer.init_weights('jax') (vision_transformer.py init_weights_vit_jax,
    transcribed: timm is not installable beside this torch build): Linear xavier_uniform
    (head zero), biases zero except MLP biases N(0, 1e-6), Conv2d lecun_normal with torch
    fans, pos_embed trunc_normal_(std .02), cls_token N(0, 1e-6), LayerNorm 1/0."""

    class Block(nn.Module):
        def __init__(self, d: int) -> None:
            super().__init__()
            self.norm1 = nn.LayerNorm(d)
            self.attn = nn.Module()
            self.attn.qkv = nn.Linear(d, 3 * d)
            self.attn.proj = nn.Linear(d, d)
            self.norm2 = nn.LayerNorm(d)
            self.mlp = nn.Module()
            self.mlp.fc1 = nn.Linear(d, 4 * d)
            self.mlp.fc2 = nn.Linear(4 * d, d)

    class ViT(nn.Module):
        def __init__(self, d: int = 96, depth: int = 2, classes: int = 100) -> None:
            super().__init__()
            self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
            self.pos_embed = nn.Parameter(torch.zeros(1, 65, d))
            self.patch_embed = nn.Module()
            self.patch_embed.proj = nn.Conv2d(3, d, 4, 4)
            self.blocks = nn.ModuleList(Block(d) for _ in range(depth))
            self.norm = nn.LayerNorm(d)
            self.head = nn.Linear(d, classes)

    def timm_jax_init(model: ViT) -> None:
        nn.init.trunc_normal_(model.pos_embed, std=0.02)
        nn.init.normal_(model.cls_token, std=1e-6)
        for name, m in model.named_modules():
            if isinstance(m, nn.Linear):
                if name.startswith("head"):
                    nn.init.zeros_(m.weight)
                    nn.init.zeros_(m.bias)
                else:
                    nn.init.xavier_uniform_(m.weight)
                    if m.bias is not None:
                        nn.init.normal_(m.bias, std=1e-6) if "mlp" in name else nn.init.zeros_(
                            m.bias
                        )
            elif isinstance(m, nn.Conv2d):
                fan_in = m.weight.shape[1] * m.weight.shape[2] * m.weight.shape[3]
                std = (1.0 / fan_in) ** 0.5 / 0.87962566103423978  # timm lecun_normal_
                nn.init.trunc_normal_(m.weight, std=std, a=-2 * std, b=2 * std)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    torch.manual_seed(0)
    theirs = ViT()
    timm_jax_init(theirs)
    ours = copy.deepcopy(theirs)
    report = initspec_torch.apply("vit-jax", ours, seed=2)
    assert report.unmatched == 0, report.table()
    check_against_plan(report, ours, theirs)


def test_torch_defaults_zeroes_the_embedding_padding_row_like_torch() -> None:
    theirs = nn.Embedding(50, 16, padding_idx=3)
    assert torch.all(theirs.weight[3] == 0)
    ours = nn.Embedding(50, 16, padding_idx=3)
    with torch.no_grad():
        ours.weight.fill_(float("nan"))
    for rng in ("native", "portable"):
        initspec_torch.apply("torch-defaults", ours, seed=1, rng=rng)
        assert torch.all(ours.weight[3] == 0)
        assert torch.isfinite(ours.weight).all() and (ours.weight[4] != 0).all()
    # without padding_idx nothing is zeroed
    plain = nn.Embedding(50, 16)
    initspec_torch.apply("torch-defaults", plain, seed=1)
    assert (plain.weight != 0).all()
