"""Flax nnx twins of HF GPT-2 (``GPT2LMHeadModel``) and Llama (``LlamaForCausalLM``).

transformers 5 has no Flax models, so these are written here: the same computation, the same
attribute names, so every parameter has the torch model's canonical path with Flax's leaf
(``transformer.h.0.attn.c_attn.kernel`` for ``transformer.h.0.attn.c_attn.weight``) and a
policy captured from the torch model matches the twin rule for rule. ``load_torch`` copies a
torch model's weights into a twin (Linear weights transposed to Flax's (in, out); GPT-2's
``Conv1D`` already stores (in, out)), so the tests can check that the twin computes what the
torch model computes: the logits agree.

GPT-2 ties ``lm_head`` to ``wte``: the twin reads the logits from ``wte`` (``Embed.attend``),
as Flax GPT-2 ports do, and has no ``lm_head`` parameter. Llama (tie_word_embeddings=False)
has its own ``lm_head``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


def _gelu_new(x: jax.Array) -> jax.Array:
    # HF's "gelu_new": the tanh approximation.
    return 0.5 * x * (1.0 + jnp.tanh(jnp.sqrt(2.0 / jnp.pi) * (x + 0.044715 * x**3)))


# GPT-2 ---------------------------------------------------------------------------------


class GPT2Attention(nnx.Module):
    def __init__(self, d: int, n_head: int, *, rngs: nnx.Rngs) -> None:
        self.n_head = n_head
        self.c_attn = nnx.Linear(d, 3 * d, rngs=rngs)
        self.c_proj = nnx.Linear(d, d, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        b, t, d = x.shape
        q, k, v = jnp.split(self.c_attn(x), 3, axis=-1)
        heads = [a.reshape(b, t, self.n_head, d // self.n_head) for a in (q, k, v)]
        mask = jnp.tril(jnp.ones((t, t), dtype=bool))
        y = nnx.dot_product_attention(*heads, mask=mask)
        return self.c_proj(y.reshape(b, t, d))


class GPT2MLP(nnx.Module):
    def __init__(self, d: int, *, rngs: nnx.Rngs) -> None:
        self.c_fc = nnx.Linear(d, 4 * d, rngs=rngs)
        self.c_proj = nnx.Linear(4 * d, d, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.c_proj(_gelu_new(self.c_fc(x)))


class GPT2Block(nnx.Module):
    def __init__(self, d: int, n_head: int, eps: float, *, rngs: nnx.Rngs) -> None:
        self.ln_1 = nnx.LayerNorm(d, epsilon=eps, rngs=rngs)
        self.attn = GPT2Attention(d, n_head, rngs=rngs)
        self.ln_2 = nnx.LayerNorm(d, epsilon=eps, rngs=rngs)
        self.mlp = GPT2MLP(d, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT2Model(nnx.Module):
    def __init__(self, cfg: Any, *, rngs: nnx.Rngs) -> None:
        d = cfg.n_embd
        self.wte = nnx.Embed(cfg.vocab_size, d, rngs=rngs)
        self.wpe = nnx.Embed(cfg.n_positions, d, rngs=rngs)
        eps = cfg.layer_norm_epsilon
        self.h = nnx.List([GPT2Block(d, cfg.n_head, eps, rngs=rngs) for _ in range(cfg.n_layer)])
        self.ln_f = nnx.LayerNorm(d, epsilon=eps, rngs=rngs)

    def __call__(self, ids: jax.Array) -> jax.Array:
        x = self.wte(ids) + self.wpe(jnp.arange(ids.shape[1]))
        for block in self.h:
            x = block(x)
        return self.ln_f(x)


class GPT2LMHeadModel(nnx.Module):
    """``transformers.GPT2LMHeadModel`` (lm_head tied to wte)."""

    def __init__(self, cfg: Any, *, rngs: nnx.Rngs) -> None:
        self.transformer = GPT2Model(cfg, rngs=rngs)

    def __call__(self, ids: jax.Array) -> jax.Array:
        return self.transformer.wte.attend(self.transformer(ids))


# Llama ---------------------------------------------------------------------------------


def _rope(x: jax.Array, theta: float) -> jax.Array:
    """HF Llama's rotary embedding (rotate_half form) on (batch, time, heads, head_dim)."""
    t, dh = x.shape[1], x.shape[-1]
    inv = 1.0 / theta ** (jnp.arange(0, dh, 2, dtype=jnp.float32) / dh)
    ang = jnp.arange(t, dtype=jnp.float32)[:, None] * inv[None, :]
    emb = jnp.concatenate([ang, ang], axis=-1)[None, :, None, :]
    half = dh // 2
    rotated = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * jnp.cos(emb) + rotated * jnp.sin(emb)


class LlamaAttention(nnx.Module):
    def __init__(self, cfg: Any, *, rngs: nnx.Rngs) -> None:
        d, self.nh, self.nkv = cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads
        self.dh, self.theta = d // self.nh, float(cfg.rope_parameters["rope_theta"])
        bias = cfg.attention_bias
        self.q_proj = nnx.Linear(d, self.nh * self.dh, use_bias=bias, rngs=rngs)
        self.k_proj = nnx.Linear(d, self.nkv * self.dh, use_bias=bias, rngs=rngs)
        self.v_proj = nnx.Linear(d, self.nkv * self.dh, use_bias=bias, rngs=rngs)
        self.o_proj = nnx.Linear(self.nh * self.dh, d, use_bias=bias, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        b, t, _ = x.shape
        q = _rope(self.q_proj(x).reshape(b, t, self.nh, self.dh), self.theta)
        k = _rope(self.k_proj(x).reshape(b, t, self.nkv, self.dh), self.theta)
        v = self.v_proj(x).reshape(b, t, self.nkv, self.dh)
        rep = self.nh // self.nkv
        k, v = jnp.repeat(k, rep, axis=2), jnp.repeat(v, rep, axis=2)
        mask = jnp.tril(jnp.ones((t, t), dtype=bool))
        y = nnx.dot_product_attention(q, k, v, mask=mask)
        return self.o_proj(y.reshape(b, t, self.nh * self.dh))


class LlamaMLP(nnx.Module):
    def __init__(self, cfg: Any, *, rngs: nnx.Rngs) -> None:
        d, f, bias = cfg.hidden_size, cfg.intermediate_size, cfg.mlp_bias
        self.gate_proj = nnx.Linear(d, f, use_bias=bias, rngs=rngs)
        self.up_proj = nnx.Linear(d, f, use_bias=bias, rngs=rngs)
        self.down_proj = nnx.Linear(f, d, use_bias=bias, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.down_proj(nnx.silu(self.gate_proj(x)) * self.up_proj(x))


class LlamaDecoderLayer(nnx.Module):
    def __init__(self, cfg: Any, *, rngs: nnx.Rngs) -> None:
        d, eps = cfg.hidden_size, cfg.rms_norm_eps
        self.self_attn = LlamaAttention(cfg, rngs=rngs)
        self.mlp = LlamaMLP(cfg, rngs=rngs)
        self.input_layernorm = nnx.RMSNorm(d, epsilon=eps, rngs=rngs)
        self.post_attention_layernorm = nnx.RMSNorm(d, epsilon=eps, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x + self.self_attn(self.input_layernorm(x))
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaModel(nnx.Module):
    def __init__(self, cfg: Any, *, rngs: nnx.Rngs) -> None:
        self.embed_tokens = nnx.Embed(cfg.vocab_size, cfg.hidden_size, rngs=rngs)
        self.layers = nnx.List(
            [LlamaDecoderLayer(cfg, rngs=rngs) for _ in range(cfg.num_hidden_layers)]
        )
        self.norm = nnx.RMSNorm(cfg.hidden_size, epsilon=cfg.rms_norm_eps, rngs=rngs)

    def __call__(self, ids: jax.Array) -> jax.Array:
        x = self.embed_tokens(ids)
        for layer in self.layers:
            x = layer(x)
        return self.norm(x)


class LlamaForCausalLM(nnx.Module):
    """``transformers.LlamaForCausalLM`` (untied lm_head, the Llama default)."""

    def __init__(self, cfg: Any, *, rngs: nnx.Rngs) -> None:
        self.model = LlamaModel(cfg, rngs=rngs)
        self.lm_head = nnx.Linear(cfg.hidden_size, cfg.vocab_size, use_bias=False, rngs=rngs)

    def __call__(self, ids: jax.Array) -> jax.Array:
        return self.lm_head(self.model(ids))


# Weights -------------------------------------------------------------------------------


def load_torch(twin: nnx.Module, torch_model: Any) -> list[str]:
    """Copy ``torch_model``'s parameters into ``twin`` by canonical path; returns the torch
    names used. A 2-D ``nn.Linear`` weight (out, in) is transposed to the kernel's (in, out);
    HF ``Conv1D`` weights are (in, out) already; embeddings, norms and biases are copied
    as they are. Raises ``KeyError`` for a twin parameter with no torch counterpart."""
    import torch
    from initspec_jax import describe_nnx

    state = dict(torch_model.named_parameters())
    modules = dict(torch_model.named_modules())
    used = []
    for p in describe_nnx(twin):
        head, _, leaf = p.info.path.rpartition(".")
        name = f"{head}.{'bias' if leaf == 'bias' else 'weight'}"
        tensor = state[name]
        value = tensor.detach().to(torch.float32).numpy()
        if leaf == "kernel" and isinstance(modules[head], torch.nn.Linear):
            value = value.T
        assert value.shape == tuple(p.info.shape), (name, value.shape, p.info.shape)
        p.variable.set_value(jnp.asarray(np.ascontiguousarray(value)))
        used.append(name)
    return used
