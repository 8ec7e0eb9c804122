"""A small model with a torch version and a Flax nnx twin, for the fingerprint tests.

The twin has the same parameters under the same stream keys (nnx ``fc1.kernel`` is torch's
``fc1.weight``) in Flax's layouts: Linear kernels (in, out), the Conv kernel (kh, kw, in,
out), the embedding table (vocab, features) as in torch. With ``rng="portable"`` and one
policy and seed, both get the same values at the same logical positions.
"""

from __future__ import annotations

from typing import Any

VOCAB, WIDTH, HIDDEN, C_IN, C_OUT = 51, 16, 40, 3, 6  # 51 rows: uneven shards on 2 ranks

POLICY: dict[str, Any] = {
    "initspec": 1,
    "rules": [
        {"match": {"role": "embedding"}, "init": {"kind": "normal", "std": 0.02}},
        {"match": {"role": "scale"}, "init": {"kind": "normal", "mean": 1.0, "std": 0.1}},
        {"match": {"kind": "conv", "role": "kernel"}, "init": {"kind": "kaiming_uniform"}},
        {"match": {"role": "kernel"}, "init": {"kind": "trunc_normal_", "std": 0.02}},
        {"match": {"role": "bias"}, "init": {"kind": "uniform", "low": -0.1, "high": 0.1}},
    ],
}


def torch_model() -> Any:
    """Embedding, LayerNorm, an MLP and a Conv2d (torch layouts)."""
    from torch import nn

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(VOCAB, WIDTH)
            self.ln = nn.LayerNorm(WIDTH)
            self.fc1 = nn.Linear(WIDTH, HIDDEN)
            self.fc2 = nn.Linear(HIDDEN, WIDTH)
            self.conv = nn.Conv2d(C_IN, C_OUT, 3)

    return Block()


def nnx_model() -> Any:
    """The Flax nnx twin of ``torch_model``, built with zeros (a policy then initializes
    it; Flax's own random initializers would only add compilation time)."""
    from flax import nnx

    zeros = nnx.initializers.zeros

    class Block(nnx.Module):
        def __init__(self, rngs: nnx.Rngs) -> None:
            self.embed = nnx.Embed(VOCAB, WIDTH, embedding_init=zeros, rngs=rngs)
            self.ln = nnx.LayerNorm(WIDTH, rngs=rngs)
            self.fc1 = nnx.Linear(WIDTH, HIDDEN, kernel_init=zeros, rngs=rngs)
            self.fc2 = nnx.Linear(HIDDEN, WIDTH, kernel_init=zeros, rngs=rngs)
            self.conv = nnx.Conv(C_IN, C_OUT, (3, 3), kernel_init=zeros, rngs=rngs)

    return Block(nnx.Rngs(0))


# How the JAX test shards the twin on a (4, 2) mesh with axes ("x", "y"); every sharded
# dimension divides evenly (JAX needs it), the biases are replicated or split.
NNX_SPECS: dict[str, tuple[Any, ...]] = {
    "embed.embedding": (None, "x"),
    "ln.scale": ("y",),
    "ln.bias": (),
    "fc1.kernel": ("y", "x"),
    "fc1.bias": ("x",),
    "fc2.kernel": ("x", "y"),
    "fc2.bias": (),
    "conv.kernel": (None, None, None, "y"),
    "conv.bias": ("y",),
}
