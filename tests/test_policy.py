"""Policies: matching semantics, scaling, extends, presets' structure, errors with locations."""

from __future__ import annotations

import json
import math

import pytest

import initspec
from initspec import PolicyError
from initspec.backend import ParamInfo, resolve
from initspec.specs import PlanContext


def info(
    path,
    shape=(8, 4),
    kind="linear",
    role="kernel",
    layout="torch",
    dtype="float32",
    types=("Linear",),
    **kw,
):
    return ParamInfo(path, tuple(shape), kind, role, layout, dtype, module_types=types, **kw)


def policy(*rules, **kw):
    return {"initspec": 1, "rules": list(rules), **kw}


def rule_of(res, path):
    return next(p for p in res.params if p.info.path == path)


def test_first_matching_rule_wins() -> None:
    pol = policy(
        {"name": "a", "match": {"path": "fc1.*"}, "init": {"kind": "zeros"}},
        {"name": "b", "match": {"kind": "linear"}, "init": {"kind": "ones"}},
    )
    res = resolve(pol, [info("fc1.weight"), info("fc2.weight")])
    assert rule_of(res, "fc1.weight").rule_index == 0
    assert rule_of(res, "fc2.weight").rule_index == 1


def test_rule_order_holds_across_many_parameters_of_one_kind_and_shape() -> None:
    """Rules are first filtered by kind, module, role and ndim once per combination, then
    by path per parameter: the first matching rule still wins for each parameter, whichever
    rule matched the previous one; same-shape biases with different weight fans get their
    own plans."""
    pol = policy(
        {"name": "third", "match": {"path": "layers.3.*"}, "init": {"kind": "zeros"}},
        {"name": "kernels", "match": {"kind": "linear", "role": "kernel"},
         "init": {"kind": "ones"}},
        {"name": "never", "match": {"path": "*.weight", "kind": "linear"},
         "init": {"kind": "zeros"}},
        {"name": "biases", "match": {"role": "bias", "ndim": 1},
         "init": {"kind": "torch_linear_bias"}},
        {"name": "rest", "match": {}, "init": {"kind": "zeros"}},
    )
    params = []
    for i in range(6):
        params.append(info(f"layers.{i}.weight"))
        fans = PlanContext(weight_fans=(4 * (i + 1), 8))
        params.append(info(f"layers.{i}.bias", (8,), role="bias", context=fans))
    params.append(info("head.weight", kind="other", types=("Head",)))
    res = resolve(pol, params)
    for i in range(6):
        weight, bias = rule_of(res, f"layers.{i}.weight"), rule_of(res, f"layers.{i}.bias")
        assert weight.rule_index == (0 if i == 3 else 1)
        assert bias.rule_index == (0 if i == 3 else 3)
        if i != 3:
            assert bias.plan.high == pytest.approx(1 / math.sqrt(4 * (i + 1)))
    assert rule_of(res, "head.weight").rule_index == 4
    assert res.unused_rules == ["#2 never"]
    # contexts and layouts that cannot be hashed are planned each time, not refused
    lists = PlanContext(weight_fans=[4, 8])  # type: ignore[arg-type]
    res = resolve(pol, [info("fc.bias", (8,), role="bias", context=lists),
                        info("fc.weight", layout={"in": [1], "out": [0]})])
    assert rule_of(res, "fc.bias").plan.high == pytest.approx(0.5)
    assert rule_of(res, "fc.weight").rule_index == 1


def test_globs_cross_dots_and_match_whole_paths() -> None:
    m = initspec.Match(path=["*.c_proj.weight", "layers.*.attn.*"])
    assert m.matches("transformer.h.0.attn.c_proj.weight", "linear", (), "kernel", 2)
    assert m.matches("layers.3.attn.wq.weight", "linear", (), "kernel", 2)
    assert not m.matches("c_proj.weight.extra", "linear", (), "kernel", 2)
    assert not m.matches("x.c_proj.bias", "linear", (), "bias", 1)


def test_regex_is_anchored() -> None:
    m = initspec.Match(regex=r"layers\.\d+\.w[12]\.weight")
    assert m.matches("layers.10.w2.weight", "linear", (), "kernel", 2)
    assert not m.matches("model.layers.10.w2.weight", "linear", (), "kernel", 2)
    assert not m.matches("layers.10.w2.weight_orig", "linear", (), "kernel", 2)


def test_kind_role_module_with_bases_and_ndim() -> None:
    pol = policy(
        {"match": {"module": "GPT2MLP"}, "init": {"kind": "zeros"}},
        {"match": {"kind": ["conv", "conv_transpose"], "ndim": 4}, "init": {"kind": "ones"}},
        {"match": {"role": ["bias", "scale"]}, "init": {"kind": "constant", "value": 2.0}},
    )
    params = [
        info("mlp.fc.weight", types=("MyLinear", "Linear", "Module")),
        info("mlp.c_fc.weight", types=("Conv1D", "GPT2MLP")),
        info("conv.weight", (4, 3, 3, 3), kind="conv", types=("Conv2d",)),
        info("conv1d.weight", (4, 3, 3), kind="conv", types=("Conv1d",)),
        info("ln.weight", (4,), kind="norm", role="scale", types=("LayerNorm",)),
    ]
    res = resolve(pol, params)
    assert [p.rule_index for p in res.params] == [None, 0, 1, None, 2]
    pol2 = policy({"match": {"module": "Linear"}, "init": {"kind": "zeros"}})
    assert resolve(pol2, params[:1]).params[0].rule_index == 0  # matched through a base class


def test_skip_and_unmatched() -> None:
    pol = policy(
        {"match": {"path": "frozen.*"}, "skip": True},
        {"match": {"role": "kernel"}, "init": {"kind": "zeros"}},
    )
    res = resolve(pol, [info("frozen.weight"), info("b.bias", (8,), role="bias")])
    assert [p.status for p in res.params] == ["skip", "unmatched"]
    assert res.report().unmatched == 1
    with pytest.raises(initspec.ResolutionError, match=r"b\.bias .*unmatched='error'"):
        resolve(
            {**pol, "unmatched": "error"},
            [info("frozen.weight"), info("b.bias", (8,), role="bias")],
        )


def test_all_problems_reported_before_anything_is_sampled() -> None:
    pol = policy({"name": "fan", "match": {}, "init": {"kind": "kaiming_normal"}})
    with pytest.raises(initspec.ResolutionError) as err:
        resolve(
            pol,
            [
                info("a.weight"),
                info("a.bias", (8,), role="bias"),
                info("steps", (3,), dtype="int64"),
            ],
        )
    assert len(err.value.problems) == 2
    text = str(err.value)
    assert "a.bias (shape (8,)" in text and "#0 fan" in text and "int64" in text


def test_gain_and_gpt2_depth_scale_counted_from_the_model() -> None:
    pol = policy(
        {
            "match": {"path": "*.c_proj.weight"},
            "init": {"kind": "normal", "std": 0.02},
            "depth_scale": {"factor": 2, "n_layers": "count:h.*"},
        },
        {"match": {}, "init": {"kind": "normal", "std": 0.02}, "gain": 3.0},
    )
    params = [info(f"h.{i}.attn.c_proj.weight") for i in range(12)] + [
        info("wte.weight", kind="embedding", role="embedding")
    ]
    res = resolve(pol, params)
    assert rule_of(res, "h.5.attn.c_proj.weight").plan.std == pytest.approx(0.02 / math.sqrt(24))
    assert rule_of(res, "wte.weight").plan.std == pytest.approx(0.06)
    fixed = policy(
        {"match": {}, "init": {"kind": "normal", "std": 0.02}, "depth_scale": {"n_layers": 48}}
    )
    assert resolve(fixed, params[:1]).params[0].plan.std == pytest.approx(0.02 / math.sqrt(96))


def test_torchtitan_layer_id_depth_scale() -> None:
    pol = policy(
        {
            "match": {"path": "layers.*.attention.wo.weight"},
            "init": {"kind": "trunc_normal_", "std": 0.02},
            "depth_scale": {"factor": 2, "layer_id": "layers.{layer_id}.*", "offset": 1},
        }
    )
    res = resolve(pol, [info(f"layers.{i}.attention.wo.weight") for i in range(4)])
    for i, p in enumerate(res.params):
        assert p.plan.scale == pytest.approx(0.02 / math.sqrt(2 * (i + 1)))
    with pytest.raises(initspec.ResolutionError, match="no layer id"):
        resolve(
            policy(
                {
                    "match": {},
                    "init": {"kind": "normal"},
                    "depth_scale": {"layer_id": "layers.{layer_id}.*"},
                }
            ),
            [info("head.weight")],
        )


def test_gain_on_a_constant_is_refused() -> None:
    with pytest.raises(initspec.ResolutionError, match="constant"):
        resolve(policy({"match": {}, "init": {"kind": "zeros"}, "gain": 2.0}), [info("a.weight")])


def test_context_reaches_specs() -> None:
    pol = policy({"match": {"role": "bias"}, "init": {"kind": "torch_linear_bias"}})
    res = resolve(
        pol, [info("fc.bias", (8,), role="bias", context=PlanContext(weight_fans=(16, 8)))]
    )
    assert res.params[0].plan.high == pytest.approx(0.25)


def test_per_parameter_seeds_are_stable_hashes_of_seed_and_path() -> None:
    pol = policy({"match": {}, "init": {"kind": "normal"}})
    a = resolve(pol, [info("x.weight"), info("y.weight")], seed=5)
    b = resolve(pol, [info("y.weight")], seed=5)
    assert rule_of(a, "y.weight").seed == b.params[0].seed == initspec.derive_seed(5, "y.weight")
    assert resolve({**pol, "seed": 9}, [info("y.weight")]).seed == 9


def test_report_table_json_and_unused_rule_warnings() -> None:
    pol = policy(
        {"name": "kernels", "match": {"role": "kernel"}, "init": {"kind": "xavier_uniform"}},
        {"name": "never", "match": {"kind": "rnn"}, "init": {"kind": "zeros"}},
        name="demo",
    )
    report = resolve(
        pol, [info("fc.weight", shared_with=("head.weight",)), info("fc.bias", (8,), role="bias")]
    ).report()
    table = report.table()
    assert (
        "fc.weight (= head.weight)" in table and "#0 kernels" in table and "no rule (kept)" in table
    )
    assert "fan_in=4 fan_out=8" in table
    assert report.warnings == ["rule #1 never matched no parameter"]
    doc = json.loads(report.to_json())
    assert doc["policy"] == "demo" and doc["unmatched"] == 1
    assert doc["parameters"][0]["spec"]["kind"] == "xavier_uniform"
    assert doc["parameters"][0]["fans"] == [4, 8]


# Loading, extends and errors ------------------------------------------------------------


def test_load_from_dict_json_file_and_preset(tmp_path) -> None:
    raw = policy({"match": {"role": "bias"}, "init": {"kind": "zeros"}}, name="p")
    path = tmp_path / "p.json"
    path.write_text(json.dumps(raw))
    assert (
        initspec.load_policy(raw)
        == initspec.load_policy(json.dumps(raw))
        == initspec.load_policy(str(path))
    )
    assert initspec.load_policy("gpt2") == initspec.preset("gpt2")


def test_extends_puts_child_rules_first(tmp_path) -> None:
    (tmp_path / "base.json").write_text(
        json.dumps(
            policy(
                {"name": "base", "match": {}, "init": {"kind": "ones"}}, seed=3, unmatched="error"
            )
        )
    )
    (tmp_path / "child.json").write_text(
        json.dumps(
            policy(
                {"name": "child", "match": {"role": "bias"}, "init": {"kind": "zeros"}},
                extends="base.json",
            )
        )
    )
    pol = initspec.load_policy(str(tmp_path / "child.json"))
    assert [r.name for r in pol.rules] == ["child", "base"]
    assert pol.seed == 3 and pol.unmatched == "error" and pol.extends is None
    from_preset = initspec.load_policy(
        policy({"match": {"path": "lm_head.*"}, "skip": True}, extends="gpt2")
    )
    assert len(from_preset.rules) == 1 + len(initspec.preset("gpt2").rules)


def test_extends_cycle_is_an_error(tmp_path) -> None:
    (tmp_path / "a.json").write_text(json.dumps(policy(extends="b.json")))
    (tmp_path / "b.json").write_text(json.dumps(policy(extends="a.json")))
    with pytest.raises(PolicyError, match="cycle in extends"):
        initspec.load_policy(str(tmp_path / "a.json"))


BAD = [
    ({"rules": []}, "$.initspec", "field required"),
    ({"initspec": 2}, "$.initspec", "allowed: 1"),
    (policy(unmatched="ignore"), "$.unmatched", "'keep' or 'error'"),
    (
        policy({"match": {"kind": "dense"}, "init": {"kind": "zeros"}}),
        "$.rules[0].match.kind[0]",
        "'linear'",
    ),
    (
        policy({"match": {"role": "weight"}, "init": {"kind": "zeros"}}),
        "$.rules[0].match.role[0]",
        "'kernel'",
    ),
    (
        policy({"match": {"regex": "(unclosed"}, "skip": True}),
        "$.rules[0].match.regex",
        "not a valid regular expression",
    ),
    (
        policy({"match": {"path": "x" * 600}, "skip": True}),
        "$.rules[0].match.path[0]",
        "at most 512",
    ),
    (policy({"init": {"kind": "normal", "std": -1}}), "$.rules[0].init.std", "must be > 0"),
    (policy({"init": {"kind": "kaimin"}}), "$.rules[0].init.kind", "unknown kind"),
    (policy({"init": {"kind": "zeros"}, "skip": True}), "$.rules[0]", "either 'init'"),
    (policy({"match": {}}), "$.rules[0]", "either 'init'"),
    (policy({"init": {"kind": "zeros"}, "colour": 1}), "$.rules[0].colour", "unknown field"),
    (
        policy({"init": {"kind": "normal"}, "depth_scale": {"factor": 2}}),
        "$.rules[0].depth_scale",
        "exactly one of",
    ),
    (
        policy({"init": {"kind": "normal"}, "depth_scale": {"n_layers": "h.*"}}),
        "$.rules[0].depth_scale.n_layers",
        "count:",
    ),
    (policy(extends="no-such-preset"), "$.extends", "presets:"),
]


@pytest.mark.parametrize("raw,loc,allowed", BAD, ids=[b[1] + ":" + b[2] for b in BAD])
def test_policy_errors_name_json_location(raw, loc, allowed) -> None:
    with pytest.raises(PolicyError) as err:
        initspec.load_policy(raw)
    msg = str(err.value)
    assert msg.startswith(loc + ":"), msg
    assert allowed in msg, msg


def test_presets_all_load_and_have_rules() -> None:
    names = initspec.presets()
    assert {
        "torch-defaults",
        "flax-defaults",
        "keras-defaults",
        "gpt2",
        "bert",
        "nanogpt",
        "torchtitan-llama3",
        "vit-jax",
    } <= set(names)
    for name in names:
        pol = initspec.preset(name)
        assert pol.name == name and pol.rules and pol.description
    with pytest.raises(PolicyError, match="available: bert"):
        initspec.preset("nope")
