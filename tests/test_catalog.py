"""A kind in one place: the facts each spec class declares, and what is built from them.

``Spec``, ``SPEC_CLASSES``, the parser's alias tables, the Keras reader and writer, the
catalog page and the conformance matrix all come from the registered classes; these tests
check that they agree and that ``register`` refuses a catalog slip before it is recorded.
"""

from __future__ import annotations

import math
import typing
from typing import Literal

import pytest

import initspec
from initspec import specs
from initspec.keras import _BY_NAME, KERAS_CLASSES
from initspec.parse import FIELD_ALIASES, KIND_ALIASES

SHAPES = [((64, 48), "torch"), ((3, 3, 16, 32), "flax"), ((8, 16, 3), "torch_transposed")]


def test_spec_union_is_built_from_the_registered_classes() -> None:
    annotated, _ = typing.get_args(specs.Spec)
    assert list(typing.get_args(annotated)) == list(initspec.SPEC_CLASSES.values())
    assert set(initspec.schema()["discriminator"]["mapping"]) == set(initspec.SPEC_CLASSES)


def test_alias_tables_are_views_of_the_classes() -> None:
    for kind, cls in initspec.SPEC_CLASSES.items():
        assert {a for a, k in KIND_ALIASES.items() if k == kind} == set(cls.kind_aliases)
        assert FIELD_ALIASES.get(kind, {}) == dict(cls.field_aliases)
    assert set(KERAS_CLASSES) == {n for n, (_, form) in _BY_NAME.items() if n == form.class_name}


def _examples():
    for kind, cls in initspec.SPEC_CLASSES.items():
        for ex in cls.conformance:
            yield pytest.param({"kind": kind, **ex.fields}, id=f"{kind}-{dict(ex.fields)}")
        yield pytest.param({"kind": kind}, id=f"{kind}-defaults")


@pytest.mark.parametrize("raw", list(_examples()))
def test_to_keras_and_back_plans_the_same_distribution(raw) -> None:
    """Whatever to_keras writes (a kind's own Keras class or its variance_scaling form),
    reading it back plans the same distribution: plan type, mean, variance and bounds."""
    spec = initspec.parse(raw)
    try:
        config = spec.to_keras()
    except initspec.SpecError as err:
        assert "Keras has no initializer" in str(err)
        assert (
            spec.as_variance_scaling() is None or spec.as_variance_scaling().mode == "fan_geo_avg"
        )
        return
    back = initspec.from_keras(config)
    ctx = initspec.PlanContext(weight_fans=(48, 64), hidden_size=32)
    for shape, layout in SHAPES:
        try:
            ours = spec.plan(shape, layout, ctx)
        except initspec.ShapeError:
            continue
        theirs = back.plan(shape, layout, ctx)
        assert type(theirs) is type(ours)
        assert theirs.mean == pytest.approx(ours.mean, rel=1e-12, abs=1e-300)
        assert theirs.var == pytest.approx(ours.var, rel=1e-12, abs=1e-300)
        if ours.bounds is not None:
            assert theirs.bounds == pytest.approx(ours.bounds, rel=1e-12)


def test_to_keras_of_a_named_kind_uses_its_own_keras_class() -> None:
    assert initspec.to_keras({"kind": "he_normal"})["class_name"] == "HeNormal"
    # ... and a kind with none writes its variance_scaling form.
    vs = initspec.parse({"kind": "xavier_uniform", "gain": 2.0}).as_variance_scaling()
    assert initspec.to_keras({"kind": "xavier_uniform", "gain": 2.0}) == vs.to_keras()


def test_implied_fields_hook_does_not_override_what_is_given() -> None:
    given = {"kind": "truncated_normal", "lower": -1.0, "upper": 1.0, "bounds": "absolute"}
    assert initspec.parse(given).bounds == "absolute"
    assert initspec.parse({"kind": "truncated_normal", "upper": 1.0}).bounds == "std"


def _kind(name: str, **facts):
    # A fresh class each call; register() checks it before recording anything.
    return type(
        f"Scratch_{name}",
        (specs.SpecBase,),
        {
            "__annotations__": {"kind": Literal[name], "std": float},
            "kind": name,
            "std": 1.0,
            **facts,
        },
    )


@pytest.mark.parametrize(
    "facts,problem",
    [
        ({"kind_aliases": ("normal_",)}, "kind name 'normal_' is claimed twice"),
        ({"kind_aliases": ("a", "a")}, "kind name 'a' is claimed twice"),
        ({"field_aliases": {"sd": "sigma"}}, "field alias 'sd' -> 'sigma' names no field"),
        ({"field_aliases": {"std": "std"}}, "names no field"),
        (
            {"keras_forms": (specs.KerasForm("ScratchNormal", {"stddev": 1.0}),)},
            "names a missing field",
        ),
        (
            {
                "field_aliases": {"stddev": "std"},
                "keras_forms": (specs.KerasForm("RandomNormal", {"stddev": 1.0}),),
            },
            "Keras name 'RandomNormal' is claimed twice",
        ),
        ({}, "registered after Spec was built"),
    ],
)
def test_register_refuses_a_catalog_slip_and_records_nothing(facts, problem) -> None:
    before = (list(specs._KINDS), dict(specs._NAMES), dict(specs._KERAS_NAMES))
    with pytest.raises(initspec.InitSpecError, match=problem):
        specs.register(_kind("scratch_kind", **facts))
    assert (list(specs._KINDS), dict(specs._NAMES), dict(specs._KERAS_NAMES)) == before


def test_register_refuses_a_class_without_a_kind() -> None:
    class NoKind(specs.SpecBase):
        std: float = 1.0

    with pytest.raises(initspec.InitSpecError, match="needs kind"):
        specs.register(NoKind)


def test_fan_truncated_normal_variance_scaling_form_is_exact() -> None:
    """Cut at 2 sigma, fan_truncated_normal is variance_scaling's truncated normal."""
    corrected = initspec.parse(
        {"kind": "fan_truncated_normal", "scale": 2.0, "correct_variance": True}
    )
    assert corrected.as_variance_scaling() == initspec.parse(
        {"kind": "variance_scaling", "scale": 2.0, "distribution": "truncated_normal"}
    )
    plain = initspec.parse(
        {"kind": "fan_truncated_normal", "mode": "fan_avg"}
    ).as_variance_scaling()
    assert plain.scale == pytest.approx(specs.TRUNC_STD_2SIGMA**2)
    assert plain.mode == "fan_avg"
    assert (
        initspec.parse({"kind": "fan_truncated_normal", "cutoff": 3.0}).as_variance_scaling()
        is None
    )
    ours = corrected.plan((256, 320))
    vs = corrected.as_variance_scaling().plan((256, 320))
    assert ours.std == vs.std and ours.bounds == vs.bounds  # the 0.8796... is the same float
    assert math.isclose(
        initspec.parse({"kind": "fan_truncated_normal", "mode": "fan_avg"}).plan((256, 320)).std,
        plain.plan((256, 320)).std,
        rel_tol=1e-12,
    )
