"""``initspec_torch.hf.from_config``: an HF model from a config initialized once, by a policy,
checked against the installed transformers (its ``_init_weights`` counted, its own
``from_config`` + ``apply`` as the reference values, its buffers and its tying)."""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import initspec_torch  # noqa: E402
from initspec_torch import hf  # noqa: E402

import initspec  # noqa: E402

POLICY: dict[str, Any] = {
    "initspec": 1,
    "rules": [
        {"match": {"kind": ["linear", "embedding"], "role": ["kernel", "embedding"]},
         "init": {"kind": "normal", "std": 0.02}},
        {"match": {"role": "bias"}, "init": {"kind": "zeros"}, "optional": True},
        {"match": {"kind": "norm"}, "init": {"kind": "ones"}},
    ],
}


def llama_config() -> Any:
    return transformers.LlamaConfig(
        vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32,
        tie_word_embeddings=True,
    )


def gpt2_config() -> Any:
    return transformers.GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=96, n_positions=16)


@pytest.fixture
def init_weights_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every call of HF's ``_init_weights`` on any model class, by class name."""
    calls: list[str] = []
    models = (transformers.LlamaForCausalLM, transformers.GPT2LMHeadModel)
    defining = {c for m in models for c in m.__mro__ if "_init_weights" in c.__dict__}
    assert transformers.PreTrainedModel in defining
    for cls in defining:
        original = cls.__dict__["_init_weights"]

        def counted(self: Any, module: Any, _original: Any = original) -> Any:
            calls.append(type(module).__name__)
            return _original(self, module)

        monkeypatch.setattr(cls, "_init_weights", counted)
    return calls


def params(model: Any) -> dict[str, Any]:
    return {n: p.detach().clone() for n, p in model.named_parameters(remove_duplicate=False)}


@pytest.mark.parametrize("make_config, cls_name", [(llama_config, "LlamaForCausalLM"),
                                                   (gpt2_config, "GPT2LMHeadModel")])
def test_init_weights_never_runs_and_values_are_the_policys(
    make_config: Any, cls_name: str, init_weights_calls: list[str]
) -> None:
    cls = getattr(transformers, cls_name)
    cfg = make_config()
    reference = cls._from_config(cfg)  # the usual way: torch's and HF's init, then ours
    assert init_weights_calls, "the counter must see HF's own initialization (control)"
    initspec_torch.apply(POLICY, reference, seed=3)
    init_weights_calls.clear()

    model, report = hf.from_config(cls, cfg, POLICY, seed=3)

    assert init_weights_calls == []
    got, want = params(model), params(reference)
    assert got.keys() == want.keys()
    for name in want:  # per-parameter generators seeded by (seed, path): exactly equal
        torch.testing.assert_close(got[name], want[name], rtol=0, atol=0, msg=name)
    assert all(row["status"] == "init" for row in report.rows())
    # The buffers are the constructors' own (rotary inv_freq, GPT-2's causal mask if any).
    ref_buffers = dict(reference.named_buffers())
    for name, buf in model.named_buffers():
        torch.testing.assert_close(buf, ref_buffers[name], rtol=0, atol=0, msg=name)


def test_tied_lm_head_is_one_tensor_drawn_once() -> None:
    model, report = hf.from_config(transformers.LlamaForCausalLM, llama_config(), POLICY, seed=0)
    assert model.lm_head.weight is model.model.embed_tokens.weight
    rows = [r for r in report.rows() if r["path"] == "model.embed_tokens.weight"]
    assert len(rows) == 1 and rows[0]["shared_with"] == ["lm_head.weight"]
    assert "lm_head.weight" not in {r["path"] for r in report.rows()}


def test_later_initialize_weights_keeps_the_policys_values() -> None:
    model, _ = hf.from_config(transformers.GPT2LMHeadModel, gpt2_config(), POLICY, seed=1)
    before = params(model)
    model.initialize_weights()  # what HF code re-runs, e.g. a wrapping model's post_init
    for name, value in params(model).items():
        torch.testing.assert_close(value, before[name], rtol=0, atol=0, msg=name)
    # Control: without the marks, HF's pass draws the weights again.
    hf_model = hf._build(transformers.GPT2LMHeadModel, gpt2_config(), {})
    initspec_torch.apply(POLICY, hf_model, seed=1)
    unmarked = params(hf_model)
    hf_model.initialize_weights()
    assert not torch.equal(params(hf_model)["transformer.h.0.attn.c_attn.weight"],
                           unmarked["transformer.h.0.attn.c_attn.weight"])


def test_auto_class_and_dtype_pass_through() -> None:
    model, _ = hf.from_config(transformers.AutoModelForCausalLM, llama_config(), POLICY, seed=0,
                              dtype=torch.bfloat16)
    assert type(model).__name__ == "LlamaForCausalLM"
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}


def test_a_parameter_the_policy_leaves_alone_is_an_error() -> None:
    partial = {"initspec": 1, "rules": POLICY["rules"][:2]}  # no rule for the norms
    with pytest.raises(initspec.ResolutionError) as info:
        hf.from_config(transformers.LlamaForCausalLM, llama_config(), partial, seed=0)
    assert "model.norm.weight: no rule leaves it uninitialized" in str(info.value)
    skip = {"initspec": 1, "rules": [{"match": {"kind": "norm"}, "skip": True},
                                     *POLICY["rules"]]}
    with pytest.raises(initspec.ResolutionError, match="model.norm.weight: a skip rule"):
        hf.from_config(transformers.LlamaForCausalLM, llama_config(), skip, seed=0)


def test_invalid_policy_and_class_are_refused() -> None:
    with pytest.raises(initspec.PolicyError):
        hf.from_config(transformers.LlamaForCausalLM, llama_config(), {"initspec": 2}, seed=0)
    with pytest.raises(initspec.BackendError, match="neither a transformers PreTrainedModel"):
        hf.from_config(torch.nn.Linear, llama_config(), POLICY)
