"""Torch models shaped like the real ones (no downloads): GPT-2 small, ResNet-50, Llama."""

from __future__ import annotations

import math

import torch
from torch import nn


class GPT2Block(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(d)
        self.attn = nn.Module()
        self.attn.c_attn = nn.Linear(d, 3 * d)
        self.attn.c_proj = nn.Linear(d, d)
        self.ln_2 = nn.LayerNorm(d)
        self.mlp = nn.Module()
        self.mlp.c_fc = nn.Linear(d, 4 * d)
        self.mlp.c_proj = nn.Linear(4 * d, d)


class GPT2(nn.Module):
    """GPT-2 small at scale 1.0: 12 layers, d=768, vocab 50257: 124M parameters."""

    def __init__(
        self,
        n_layer: int = 12,
        d: int = 768,
        vocab: int = 50257,
        n_pos: int = 1024,
        device: str | None = None,
    ) -> None:
        super().__init__()
        with torch.device(device or "cpu"):
            self.wte = nn.Embedding(vocab, d)
            self.wpe = nn.Embedding(n_pos, d)
            self.h = nn.ModuleList(GPT2Block(d) for _ in range(n_layer))
            self.ln_f = nn.LayerNorm(d)
            self.lm_head = nn.Linear(d, vocab, bias=False)
        self.lm_head.weight = self.wte.weight  # tied, as GPT-2
        self.n_layer = n_layer


def gpt2_hand_init(model: GPT2, std: float = 0.02) -> None:
    """HF GPT2PreTrainedModel._init_weights, each parameter drawn once."""
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear):
            s = std / math.sqrt(2 * model.n_layer) if name.endswith("c_proj") else std
            nn.init.normal_(m.weight, 0.0, s)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding) and name != "lm_head":
            nn.init.normal_(m.weight, 0.0, std)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class Bottleneck(nn.Module):
    def __init__(self, cin: int, width: int, stride: int) -> None:
        super().__init__()
        cout = width * 4
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.downsample = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if (stride != 1 or cin != cout)
            else None
        )


class ResNet50(nn.Module):
    """torchvision's ResNet-50 shapes (25.6M parameters at width 64)."""

    def __init__(
        self, width: int = 64, blocks: tuple[int, ...] = (3, 4, 6, 3), classes: int = 1000
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        layers = []
        cin = width
        for i, n in enumerate(blocks):
            w = width * 2**i
            stage = [
                Bottleneck(cin if j == 0 else w * 4, w, 2 if (j == 0 and i > 0) else 1)
                for j in range(n)
            ]
            cin = w * 4
            layers.append(nn.Sequential(*stage))
        self.layers = nn.ModuleList(layers)
        self.fc = nn.Linear(cin, classes)


def reset_all(model: nn.Module) -> None:
    for m in model.modules():
        if hasattr(m, "reset_parameters") and m is not model:
            m.reset_parameters()


class LlamaBlock(nn.Module):
    def __init__(self, d: int, n_heads: int, n_kv: int, ffn: int) -> None:
        super().__init__()
        head = d // n_heads
        self.attention_norm = nn.RMSNorm(d)
        self.attention = nn.Module()
        self.attention.wq = nn.Linear(d, d, bias=False)
        self.attention.wk = nn.Linear(d, n_kv * head, bias=False)
        self.attention.wv = nn.Linear(d, n_kv * head, bias=False)
        self.attention.wo = nn.Linear(d, d, bias=False)
        self.ffn_norm = nn.RMSNorm(d)
        self.feed_forward = nn.Module()
        self.feed_forward.w1 = nn.Linear(d, ffn, bias=False)
        self.feed_forward.w2 = nn.Linear(ffn, d, bias=False)
        self.feed_forward.w3 = nn.Linear(d, ffn, bias=False)


class Llama(nn.Module):
    """Llama 3.2 1B shapes at the defaults (d 2048, 16 layers, ffn 8192, vocab 128256)."""

    def __init__(
        self,
        d: int = 2048,
        n_layers: int = 16,
        n_heads: int = 32,
        n_kv: int = 8,
        ffn: int = 8192,
        vocab: int = 128256,
    ) -> None:
        super().__init__()
        self.tok_embeddings = nn.Embedding(vocab, d)
        self.layers = nn.ModuleList(LlamaBlock(d, n_heads, n_kv, ffn) for _ in range(n_layers))
        self.norm = nn.RMSNorm(d)
        self.output = nn.Linear(d, vocab, bias=False)
        self.dim = d


def llama_hand_init(model: Llama) -> None:
    """torchtitan Llama 3 with depth init (the old layout's init_weights)."""
    nn.init.normal_(model.tok_embeddings.weight)
    for layer_id, layer in enumerate(model.layers):
        depth_std = 0.02 / (2 * (layer_id + 1)) ** 0.5
        for lin in (
            layer.attention.wq,
            layer.attention.wk,
            layer.attention.wv,
            layer.feed_forward.w1,
        ):
            nn.init.trunc_normal_(lin.weight, mean=0.0, std=0.02)
        for lin in (layer.attention.wo, layer.feed_forward.w2, layer.feed_forward.w3):
            nn.init.trunc_normal_(lin.weight, mean=0.0, std=depth_std)
        for norm in (layer.attention_norm, layer.ffn_norm):
            nn.init.ones_(norm.weight)
    nn.init.ones_(model.norm.weight)
    s = model.dim**-0.5
    nn.init.trunc_normal_(model.output.weight, mean=0.0, std=s, a=-3 * s, b=3 * s)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
