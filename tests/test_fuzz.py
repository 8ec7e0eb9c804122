"""Fuzzing: every JSON document either loads or raises an InitSpecError; nothing hangs.

CI runs a modest fixed number of examples (profile "ci"); `make fuzz` runs the "fuzz"
profile with 10,000 examples per target.
"""

from __future__ import annotations

import json
import math
import os
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import initspec
from initspec.parse import FIELD_ALIASES, KIND_ALIASES

settings.register_profile(
    "ci",
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "fuzz", max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

KINDS = sorted(initspec.SPEC_CLASSES) + sorted(KIND_ALIASES)
FIELDS = sorted(
    {f for c in initspec.SPEC_CLASSES.values() for f in c.model_fields}
    | {a for m in FIELD_ALIASES.values() for a in m}
)

numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, -1, 1e-308, 1e308, 5e-324, 0.5, 2.0, math.inf, -math.inf, math.nan]),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    numbers,
    st.text(max_size=30),
    st.sampled_from(["fan_in", "relu", "normal", "std", "absolute", "torch"]),
)
json_values = st.recursive(
    scalars,
    lambda c: st.one_of(
        st.lists(c, max_size=4), st.dictionaries(st.text(max_size=8), c, max_size=4)
    ),
    max_leaves=12,
)

specs = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"kind": st.sampled_from(KINDS)}, optional={f: json_values for f in FIELDS[:8]}
    ),
    st.builds(
        lambda k, extra: {"kind": k, **extra},
        st.sampled_from(KINDS),
        st.dictionaries(st.sampled_from(FIELDS), scalars, max_size=5),
    ),
)


def loads_or_initspec_error(fn, *args) -> None:
    try:
        fn(*args)
    except initspec.InitSpecError:
        pass


@given(specs)
def test_fuzz_spec_dicts(obj) -> None:
    loads_or_initspec_error(initspec.parse, obj)


@given(specs)
def test_fuzz_spec_json_text(obj) -> None:
    loads_or_initspec_error(initspec.parse, json.dumps(obj, allow_nan=True))


@given(st.text(max_size=200))
def test_fuzz_arbitrary_text(text) -> None:
    loads_or_initspec_error(initspec.parse, text)
    loads_or_initspec_error(initspec.load_policy, "{" + text)


@given(
    specs,
    st.lists(st.integers(min_value=0, max_value=40), max_size=4),
    st.sampled_from(["torch", "flax", "embedding", "keras"]),
)
def test_fuzz_valid_specs_plan_or_raise(obj, shape, layout) -> None:
    try:
        spec = initspec.parse(obj)
    except initspec.InitSpecError:
        return
    try:
        plan = spec.plan(
            tuple(shape), layout, initspec.PlanContext(weight_fans=(3, 4), hidden_size=5)
        )
    except initspec.InitSpecError:
        return
    assert "\n" not in plan.describe()
    # A valid spec has finite parameters, so its plan has finite moments.
    assert math.isfinite(plan.mean) and math.isfinite(plan.var) and plan.var >= 0


matches = st.dictionaries(
    st.sampled_from(["path", "regex", "kind", "module", "role", "ndim", "weird"]),
    st.one_of(
        scalars,
        st.lists(scalars, max_size=3),
        st.sampled_from(["*.weight", "(a+)+$", "layers\\.\\d+", "linear", "bias"]),
    ),
    max_size=4,
)
rules = st.fixed_dictionaries(
    {},
    optional={
        "name": scalars,
        "match": st.one_of(matches, json_values),
        "init": specs,
        "skip": st.booleans(),
        "gain": numbers,
        "depth_scale": st.one_of(
            json_values,
            st.fixed_dictionaries(
                {},
                optional={
                    "factor": numbers,
                    "n_layers": st.one_of(numbers, st.text(max_size=12)),
                    "layer_id": st.text(max_size=20),
                    "offset": numbers,
                },
            ),
        ),
    },
)
policies = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"initspec": st.sampled_from([1, 1, 2, "1", None])},
        optional={
            "rules": st.lists(rules, max_size=4),
            "unmatched": scalars,
            "name": scalars,
            "seed": scalars,
            "extends": st.sampled_from(["gpt2", "nope", "../../etc/passwd", "os.system"]),
        },
    ),
)


@given(policies)
def test_fuzz_policies(obj) -> None:
    loads_or_initspec_error(initspec.load_policy, obj)


@given(st.text(alphabet="()[]{}*+?|.\\^$ab1-", max_size=40))
def test_fuzz_regexes_are_refused_or_fast(pattern) -> None:
    pol = {"initspec": 1, "rules": [{"match": {"regex": pattern}, "skip": True}]}
    try:
        policy = initspec.load_policy(pol)
    except initspec.InitSpecError:
        return
    start = time.perf_counter()
    policy.rules[0].match.matches("a" * 60 + "!", "linear", (), "kernel", 2)
    assert time.perf_counter() - start < 0.5


@pytest.mark.parametrize(
    "pattern", [r"(a+)+$", r"(a|aa)*$", r"(a*)*b", r"(.*a){20}", r"^(([a-z])+.)+[A-Z]([a-z])+$"]
)
def test_catastrophic_patterns_are_refused_or_finish_fast(pattern) -> None:
    pol = {"initspec": 1, "rules": [{"match": {"regex": pattern}, "skip": True}]}
    try:
        policy = initspec.load_policy(pol)
    except initspec.PolicyError as err:
        assert "regex" in str(err)
        return
    start = time.perf_counter()
    policy.rules[0].match.matches("a" * 40 + "!", "linear", (), "kernel", 2)
    assert time.perf_counter() - start < 0.5


def test_deep_nesting_and_long_strings() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(initspec.InitSpecError):
        initspec.parse(deep)
    with pytest.raises(initspec.InitSpecError):
        initspec.load_policy("{" + '"a":' * 50_000 + "1" + "}" * 50_000)
    with pytest.raises(initspec.PolicyError, match="at most 512"):
        initspec.load_policy(
            {"initspec": 1, "rules": [{"match": {"path": "*" * 100_000}, "skip": True}]}
        )
    # unicode paths are ordinary data
    pol = initspec.load_policy(
        {"initspec": 1, "rules": [{"match": {"path": "编码器.*"}, "init": {"kind": "zeros"}}]}
    )
    assert pol.rules[0].match.matches("编码器.层.weight", "linear", (), "kernel", 2)
