"""``initspec_jax.check`` and ``initspec.testing`` on Flax models (nnx and linen)."""

from __future__ import annotations

import initspec_jax
import jax
import jax.numpy as jnp
import pytest
from flax import linen, nnx

import initspec.testing
from initspec import InitCheckError


class MLP(nnx.Module):
    def __init__(self, rngs: nnx.Rngs, dtype: jnp.dtype = jnp.float32) -> None:
        self.fc1 = nnx.Linear(128, 256, rngs=rngs, param_dtype=dtype)
        self.norm = nnx.LayerNorm(256, rngs=rngs, param_dtype=dtype)
        self.fc2 = nnx.Linear(256, 64, rngs=rngs, param_dtype=dtype)


def test_flax_defaults_pass_and_a_rescaled_kernel_fails() -> None:
    model = MLP(nnx.Rngs(0))
    report = initspec_jax.check(model, "flax-defaults")
    assert report.ok, report.table()
    assert report.counts()["ok"] == 6
    model.fc2.kernel[...] = model.fc2.kernel[...] * 0.9
    with pytest.raises(InitCheckError, match="fc2.kernel") as info:
        initspec.testing.assert_initialized_like(model, "flax-defaults")
    assert "fc1.kernel" not in str(info.value)


@pytest.mark.slow  # apply_nnx compiles its samplers: 5 s
def test_bfloat16_params_from_apply_nnx_pass() -> None:
    model = MLP(nnx.Rngs(1), dtype=jnp.bfloat16)
    initspec_jax.apply_nnx("torch-defaults", model, seed=4)
    report = initspec_jax.check(model, "torch-defaults")
    assert report.ok, report.table()
    assert "bfloat16" in {p.dtype for p in report.params}


def test_a_linen_tree_with_its_module() -> None:
    class Net(linen.Module):
        @linen.compact
        def __call__(self, x: jax.Array) -> jax.Array:
            return linen.Dense(32)(linen.Dense(512)(x))

    net = Net()
    variables = net.init(jax.random.key(0), jnp.ones((1, 300)))
    report = initspec.testing.assert_initialized_like(variables, "flax-defaults", model=net)
    assert len(report.params) == 4
