"""Matching that fits real models, loudly (#16 items 3 and 4): tied names, one leaf
vocabulary for torch and Flax, InitSpecWarning for what a policy did not do, strict mode."""

from __future__ import annotations

import warnings

import initspec_torch
import pytest
import torch
from torch import nn

import initspec
from initspec import InitSpecWarning, ResolutionError


class Tied(nn.Module):
    """An embedding tied to the head, listed first as ``tok`` or first as ``head``."""

    def __init__(self, head_first: bool) -> None:
        super().__init__()
        table = nn.Embedding(50, 16)
        head = nn.Linear(16, 50, bias=False)
        head.weight = table.weight
        if head_first:
            self.head, self.tok = head, table
        else:
            self.tok, self.head = table, head


HEAD_RULE = {"name": "head", "match": {"path": ["head.weight"]}, "init": {"kind": "normal", "std": 0.0617}}
EMB_RULE = {"name": "table", "match": {"kind": "embedding"}, "init": {"kind": "normal", "std": 1.0}}


@pytest.mark.parametrize("head_first", [False, True])
@pytest.mark.parametrize("head_rule_first", [True, False])
def test_tied_parameter_matches_under_any_name(head_first: bool, head_rule_first: bool) -> None:
    """Of the rules matching any of its names, the first in the policy wins, whichever
    name the module lists first; the rule that lost is unused (and said so)."""
    rules = [HEAD_RULE, EMB_RULE] if head_rule_first else [EMB_RULE, HEAD_RULE]
    model = Tied(head_first)
    with pytest.warns(InitSpecWarning, match="1 rule\\(s\\) matched no parameter"):
        report = initspec_torch.apply({"initspec": 1, "rules": rules}, model, seed=0)
    (row,) = report.rows()
    assert row["rule_name"] == ("head" if head_rule_first else "table")
    assert set([row["path"], *row["shared_with"]]) == {"tok.weight", "head.weight"}
    expected = 0.0617 if head_rule_first else 1.0
    # 800 draws: the std's standard error is std / sqrt(1600); 5 SE = 12.5% of std
    assert abs(float(model.tok.weight.std()) / expected - 1) < 0.125


def test_torch_named_policy_matches_the_flax_twin() -> None:
    """A policy with torch leaf names only (``*.weight``) on an nnx twin: every kernel,
    scale and embedding matches, and gets what its torch twin gets."""
    pytest.importorskip("flax")
    import initspec_jax
    from flax import nnx

    policy = {
        "initspec": 1,
        "unmatched": "error",
        "rules": [
            {"match": {"path": ["emb.weight"]}, "init": {"kind": "normal", "std": 0.5}},
            {"match": {"path": ["*fc.weight"]}, "init": {"kind": "kaiming_normal"}},
            {"match": {"path": ["norm.weight"]}, "init": {"kind": "ones"}},
            {"match": {"path": ["*.bias"]}, "init": {"kind": "zeros"}},
        ],
    }

    class TorchNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(10, 8)
            self.fc = nn.Linear(8, 4)
            self.norm = nn.LayerNorm(4)

    class FlaxNet(nnx.Module):
        def __init__(self) -> None:
            rngs = nnx.Rngs(0)
            self.emb = nnx.Embed(10, 8, rngs=rngs)
            self.fc = nnx.Linear(8, 4, rngs=rngs)
            self.norm = nnx.LayerNorm(4, rngs=rngs)

    rt = initspec_torch.apply(policy, TorchNet(), seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", InitSpecWarning)  # every rule used, nothing kept
        rf = initspec_jax.apply_nnx(policy, FlaxNet(), seed=1)
    names = {r["path"]: r["names"] for r in rf.rows()}
    assert names["fc.kernel"] == ["fc.kernel", "fc.weight"]  # the report shows both spellings
    by_rule_t = sorted((r["rule_index"], r["plan"]) for r in rt.rows())
    by_rule_f = sorted((r["rule_index"], r["plan"]) for r in rf.rows())
    assert by_rule_t == by_rule_f and len(by_rule_f) == 5


def test_flax_named_policy_matches_torch() -> None:
    policy = {"initspec": 1, "unmatched": "error", "rules": [
        {"match": {"path": ["fc.kernel"]}, "init": {"kind": "zeros"}},
        {"match": {"path": ["fc.bias"]}, "init": {"kind": "ones"}},
    ]}  # fmt: skip
    model = nn.Sequential()
    model.fc = nn.Linear(3, 2)
    initspec_torch.apply(policy, model)
    assert float(model.fc.weight.abs().sum()) == 0.0


def test_unused_rules_and_kept_parameters_warn_once() -> None:
    policy = {"initspec": 1, "rules": [
        {"name": "attention", "match": {"kind": "attention"}, "init": {"kind": "zeros"}},
        {"match": {"role": "kernel"}, "init": {"kind": "zeros"}},
    ]}  # fmt: skip
    model = nn.Sequential(nn.Linear(3, 2))
    with pytest.warns(InitSpecWarning) as record:
        initspec_torch.apply(policy, model)
    assert len(record) == 1
    text = str(record[0].message)
    assert "#0 attention" in text and "0.bias" in text and "strict=True" in text


@pytest.mark.parametrize("how", ["argument", "policy", "extends"])
def test_strict_refuses_before_writing(how: str, tmp_path: object) -> None:
    rules = [{"match": {"kind": "attention"}, "init": {"kind": "zeros"}},
             {"match": {"role": "kernel"}, "init": {"kind": "zeros"}}]  # fmt: skip
    policy: dict[str, object] = {"initspec": 1, "rules": rules}
    kwargs: dict[str, object] = {}
    if how == "argument":
        kwargs["strict"] = True
    elif how == "policy":
        policy["strict"] = True
    else:
        import json
        import pathlib

        base = pathlib.Path(str(tmp_path)) / "base.json"
        base.write_text(json.dumps({"initspec": 1, "strict": True, "rules": []}))
        policy["extends"] = "base.json"
        policy = initspec.load_policy(policy, base_dir=str(tmp_path)) if _has_base_dir() else policy
    model = nn.Sequential(nn.Linear(3, 2))
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ResolutionError) as info:
        initspec_torch.apply(policy, model, **kwargs)
    assert "matched no parameter (strict)" in str(info.value)
    assert "0.bias: no rule matches (strict)" in str(info.value)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), before, strict=True))
    with pytest.raises(ResolutionError):
        initspec_torch.explain(policy, model, **kwargs)


def _has_base_dir() -> bool:
    import inspect

    return "base_dir" in inspect.signature(initspec.load_policy).parameters


class BasicBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.bn1, self.bn2 = nn.BatchNorm2d(4), nn.BatchNorm2d(4)


class Bottleneck(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.bn1, self.bn2, self.bn3 = nn.BatchNorm2d(4), nn.BatchNorm2d(4), nn.BatchNorm2d(4)


def test_within_an_enclosing_module_type() -> None:
    """timm's ResNet zeroes bn2 in a BasicBlock but bn3 in a Bottleneck."""
    policy = {"initspec": 1, "rules": [
        {"match": {"path": ["*.bn2.weight"], "within": ["BasicBlock"]}, "init": {"kind": "zeros"}},
        {"match": {"path": ["*.bn3.weight"], "within": ["Bottleneck"]}, "init": {"kind": "zeros"}},
        {"match": {"kind": "norm"}, "init": {"kind": "ones"}},
    ]}  # fmt: skip
    model = nn.Sequential(BasicBlock(), Bottleneck())
    rows = {r["path"]: r["rule_index"] for r in initspec_torch.apply(policy, model).rows()}
    assert rows["0.bn2.weight"] == 0 and rows["1.bn3.weight"] == 1
    assert rows["1.bn2.weight"] == 2 and rows["0.bn1.weight"] == 2
    assert float(model[0].bn2.weight.abs().sum()) == 0 and float(model[1].bn2.weight.min()) == 1


def test_within_by_type_glob_and_by_path_glob() -> None:
    class SelfAttention(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.q_proj, self.o_proj = nn.Linear(4, 4), nn.Linear(4, 4)

    class Layer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.self_attn, self.mlp = SelfAttention(), nn.Linear(4, 4)

    model = nn.Module()
    model.layers = nn.ModuleList([Layer(), Layer()])
    policy = {"initspec": 1, "rules": [
        {"name": "attn", "match": {"kind": "linear", "role": "kernel", "within": ["*Attention"]},
         "init": {"kind": "zeros"}},
        {"name": "layer 1", "match": {"role": "kernel", "within": ["layers.1"]}, "init": {"kind": "ones"}},
        {"match": {"role": ["kernel", "bias"]}, "init": {"kind": "constant", "value": 2}},
    ]}  # fmt: skip
    rows = {r["path"]: r["rule_index"] for r in initspec_torch.explain(policy, model).rows()}
    assert rows["layers.0.self_attn.q_proj.weight"] == 0
    assert rows["layers.1.self_attn.o_proj.weight"] == 0
    assert rows["layers.0.mlp.weight"] == 2 and rows["layers.1.mlp.weight"] == 1


def test_optional_rules_are_not_reported() -> None:
    """A generic preset's rules for module types the model lacks are optional: applying
    torch-defaults to one Linear warns of nothing; a non-optional unused rule still warns."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", InitSpecWarning)
        initspec_torch.apply("torch-defaults", nn.Linear(3, 2))
        initspec_torch.apply("torch-defaults", nn.Linear(3, 2), strict=True)
    policy = {"initspec": 1, "rules": [
        {"match": {"kind": "rnn"}, "init": {"kind": "zeros"}, "optional": True},
        {"match": {"kind": "attention"}, "init": {"kind": "zeros"}},
        {"init": {"kind": "zeros"}},
    ]}  # fmt: skip
    with pytest.warns(InitSpecWarning, match="1 rule\\(s\\) matched no parameter: #1"):
        report = initspec_torch.apply(policy, nn.Linear(3, 2))
    assert report.resolution.unused_rules == ["#0", "#1"]  # the resolution lists both
    assert report.warnings == ["rule #1 matched no parameter"]  # the report warns of one


def test_within_on_a_flax_twin() -> None:
    """``within`` matches nnx modules by class name and canonical path too."""
    pytest.importorskip("flax")
    import initspec_jax
    from flax import nnx

    class SelfAttention(nnx.Module):
        def __init__(self, rngs: nnx.Rngs) -> None:
            self.q_proj = nnx.Linear(4, 4, rngs=rngs)

    class Layer(nnx.Module):
        def __init__(self, rngs: nnx.Rngs) -> None:
            self.self_attn, self.mlp = SelfAttention(rngs), nnx.Linear(4, 4, rngs=rngs)

    class Net(nnx.Module):
        def __init__(self) -> None:
            rngs = nnx.Rngs(0)
            self.layers = nnx.List([Layer(rngs), Layer(rngs)])

    policy = {"initspec": 1, "rules": [
        {"match": {"role": "kernel", "within": ["*Attention"]}, "init": {"kind": "zeros"}},
        {"match": {"role": "kernel", "within": ["layers.1"]}, "init": {"kind": "ones"}},
        {"init": {"kind": "constant", "value": 2}},
    ]}  # fmt: skip
    rows = {r["path"]: r["rule_index"] for r in initspec_jax.explain(policy, Net()).rows()}
    assert rows["layers.0.self_attn.q_proj.kernel"] == 0
    assert rows["layers.1.mlp.kernel"] == 1 and rows["layers.0.mlp.kernel"] == 2
