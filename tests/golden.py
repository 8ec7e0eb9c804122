"""Golden digests: SHA-256 of what every kind produces on every backend, through the public
entry points (``initspec.sample``, ``initspec_torch.init_``, ``initspec_jax.initializer``,
``apply`` / ``apply_nnx`` / linen ``apply`` on the demo models), native and portable, in
float32 and a 16-bit dtype (bfloat16; NumPy, which has none, float16).

They pin behaviour across refactors: a change that moves code must leave every digest as
it was. ``python tests/golden.py --write`` rewrites tests/fixtures/golden.json; do that only
for a deliberate change of values, and say which cases changed and why.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np

# XLA's optimization level changes the last bit of JAX's native float32 values (it decides
# where multiply-adds are fused); the suite runs JAX at level 0 (tests/conftest.py), and the
# fixture is written under the same flags. The portable stream does not depend on it.
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "golden.json"

# (case name, spec, torch-layout shape, context); the Flax shape is the same tensor in the
# Flax layout (*k, in, out), so a spec means the same distribution on both.
_2D = (24, 16)
_CONV = (8, 4, 3, 3)
CASES: list[tuple[str, dict[str, Any], tuple[int, ...], dict[str, Any]]] = [
    ("zeros", {"kind": "zeros"}, _2D, {}),
    ("ones", {"kind": "ones"}, _2D, {}),
    ("constant", {"kind": "constant", "value": 0.3}, _2D, {}),
    ("uniform", {"kind": "uniform", "low": -0.5, "high": 0.25}, _2D, {}),
    ("uniform_big", {"kind": "uniform", "low": -1.0, "high": 1.0}, (256, 160), {}),
    ("normal", {"kind": "normal", "mean": 0.1, "std": 0.02}, _2D, {}),
    ("normal_big", {"kind": "normal", "std": 0.5}, (256, 160), {}),
    ("truncated_normal", {"kind": "truncated_normal", "std": 0.7}, _2D, {}),
    (
        "truncated_normal_std",
        {"kind": "truncated_normal", "std": 0.3, "low": -2, "high": 2, "bounds": "std"},
        (256, 160),
        {},
    ),
    (
        "truncated_normal_tail",
        {"kind": "truncated_normal", "mean": 0.0, "std": 1.0, "low": 3.0, "high": 5.0},
        _2D,
        {},
    ),
    (
        "truncated_normal_narrow",
        {"kind": "truncated_normal", "mean": 0.0, "std": 1.0, "low": -0.1, "high": 0.3},
        _2D,
        {},
    ),
    ("variance_scaling_normal", {"kind": "variance_scaling", "distribution": "normal"}, _2D, {}),
    (
        "variance_scaling_tn",
        {"kind": "variance_scaling", "scale": 2.0, "mode": "fan_avg"},
        _CONV,
        {},
    ),
    ("variance_scaling_uniform", {"kind": "variance_scaling", "distribution": "uniform"}, _2D, {}),
    ("fan_truncated_normal", {"kind": "fan_truncated_normal", "cutoff": 3.0}, _2D, {}),
    ("glorot_uniform", {"kind": "glorot_uniform"}, _2D, {}),
    ("glorot_normal", {"kind": "glorot_normal"}, _2D, {}),
    ("he_uniform", {"kind": "he_uniform"}, _CONV, {}),
    ("he_normal", {"kind": "he_normal"}, _CONV, {}),
    ("lecun_uniform", {"kind": "lecun_uniform"}, _2D, {}),
    ("lecun_normal", {"kind": "lecun_normal"}, _2D, {}),
    ("xavier_uniform", {"kind": "xavier_uniform", "gain": 1.5}, _2D, {}),
    ("xavier_normal", {"kind": "xavier_normal"}, _2D, {}),
    ("kaiming_uniform", {"kind": "kaiming_uniform", "nonlinearity": "relu"}, _CONV, {}),
    ("kaiming_normal", {"kind": "kaiming_normal", "mode": "fan_out"}, _2D, {}),
    ("torch_linear_weight", {"kind": "torch_linear_weight"}, _2D, {}),
    ("torch_linear_bias", {"kind": "torch_linear_bias"}, (24,), {"weight_fans": (16, 24)}),
    ("torch_rnn", {"kind": "torch_rnn"}, (32, 8), {"hidden_size": 8}),
    ("orthogonal", {"kind": "orthogonal", "gain": 2.0}, _2D, {}),
    ("orthogonal_wide", {"kind": "orthogonal"}, (8, 24), {}),
    ("orthogonal_conv", {"kind": "orthogonal"}, _CONV, {}),
    ("delta_orthogonal", {"kind": "delta_orthogonal", "scale": 1.5}, (8, 4, 3, 3), {}),
    ("eye", {"kind": "eye", "gain": 0.5}, _2D, {}),
    ("dirac", {"kind": "dirac"}, _CONV, {}),
    ("dirac_groups", {"kind": "dirac", "groups": 2}, (8, 4, 3, 3), {}),
    ("sparse", {"kind": "sparse", "sparsity": 0.3, "std": 0.1}, _2D, {}),
]

SEED = 1234
PATH = "block.layer.weight"


def flax_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The torch (out, in, *k) shape in the Flax layout (*k, in, out); 1-D stays."""
    if len(shape) < 2:
        return shape
    return (*shape[2:], shape[1], shape[0])


def torch_layout(x: np.ndarray) -> np.ndarray:
    """A Flax-layout (*k, in, out) array back in the torch layout (out, in, *k)."""
    n = x.ndim
    return x if n < 2 else np.transpose(x, (n - 1, n - 2, *range(n - 2)))


def digest(values: np.ndarray) -> str:
    """SHA-256 of the shape, dtype and little-endian bytes (16-bit floats as their bits)."""
    arr = np.ascontiguousarray(values)
    name = str(arr.dtype)
    if arr.dtype.itemsize == 2:
        arr = arr.view(np.uint16)
    head = f"{arr.shape}|{name}|".encode()
    return hashlib.sha256(head + arr.astype(arr.dtype.newbyteorder("<")).tobytes()).hexdigest()


def _torch_np(t: Any) -> np.ndarray:
    import torch

    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        import ml_dtypes

        return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return t.numpy()


def _numpy_cases() -> Iterator[tuple[str, str]]:
    import initspec
    from initspec.specs import PlanContext

    for name, spec, shape, ctx in CASES:
        for rng in ("native", "portable"):
            for dtype in ("float32", "float16"):
                x = initspec.sample(
                    spec, shape, "torch", SEED, dtype, PATH, PlanContext(**ctx), rng=rng
                )
                yield f"numpy/{rng}/{dtype}/{name}", digest(x)


def _torch_cases() -> Iterator[tuple[str, str]]:
    import initspec_torch
    import torch

    from initspec.specs import PlanContext

    for name, spec, shape, ctx in CASES:
        for rng in ("native", "portable"):
            for dtype in (torch.float32, torch.bfloat16):
                t = torch.empty(shape, dtype=dtype)
                initspec_torch.init_(
                    t, spec, "torch", seed=SEED, path=PATH, context=PlanContext(**ctx), rng=rng
                )
                yield f"torch/{rng}/{str(dtype)[6:]}/{name}", digest(_torch_np(t))


def _jax_cases() -> Iterator[tuple[str, str]]:
    import initspec_jax
    import jax
    import jax.numpy as jnp

    from initspec.specs import PlanContext

    for name, spec, shape, ctx in CASES:
        for rng in ("native", "portable"):
            for dtype in (jnp.float32, jnp.bfloat16):
                init = initspec_jax.initializer(
                    spec, "flax", PlanContext(**ctx), rng=rng, seed=SEED, path=PATH
                )
                x = init(jax.random.key(SEED), flax_shape(shape), dtype)
                yield f"jax/{rng}/{jnp.dtype(dtype).name}/{name}", digest(torch_layout(np.asarray(x)))


def _apply_cases() -> Iterator[tuple[str, str]]:
    import initspec_jax
    import initspec_torch
    import jax
    import jax.numpy as jnp

    sys.path.insert(0, str(ROOT / "examples"))
    import demo

    policy = json.loads((ROOT / "examples" / "demo_policy.json").read_text())
    for rng in ("native", "portable"):
        model = demo.torch_model()
        initspec_torch.apply(policy, model, seed=7, rng=rng)
        for path, p in model.named_parameters():
            yield f"apply/torch/{rng}/{path}", digest(_torch_np(p))
        net = demo.flax_model()
        initspec_jax.apply_nnx(policy, net, seed=7, rng=rng)
        from flax import nnx

        for path, var in nnx.iter_graph(net):
            if isinstance(var, nnx.Param):
                key = ".".join(str(k) for k in path)
                yield f"apply/nnx/{rng}/{key}", digest(np.asarray(var.get_value()))

        import flax.linen as nn

        class Mlp(nn.Module):
            @nn.compact
            def __call__(self, x: Any) -> Any:
                x = nn.Dense(32, name="fc1")(x)
                x = nn.LayerNorm(name="norm")(x)
                return nn.Dense(10, name="head")(x)

        mlp = Mlp()
        x = jnp.ones((1, 16))
        params = mlp.init(jax.random.key(0), x)
        new, _ = initspec_jax.apply(policy, params, seed=7, model=mlp, model_args=(x,), rng=rng)
        for path, leaf in jax.tree_util.tree_leaves_with_path(new):
            yield f"apply/linen/{rng}/{jax.tree_util.keystr(path)}", digest(np.asarray(leaf))


def compute() -> dict[str, str]:
    out: dict[str, str] = {}
    for gen in (_numpy_cases, _torch_cases, _jax_cases, _apply_cases):
        out.update(gen())
    return out


if __name__ == "__main__":
    if "--write" in sys.argv:
        FIXTURE.write_text(json.dumps(compute(), indent=1, sort_keys=True) + "\n")
        print(f"wrote {FIXTURE}")
    else:
        json.dump(compute(), sys.stdout, indent=1, sort_keys=True)
