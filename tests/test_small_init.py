"""small_init (Nguyen & Salazar 2019; GPT-NeoX): parity with GPT-NeoX's function and Keras.

GPT-NeoX's ``megatron/model/init_functions.py``::

    def small_init_init_method(dim):
        std = math.sqrt(2 / (5 * dim))
        def init_(tensor):
            return torch.nn.init.normal_(tensor, mean=0.0, std=std)

GPT-NeoX is not a dependency, so the function is written out below as it is there.
Tolerances: tests/moments.py (|z| <= 5 at the sample size, KS p > 1e-4).
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from moments import plan_check

import initspec

SPEC = {"kind": "small_init"}
D = 384
# The weights GPT-NeoX uses it on, each with fan_in = the hidden size D in its own layout.
LAYERS = [
    ((3 * D, D), "torch"),  # query_key_value: Linear(D, 3D).weight
    ((D, 4 * D), "flax"),  # dense_h_to_4h as a Flax kernel
    ((1000, D), "embedding"),  # word embeddings (vocab, D)
]


@pytest.mark.parametrize("shape,layout", LAYERS)
def test_std_is_gpt_neox_expression_exactly(shape, layout) -> None:
    plan = initspec.parse(SPEC).plan(shape, layout)
    assert plan.describe().startswith("normal(mean=0, ")
    assert plan.mean == 0.0
    assert plan.std == math.sqrt(2 / (5 * D))  # the same float, not approximately


def test_numpy_samples_follow_the_plan_and_a_2_percent_error_is_caught() -> None:
    shape, layout = (500, 400), "torch"
    plan = initspec.parse(SPEC).plan(shape, layout)
    x = initspec.sample(SPEC, shape, layout, seed=3, dtype="float64")
    assert plan_check(x, plan).ok
    assert not plan_check(x * 1.02, plan).ok


def test_parity_with_gpt_neox_small_init_in_torch() -> None:
    torch = pytest.importorskip("torch")
    initspec_torch = pytest.importorskip("initspec_torch")

    def small_init_init_method(dim):  # GPT-NeoX, as quoted in the module docstring
        std = math.sqrt(2 / (5 * dim))

        def init_(tensor):
            return torch.nn.init.normal_(tensor, mean=0.0, std=std)

        return init_

    linear = torch.nn.Linear(400, 500)  # weight (500, 400): fan_in 400 = NeoX's dim
    theirs = torch.empty_like(linear.weight)
    torch.manual_seed(0)
    small_init_init_method(400)(theirs)
    ours = initspec_torch.init_(linear.weight.detach(), SPEC, seed=1, path="fc.weight")
    plan = initspec.parse(SPEC).plan(tuple(linear.weight.shape), "torch")
    assert plan_check(theirs.double().numpy(), plan).ok
    assert plan_check(ours.double().numpy(), plan).ok


def test_keras_variance_scaling_form_samples_the_same() -> None:
    os.environ.setdefault("KERAS_BACKEND", "jax")
    keras = pytest.importorskip("keras")
    config = initspec.to_keras(SPEC)
    assert config["class_name"] == "VarianceScaling"
    assert config["config"] == {
        "scale": 0.4,
        "mode": "fan_in",
        "distribution": "untruncated_normal",
        "seed": None,
    }
    init = keras.initializers.deserialize(config)
    assert type(init) is keras.initializers.VarianceScaling
    shape = (400, 500)  # Keras kernel (in, out): fan_in 400
    x = np.asarray(keras.initializers.VarianceScaling(**config["config"] | {"seed": 7})(shape))
    plan = initspec.parse(SPEC).plan(shape, "keras")
    assert plan_check(x.astype(np.float64), plan).ok
    # Read back it is variance_scaling, the same distribution to the last bits.
    back = initspec.from_keras(config).plan(shape, "keras")
    assert back.std == pytest.approx(plan.std, rel=1e-15)
