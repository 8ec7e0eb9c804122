"""Keras 3 interop: configs in and out, checked against the installed keras (jax backend)."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
from moments import plan_check

import initspec
from initspec.keras import KERAS_CLASSES

os.environ.setdefault("KERAS_BACKEND", "jax")
keras = pytest.importorskip("keras")

SHAPE = (400, 500)  # n = 200_000: see moments.py for the tolerances at this size

CONFIGS = [
    ("Zeros", {}),
    ("Ones", {}),
    ("Constant", {"value": 0.3}),
    ("RandomNormal", {"mean": 0.1, "stddev": 0.2}),
    ("RandomUniform", {"minval": -0.2, "maxval": 0.4}),
    ("TruncatedNormal", {"mean": 0.0, "stddev": 0.3}),
    ("VarianceScaling", {"scale": 2.0, "mode": "fan_out", "distribution": "normal"}),
    ("VarianceScaling", {"scale": 0.5, "mode": "fan_avg", "distribution": "untruncated_normal"}),
    ("VarianceScaling", {"scale": 3.0, "mode": "fan_in", "distribution": "uniform"}),
    ("GlorotUniform", {}),
    ("GlorotNormal", {}),
    ("HeUniform", {}),
    ("HeNormal", {}),
    ("LecunUniform", {}),
    ("LecunNormal", {}),
    ("Orthogonal", {"gain": 2.0}),
    ("Identity", {"gain": 1.5}),
]


def test_every_keras_class_is_covered() -> None:
    assert {c for c, _ in CONFIGS} == set(KERAS_CLASSES)


@pytest.mark.parametrize("cls,cfg", CONFIGS, ids=[f"{c}-{i}" for i, (c, _) in enumerate(CONFIGS)])
def test_keras_config_round_trip_through_real_keras(cls: str, cfg: dict) -> None:
    real = getattr(keras.initializers, cls)(**cfg)
    config = keras.initializers.serialize(real)
    spec = initspec.from_keras(config)
    ours = initspec.to_keras(spec)
    # Keras rebuilds an initializer from our config with the same config (Identity: see below).
    rebuilt = keras.initializers.deserialize(ours)
    assert type(rebuilt) is type(real)
    expected = {k: v for k, v in real.get_config().items() if k != "seed"}
    got = {k: v for k, v in rebuilt.get_config().items() if k != "seed"}
    if cls == "VarianceScaling" and cfg["distribution"] == "normal":
        expected["distribution"] = "truncated_normal"  # Keras's "normal" is truncated
    assert got == expected
    assert initspec.from_keras(ours) == spec


@pytest.mark.parametrize(
    "cls,cfg",
    [c for c in CONFIGS if c[0] not in ("Zeros", "Ones", "Constant", "Orthogonal", "Identity")],
)
def test_keras_semantics_match_real_samples(cls: str, cfg: dict) -> None:
    """Samples of the real Keras initializer follow our plan's exact distribution."""
    init = getattr(keras.initializers, cls)(**cfg, seed=11)
    x = np.asarray(
        init(SHAPE, dtype="float64" if keras.backend.backend() != "jax" else "float32"),
        dtype=np.float64,
    )
    plan = initspec.from_keras(
        keras.initializers.serialize(getattr(keras.initializers, cls)(**cfg))
    ).plan(SHAPE, "keras")
    check = plan_check(x, plan)
    assert check.ok, (plan.describe(), check)


def test_structural_keras_classes_match() -> None:
    x = np.asarray(keras.initializers.Orthogonal(gain=2.0, seed=1)((30, 50)), dtype=np.float64)
    ours = initspec.sample(
        initspec.from_keras({"class_name": "Orthogonal", "config": {"gain": 2.0}}),
        (30, 50),
        "keras",
        dtype="float64",
    )
    np.testing.assert_allclose(x @ x.T, ours @ ours.T, atol=1e-4)
    ident = initspec.sample(
        initspec.from_keras({"class_name": "Identity", "config": {"gain": 1.5}}), (3, 4), "keras"
    )
    np.testing.assert_array_equal(ident, np.asarray(keras.initializers.Identity(gain=1.5)((3, 4))))


def test_keras_normal_means_truncated() -> None:
    spec = initspec.from_keras(
        {"class_name": "VarianceScaling", "config": {"distribution": "normal"}}
    )
    assert spec.distribution == "truncated_normal"
    assert initspec.from_keras("glorot_normal").kind == "glorot_normal"
    assert initspec.from_keras("normal") == initspec.parse({"kind": "normal", "std": 0.05})


def test_seeds_and_axes_are_noted_not_dropped() -> None:
    notes: list[str] = []
    with pytest.warns(initspec.KerasSeedWarning, match="seed 42"):
        initspec.from_keras(
            {
                "class_name": "HeNormal",
                "config": {"seed": 42, "input_axes": [0], "output_axes": [1, 2]},
            },
            notes,
        )
    assert any("seed 42" in n for n in notes) and any("layout" in n for n in notes)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        initspec.from_keras({"class_name": "HeNormal", "config": {"seed": None}})


def test_torch_semantics_are_written_exactly() -> None:
    k = initspec.to_keras({"kind": "kaiming_normal", "nonlinearity": "relu"})
    assert k["config"] == {
        "scale": pytest.approx(2.0),
        "mode": "fan_in",
        "distribution": "untruncated_normal",
        "seed": None,
    }
    assert initspec.to_keras({"kind": "xavier_uniform", "gain": 2.0})["config"][
        "scale"
    ] == pytest.approx(4.0)
    assert initspec.to_keras({"kind": "torch_linear_weight"})["config"]["scale"] == pytest.approx(
        1 / 3
    )
    assert initspec.parse({"kind": "eye", "gain": 3.0}).to_keras()["config"] == {"gain": 3.0}


@pytest.mark.parametrize(
    "raw",
    [
        {"kind": "variance_scaling", "mode": "fan_geo_avg"},
        {"kind": "trunc_normal_"},
        {"kind": "truncated_normal", "bounds": "std", "low": -3, "high": 3},
        {"kind": "dirac"},
        {"kind": "sparse"},
        {"kind": "torch_linear_bias"},
    ],
)
def test_inexpressible_specs_are_refused(raw) -> None:
    with pytest.raises(initspec.SpecError, match="Keras has no initializer"):
        initspec.to_keras(raw)


@pytest.mark.parametrize(
    "config,loc",
    [
        ({"class_name": "STFT", "config": {}}, "$.class_name"),
        ({"class_name": "RandomNormal", "config": {"stdev": 1}}, "$.config.stdev"),
        ({"class_name": "RandomNormal", "config": {"stddev": -1}}, "$.config.std"),
        ({"class_name": "VarianceScaling", "config": {"mode": "fan_geo_avg"}}, "$.config.mode"),
        ({"config": {}}, "$"),
    ],
)
def test_bad_keras_configs(config, loc) -> None:
    with pytest.raises(initspec.SpecError) as err:
        initspec.from_keras(config)
    assert str(err.value).startswith(loc + ":")


# Issue 17: only Keras's built-ins are read; a malformed config is a SpecError, never a TypeError.


class _LookalikeOrthogonal(keras.initializers.Orthogonal):
    """A custom class that serializes with the built-in's class_name."""


_LookalikeOrthogonal.__name__ = "Orthogonal"


def test_custom_class_serialized_as_a_builtin_name_is_refused() -> None:
    config = keras.initializers.serialize(_LookalikeOrthogonal(gain=3.0))
    assert config["class_name"] == "Orthogonal" and config["module"] == __name__
    with pytest.raises(initspec.SpecError) as err:
        initspec.from_keras(config)
    assert str(err.value).startswith(f"$.module: {__name__!r} is invalid: ")
    assert "not a Keras built-in" in str(err.value) and "'keras.initializers'" in str(err.value)


def test_registered_custom_class_is_refused() -> None:
    registered = keras.saving.register_keras_serializable(package="initspec_test")(
        type("Orthogonal", (keras.initializers.Orthogonal,), {})
    )
    config = keras.initializers.serialize(registered(gain=3.0))
    assert config["registered_name"] == "initspec_test>Orthogonal"
    with pytest.raises(initspec.SpecError):
        initspec.from_keras(config)
    # The same registered name on a Keras module is still a custom class.
    forged = {**config, "module": "keras.initializers"}
    with pytest.raises(initspec.SpecError) as err:
        initspec.from_keras(forged)
    assert str(err.value).startswith("$.registered_name: 'initspec_test>Orthogonal' is invalid: ")
    assert "allowed: null" in str(err.value)


@pytest.mark.parametrize(
    "extra,loc",
    [
        ({"module": None}, "$.module"),  # what Keras writes for a class defined in __main__
        ({"module": "my_project.initializers"}, "$.module"),
        ({"module": "kerasx"}, "$.module"),
        ({"module": 3}, "$.module"),
        (
            {"module": "keras.initializers", "registered_name": "Custom>Orthogonal"},
            "$.registered_name",
        ),
        ({"registered_name": ["Orthogonal"]}, "$.registered_name"),
    ],
)
def test_non_builtin_module_or_registered_name_is_refused(extra, loc) -> None:
    with pytest.raises(initspec.SpecError) as err:
        initspec.from_keras({"class_name": "Orthogonal", "config": {"gain": 2.0}, **extra})
    assert str(err.value).startswith(loc + ":")


@pytest.mark.parametrize(
    "extra",
    [
        {},  # older configs carry neither key
        {"module": "keras.initializers", "registered_name": None},
        {"module": "keras.initializers", "registered_name": "Orthogonal"},  # Keras accepts it
        {"module": "keras.src.initializers.random_initializers"},
        {"module": "keras"},
    ],
)
def test_builtin_module_and_registered_name_spellings_are_read(extra) -> None:
    config = {"class_name": "Orthogonal", "config": {"gain": 2.0}, **extra}
    assert initspec.from_keras(config) == initspec.parse({"kind": "orthogonal", "gain": 2.0})
    rebuilt = keras.initializers.deserialize(config)
    assert type(rebuilt) is keras.initializers.Orthogonal


@pytest.mark.parametrize(
    "config,loc,value,allowed",
    [
        (
            {"class_name": "RandomNormal", "config": {"distribution": ["normal"]}},
            "$.config.distribution",
            "['normal']",
            "allowed: mean, seed, stddev",
        ),
        (
            {"class_name": "VarianceScaling", "config": {"distribution": ["normal"]}},
            "$.config.distribution",
            "['normal']",
            "allowed: truncated_normal, normal, untruncated_normal, uniform",
        ),
        (
            {"class_name": "VarianceScaling", "config": {"mode": {"fan_in": 1}}},
            "$.config.mode",
            "{'fan_in': 1}",
            "allowed: fan_in, fan_out, fan_avg",
        ),
        (
            {"class_name": "RandomNormal", "config": {1: 2, "stddev": 0.1}},
            "$.config.1",
            "1",
            "a field name is a string; allowed: mean, seed, stddev",
        ),
        (
            {"class_name": "RandomNormal", "config": {1: 2, "x": 3}},
            "$.config.1",
            "1",
            "allowed: mean, seed, stddev",
        ),
        (
            {"class_name": "VarianceScaling", "config": {None: "normal"}},
            "$.config.None",
            "None",
            "allowed: distribution, mode, scale, seed",
        ),
    ],
)
def test_malformed_keras_config_names_location_value_and_allowed(config, loc, value, allowed):
    with pytest.raises(initspec.SpecError) as err:
        initspec.from_keras(config)
    msg = str(err.value)
    assert msg.startswith(f"{loc}: {value} is invalid: "), msg
    assert allowed in msg, msg


# to_keras expresses every spec with an equivalent variance_scaling form (derived, not re-typed).

NEW_IN_KERAS = [
    {"kind": "fan_truncated_normal", "correct_variance": True, "scale": 2.0},
    {"kind": "fan_truncated_normal", "mode": "fan_avg"},
    {"kind": "fan_truncated_normal", "mode": "fan_out", "scale": 0.5, "cutoff": 2.0},
]


@pytest.mark.parametrize("raw", NEW_IN_KERAS)
def test_newly_expressible_specs_sample_the_same_in_real_keras(raw) -> None:
    spec = initspec.parse(raw)
    config = initspec.to_keras(spec)
    init = keras.initializers.deserialize(config)
    assert type(init) is keras.initializers.VarianceScaling
    assert init.get_config()["distribution"] == "truncated_normal"
    x = np.asarray(keras.initializers.VarianceScaling(**config["config"] | {"seed": 5})(SHAPE))
    plan = spec.plan(SHAPE, "keras")
    check = plan_check(x.astype(np.float64), plan)
    assert check.ok, (plan.describe(), check)
    # ... and the check has power: a std 2% off is caught at this size.
    assert not plan_check(x.astype(np.float64), plan.scaled(1.02)).ok


def test_still_inexpressible_variants_are_refused() -> None:
    for raw in [
        {"kind": "fan_truncated_normal", "cutoff": 3.0},
        {"kind": "fan_truncated_normal", "mode": "fan_geo_avg"},
    ]:
        with pytest.raises(initspec.SpecError, match="Keras has no initializer"):
            initspec.to_keras(raw)
