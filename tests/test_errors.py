"""Errors that list everything: every problem of a spec or policy in one error, each with
its JSON location, the bad value, what is allowed and a close match where one is close."""

from __future__ import annotations

import json

import pytest

import initspec
from initspec.errors import LoadError, PolicyError, Problem, SpecError, suggest


def _policy_error(doc: object) -> PolicyError:
    with pytest.raises(PolicyError) as info:
        initspec.load_policy(doc)  # type: ignore[arg-type]
    return info.value


def test_a_misspelled_kind_and_a_negative_std_are_both_reported() -> None:
    err = _policy_error(
        {
            "initspec": 1,
            "rules": [
                {"match": {"kind": "linear"}, "init": {"kind": "kaiming_normall"}},
                {"init": {"kind": "normal", "std": -0.5}},
            ],
        }
    )
    assert [p.location for p in err.problems] == ["$.rules[0].init.kind", "$.rules[1].init.std"]
    kind, std = err.problems
    assert kind.value == "kaiming_normall" and kind.suggestion == "kaiming_normal"
    assert "unknown kind; allowed: constant," in kind.allowed
    assert std.value == -0.5 and std.allowed == "must be > 0" and std.suggestion is None
    text = str(err)
    assert text.startswith("2 problems:\n")
    assert "did you mean 'kaiming_normal'?" in text and "$.rules[1].init.std: -0.5" in text
    # the first problem stays the error's own loc / value / allowed
    assert err.loc == ("rules", 0, "init", "kind") and err.value == "kaiming_normall"
    assert len(err.errors) == 1  # type: ignore[attr-defined]  # pydantic's own list (std)


def test_unknown_fields_list_the_allowed_ones_at_every_level() -> None:
    err = _policy_error(
        {
            "initspec": 1,
            "rulez": [],
            "modules": {"MyProj": {"kind": "linear", "layuot": "torch"}},
            "rules": [
                {
                    "match": {"rol": "bias"},
                    "gian": 2.0,
                    "init": {"kind": "normal", "stdd": 0.02},
                    "depth_scale": {"n_layers": 4, "factr": 2},
                }
            ],
        }
    )
    by_loc = {p.location: p for p in err.problems}
    expect = {
        "$.rulez": ("rules", "description, extends, initspec, modules, name, rules, seed"),
        "$.modules.MyProj.layuot": ("layout", "allowed fields: kind, layout"),
        "$.rules[0].match.rol": ("role", "kind, module, ndim, path, regex, role, within"),
        "$.rules[0].gian": ("gain", "depth_scale, gain, init, layout, match, name"),
        "$.rules[0].init.stdd": (
            "std",
            "unknown field of kind 'normal'; allowed fields: mean, std",
        ),
        "$.rules[0].depth_scale.factr": ("factor", "factor, layer_id, n_layers, offset"),
    }
    assert set(by_loc) == set(expect), sorted(by_loc)
    for loc, (close, allowed) in expect.items():
        assert by_loc[loc].suggestion == close, loc
        assert allowed in by_loc[loc].allowed, (loc, by_loc[loc].allowed)


def test_enum_values_get_a_close_match() -> None:
    with pytest.raises(SpecError) as info:
        initspec.parse({"kind": "kaiming_normal", "mode": "fanin", "nonlinearity": "reLu"})
    got = {p.location: p.suggestion for p in info.value.problems}
    assert got == {"$.mode": "fan_in", "$.nonlinearity": "relu"}
    err = _policy_error(
        {"initspec": 1, "unmatched": "eror", "rules": [{"match": {"kind": "lineer"}, "skip": True}]}
    )
    got = {p.location: p.suggestion for p in err.problems}
    assert got == {"$.unmatched": "error", "$.rules[0].match.kind[0]": "linear"}


def test_presets_get_a_close_match() -> None:
    with pytest.raises(LoadError, match=r"no preset of that name .*did you mean 'gpt2'\?"):
        initspec.load_policy("gtp2")
    with pytest.raises(LoadError, match=r"unknown preset.*did you mean 'torch-defaults'\?"):
        initspec.preset("torch_defaults")
    err = _policy_error({"initspec": 1, "extends": "nanogtp"})
    assert err.loc == ("extends",) and err.suggestion == "nanogpt"
    # far from every name: no suggestion
    with pytest.raises(LoadError) as info:
        initspec.load_policy("zzzzzz")
    assert info.value.suggestion is None and "did you mean" not in str(info.value)


def test_spec_problems_are_all_listed_and_the_kind_is_suggested() -> None:
    with pytest.raises(SpecError) as info:
        initspec.parse({"kind": "normal", "stdd": 1, "mean": "a"})
    assert [(p.location, p.suggestion) for p in info.value.problems] == [
        ("$.stdd", "std"),
        ("$.mean", None),
    ]
    with pytest.raises(SpecError) as info:
        initspec.parse({"kind": "xavier_unifrom"})
    assert info.value.suggestion == "xavier_uniform"
    with pytest.raises(SpecError, match=r'write \{"kind": "kaiming_normal"\}'):
        initspec.parse("kaiming_normal_")  # torch's name, as text
    with pytest.raises(SpecError, match="parse never reads a file"):
        initspec.parse("my_spec.json")


def test_a_missing_file_says_it_does_not_exist(tmp_path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(LoadError, match="the file does not exist") as info:
        initspec.load_policy(missing)
    assert info.value.value == str(missing)
    with pytest.raises(LoadError, match="the file does not exist"):
        initspec.load_policy(str(missing))


def test_a_bare_word_naming_a_file_is_not_read_but_hinted(tmp_path, monkeypatch) -> None:
    """A bare word is a preset name, never a file (docs/security.md); the error says a file
    of that name exists, without opening it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mypolicy").write_text('{"initspec": 1, "name": "secret-content"}')
    with pytest.raises(LoadError) as info:
        initspec.load_policy("mypolicy")
    text = str(info.value)
    assert "a file of that name is here: write ./NAME" in text and "secret-content" not in text
    assert initspec.load_policy("./mypolicy").name == "secret-content"


def test_extends_errors_keep_every_problem(tmp_path) -> None:
    (tmp_path / "base.json").write_text(
        json.dumps(
            {
                "initspec": 1,
                "rules": [{"init": {"kind": "normall"}}, {"init": {"kind": "normal", "std": 0}}],
            }
        )
    )
    (tmp_path / "child.json").write_text(json.dumps({"initspec": 1, "extends": "base.json"}))
    with pytest.raises(PolicyError) as info:
        initspec.load_policy(tmp_path / "child.json")
    problems = info.value.problems
    assert [p.location for p in problems] == ["$.rules[0].init.kind", "$.rules[1].init.std"]
    assert all(p.allowed.endswith("(in 'base.json', named by extends)") for p in problems)
    assert problems[0].suggestion == "normal"


def test_problems_are_json_data() -> None:
    err = _policy_error(
        {"initspec": 1, "seed": 2**70, "rules": [{"init": {"kind": "normal", "std": float("nan")}}]}
    )
    data = [p.to_dict() for p in err.problems]
    text = json.dumps(data, allow_nan=False)  # no NaN, no huge integer slips through
    assert {d["location"] for d in data} == {"$.seed", "$.rules[0].init.std"}
    assert "nan" in text and json.loads(text)[0]["allowed"]


def test_suggest() -> None:
    assert suggest("kaiming_normall", ["kaiming_normal", "kaiming_uniform"]) == "kaiming_normal"
    assert suggest("Torch-Defaults", ["torch-defaults"]) == "torch-defaults"
    assert suggest("relu", ["relu"]) is None  # nothing to suggest for a valid name
    assert suggest("qqqq", ["relu", "tanh"]) is None
    assert suggest(3, ["relu"]) is None
    assert (
        str(Problem(("a", 0), "x", "bad", "y")) == "$.a[0]: 'x' is invalid: bad (did you mean 'y'?)"
    )


def test_resolution_errors_list_every_parameter() -> None:
    from initspec.resolve import ParamInfo, ResolutionError, resolve

    params = [
        ParamInfo(f"l{i}.weight", (4, 4), "linear", "kernel", "torch", "int8") for i in range(3)
    ]
    with pytest.raises(ResolutionError) as info:
        resolve({"initspec": 1, "rules": [{"init": {"kind": "normal", "std": 1.0}}]}, params)
    assert len(info.value.problems) == 3 and all("int8" in p for p in info.value.problems)


def test_a_union_field_gives_one_problem_naming_each_alternative() -> None:
    err = _policy_error({"initspec": 1, "rules": [{"layout": 5, "skip": True}]})
    (problem,) = err.problems  # not one per union member, and no type name in the path
    assert problem.location == "$.rules[0].layout" and problem.value == 5
    assert (
        problem.allowed == "input should be a valid string, or input should be a valid dictionary"
    )


def test_apply_names_the_resolution_and_the_write_checks_problems_together() -> None:
    """An int parameter (refused by resolve) and a float16 one whose values would overflow
    (refused by the engine's checks): one ResolutionError names both, nothing is written."""
    import initspec_torch
    import torch
    from torch import nn

    from initspec.resolve import ResolutionError

    model = nn.Module()
    model.count = nn.Parameter(torch.zeros(3, dtype=torch.int32), requires_grad=False)
    model.small = nn.Parameter(torch.zeros(4, 4, dtype=torch.float16))
    policy = {"initspec": 1, "rules": [{"init": {"kind": "normal", "std": 1e6}}]}
    with pytest.raises(ResolutionError) as info:
        initspec_torch.apply(policy, model)
    problems = info.value.problems
    assert len(problems) == 2, problems
    assert problems[0].startswith("count (shape (3,)") and "int32" in problems[0]
    assert problems[1].startswith("small (shape (4, 4)") and "float16" in problems[1]
    assert torch.count_nonzero(model.small) == 0
