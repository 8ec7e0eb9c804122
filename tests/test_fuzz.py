"""Fuzzing: every JSON document either loads or raises an InitSpecError; nothing hangs.

One target per loader: specs (``parse``: dicts and text), policies (``load_policy``: dicts,
text, files, ``extends`` graphs of files), Keras configs (``from_keras``), layouts and
shapes (``fans``), resolution and its report, and the command line (``validate``,
``sample``); plus properties of the matchers (RE2 regexes are fast, globs translated to RE2
mean what ``fnmatch`` means).

CI runs a modest fixed number of examples (profile "ci"); `make fuzz` runs the "fuzz"
profile with 10,000 examples per target.
"""

from __future__ import annotations

import contextlib
import fnmatch
import io
import json
import math
import os
import pathlib
import tempfile
import time
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import initspec
from initspec.backend import ParamInfo, resolve
from initspec.cli import main as cli_main
from initspec.parse import FIELD_ALIASES, KIND_ALIASES
from initspec.patterns import compile_composed, glob_to_re2

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


# Files and extends --------------------------------------------------------------------

_DIR = pathlib.Path(tempfile.mkdtemp(prefix="initspec-fuzz-"))
_FILE_NAMES = ["a.json", "b.json", "sub/c.json", "d.json"]
(_DIR / "sub").mkdir(exist_ok=True)
extends_refs = st.sampled_from(
    [
        "a.json",
        "b.json",
        "sub/c.json",
        "./a.json",
        "../a.json",
        "sub/../a.json",
        "/etc/passwd",
        "/proc/self/environ",
        "/dev/zero",
        str(_DIR / "a.json"),
        "gpt2",
        "torch-defaults",
        "nope",
        "a",
        "",
        "sub",
        "sub/",
        "a.json\x00",
        "C:\\x.json",
    ]
)
file_contents = st.one_of(
    policies.map(lambda p: json.dumps(p, allow_nan=True)),
    st.builds(
        lambda ext, rules: json.dumps({"initspec": 1, "extends": ext, "rules": rules}),
        extends_refs,
        st.lists(rules, max_size=2),
    ),
    st.text(max_size=60),
    st.binary(max_size=60).map(lambda b: b.decode("latin-1")),
    st.sampled_from(
        ['{"initspec": 1, "initspec": 1}', '{"initspec": 1, "rules": [], "rules": []}']
    ),
)


@given(st.lists(file_contents, min_size=1, max_size=len(_FILE_NAMES)), st.booleans())
def test_fuzz_policy_files_and_extends_graphs(contents, as_path) -> None:
    for name, text in zip(_FILE_NAMES, contents, strict=False):
        (_DIR / name).write_bytes(text.encode("utf-8", "surrogatepass"))
    source = _DIR / "a.json"
    loads_or_initspec_error(initspec.load_policy, source if as_path else str(source))


@given(st.binary(max_size=300))
def test_fuzz_policy_files_of_random_bytes(data) -> None:
    path = _DIR / "bytes.json"
    path.write_bytes(data)
    loads_or_initspec_error(initspec.load_policy, path)


def _json_object_text(pairs) -> str:
    """JSON text of an object given as key/value pairs, keys possibly repeated."""
    return "{" + ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in pairs) + "}"


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["initspec", "rules", "name", "seed", "unmatched", "extends", "x"]),
            st.one_of(scalars, st.just([]), st.just(1)),
        ),
        max_size=6,
    )
)
def test_fuzz_policy_text_with_repeated_keys(pairs) -> None:
    text = _json_object_text(pairs)
    keys = [k for k, _ in pairs]
    try:
        initspec.load_policy(text)
    except initspec.InitSpecError as err:
        if len(set(keys)) != len(keys):
            assert "duplicate key" in str(err)
        return
    assert len(set(keys)) == len(keys)  # a repeated key never loads


# Keras configs ---------------------------------------------------------------------------

KERAS_NAMES = [
    "RandomNormal",
    "RandomUniform",
    "TruncatedNormal",
    "VarianceScaling",
    "GlorotUniform",
    "HeNormal",
    "Orthogonal",
    "Identity",
    "Zeros",
    "Ones",
    "Constant",
    "LecunNormal",
    "glorot_uniform",
    "he_normal",
    "zeros",
    "nope",
]
KERAS_FIELDS = [
    "mean",
    "stddev",
    "minval",
    "maxval",
    "seed",
    "scale",
    "mode",
    "distribution",
    "gain",
    "value",
]
keras_configs = st.one_of(
    json_values,
    st.sampled_from(KERAS_NAMES),
    st.fixed_dictionaries(
        {"class_name": st.sampled_from(KERAS_NAMES)},
        optional={
            "config": st.one_of(
                json_values,
                st.dictionaries(st.sampled_from(KERAS_FIELDS), scalars, max_size=4),
                st.dictionaries(st.sampled_from(KERAS_FIELDS), json_values, max_size=3),
            ),
            "module": st.one_of(scalars, st.sampled_from(["keras.initializers", "mypkg"])),
            "registered_name": scalars,
        },
    ),
)


@given(keras_configs)
def test_fuzz_keras_configs(config) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", initspec.KerasSeedWarning)
        loads_or_initspec_error(initspec.from_keras, config)


# Layouts and shapes -------------------------------------------------------------------------

shapes = st.one_of(
    st.lists(st.integers(min_value=-3, max_value=2**64), max_size=5),
    st.lists(scalars, max_size=4),
    scalars,
    st.text(max_size=6),
)
layouts = st.one_of(
    st.sampled_from(["torch", "flax", "keras", "embedding", "torch_transposed", "nope"]),
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            "in": st.one_of(st.lists(st.integers(-6, 6), max_size=3), scalars),
            "out": st.one_of(st.lists(st.integers(-6, 6), max_size=3), scalars),
            "batch": st.one_of(st.lists(st.integers(-6, 6), max_size=2), scalars),
            "name": scalars,
        },
    ),
)


@given(shapes, layouts)
def test_fuzz_fans_on_any_shape_and_layout(shape, layout) -> None:
    try:
        fan_in, fan_out = initspec.fans(shape, layout)
    except initspec.InitSpecError:
        return
    assert fan_in >= 0 and fan_out >= 0


@given(specs, shapes, layouts)
def test_fuzz_plans_on_any_shape_and_layout(obj, shape, layout) -> None:
    try:
        spec = initspec.parse(obj)
        plan = spec.plan(shape, layout)
    except initspec.InitSpecError:
        return
    assert math.isfinite(plan.mean) and math.isfinite(plan.var)
    assert "\n" not in plan.describe()


# Resolution and the report --------------------------------------------------------------

PARAMS = [
    ParamInfo("encoder.layers.0.fc1.weight", (8, 4), "linear", "kernel", "torch", "float32"),
    ParamInfo("encoder.layers.0.fc1.bias", (8,), "linear", "bias", "torch", "float16"),
    ParamInfo("h.11.attn.c_proj.weight", (4, 4), "linear", "kernel", "torch", "bfloat16"),
    ParamInfo("emb\x1b[2J.weight", (10, 3), "embedding", "embedding", "embedding", "float64"),
    ParamInfo("conv.kernel", (3, 3, 2, 4), "conv", "kernel", "flax", "float32"),
    ParamInfo("norm.scale", (4,), "norm", "scale", "flax", "int8"),
]


@given(policies, st.one_of(st.none(), st.integers(min_value=-(2**70), max_value=2**70)))
def test_fuzz_resolve_and_report(obj, seed) -> None:
    try:
        res = resolve(obj, PARAMS, seed=seed)
    except initspec.InitSpecError as err:
        assert "\x1b" not in str(err)
        return
    for p in res.params:
        if p.plan is not None:
            assert math.isfinite(p.plan.mean) and math.isfinite(p.plan.std)
    table = res.report().table()
    assert "\x1b" not in table and "\r" not in table
    assert len(table.splitlines()) == 3 + len(PARAMS) + len(res.report().warnings)
    json.loads(res.report().to_json())


# The command line --------------------------------------------------------------------------


def _cli(*argv: str) -> int:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli_main(list(argv))
        except SystemExit as exc:  # argparse
            code = int(exc.code or 0)
    assert "Traceback" not in err.getvalue()
    assert "\x1b" not in out.getvalue() + err.getvalue()
    return code


@given(
    st.one_of(policies, specs).map(lambda d: json.dumps(d, allow_nan=True)) | st.text(max_size=40)
)
def test_fuzz_cli_validate(text) -> None:
    assert _cli("validate", text) in (0, 1, 2)


@given(
    specs.map(lambda d: json.dumps(d, allow_nan=True)),
    st.lists(st.integers(min_value=0, max_value=40), max_size=3).map(
        lambda dims: ",".join(map(str, dims))
    )
    | st.text(alphabet="0123456789,-. x", max_size=8),
    st.sampled_from(["torch", "flax", "embedding", "nope"]),
)
def test_fuzz_cli_sample(spec_text, shape_text, layout) -> None:
    assert _cli("sample", spec_text, "--shape", shape_text, "--layout", layout, "--json") in (
        0,
        1,
        2,
    )


# Matchers ---------------------------------------------------------------------------------


@given(
    st.text(alphabet="ab.*?[]!-^\\&~|\u00e9z", max_size=14),
    st.text(alphabet="ab.-]!^\\[&~|\u00e9z", max_size=12),
)
def test_fuzz_globs_translated_to_re2_mean_what_fnmatch_means(glob, path) -> None:
    ours = compile_composed(glob_to_re2(glob)).matches(path)
    assert ours == fnmatch.fnmatchcase(path, glob), (glob, path)


PATH_1000 = ("layers.0.attn.weight." * 50)[:999] + "!"


@given(st.text(alphabet="()[]{}*+?|.\\^$ab1-,:=<>!PsdwzZ0", max_size=60))
def test_fuzz_rich_regexes_are_refused_or_fast_on_1000_characters(pattern) -> None:
    pol = {"initspec": 1, "rules": [{"match": {"regex": pattern}, "skip": True}]}
    try:
        policy = initspec.load_policy(pol)
    except initspec.InitSpecError:
        return
    match = policy.rules[0].match
    elapsed = math.inf
    for path in ("a" * 1000, PATH_1000):
        for _ in range(3):  # the best of 3: a loaded machine may pause any one run
            start = time.perf_counter()
            match.matches_path(path)
            elapsed = min(elapsed, time.perf_counter() - start)
            if elapsed < 0.01:
                break
        assert elapsed < 0.05, (pattern, path[:20], elapsed)
