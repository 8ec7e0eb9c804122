"""Scenario 4: initspec_jax.apply(flax-defaults) against Flax's own jitted model.init."""

from __future__ import annotations

import jax
import jax.numpy as jnp

import initspec
from benchmarks.common import Pair, compare


def gpt2_linen(n_layer: int, d: int, vocab: int, n_pos: int):
    from flax import linen as nn

    class Block(nn.Module):
        @nn.compact
        def __call__(self, x):
            h = nn.LayerNorm(name="ln_1")(x)
            h = nn.Dense(3 * d, name="c_attn")(h)
            x = x + nn.Dense(d, name="c_proj")(h[..., :d])
            h = nn.LayerNorm(name="ln_2")(x)
            h = nn.Dense(4 * d, name="c_fc")(h)
            return x + nn.Dense(d, name="mlp_c_proj")(jax.nn.gelu(h))

    class GPT2(nn.Module):
        @nn.compact
        def __call__(self, ids):
            x = nn.Embed(vocab, d, name="wte")(ids) + nn.Embed(n_pos, d, name="wpe")(
                jnp.arange(ids.shape[-1])
            )
            for i in range(n_layer):
                x = Block(name=f"h_{i}")(x)
            return nn.LayerNorm(name="ln_f")(x)

    return GPT2()


def flax_gpt2(scale: float = 1.0, repeats: int = 5) -> list[Pair]:
    import initspec_jax

    n_layer = max(1, round(12 * scale))
    d = max(64, int(768 * scale) // 64 * 64)
    vocab = max(1000, int(50257 * scale))
    model = gpt2_linen(n_layer, d, vocab, 1024)
    ids = jnp.zeros((1, 8), jnp.int32)
    init = jax.jit(model.init)
    params = init(jax.random.key(0), ids)
    n = sum(x.size for x in jax.tree_util.tree_leaves(params))
    policy = initspec.preset("flax-defaults")

    def ours() -> None:
        new, _ = initspec_jax.apply(policy, params, seed=0, model=model, model_args=(ids,))
        jax.block_until_ready(new)

    def theirs() -> None:
        jax.block_until_ready(init(jax.random.key(1), ids))

    def theirs_first() -> None:  # a new jit of model.init, compiled in the call
        jax.block_until_ready(jax.jit(model.init)(jax.random.key(1), ids))

    return [
        compare(
            f"4. Flax GPT-2 ({n / 1e6:.0f}M params, jit), warm",
            "initspec_jax.apply(flax-defaults)",
            ours,
            "jit(model.init)",
            theirs,
            repeats,
            "<= 1.0",
        ),
        compare(
            f"4. Flax GPT-2 ({n / 1e6:.0f}M params, jit), first call (jax.clear_caches() before each)",
            "initspec_jax.apply(flax-defaults)",
            ours,
            "jit(model.init)",
            theirs_first,
            max(2, repeats // 2),
            "<= 1.0",
            setup=jax.clear_caches,
        ),
    ]
