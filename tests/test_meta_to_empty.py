"""``initspec_torch.meta.to_empty``: meta -> real device with ties kept and the buffers named,
then ``apply``: the same values as on a model built on the real device."""

from __future__ import annotations

import copy
from typing import Any

import pytest

torch = pytest.importorskip("torch")

import initspec_torch  # noqa: E402
from initspec_torch.meta import to_empty  # noqa: E402


class TiedLM(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(50, 16)
        self.body = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.BatchNorm1d(16))
        self.head = torch.nn.Linear(16, 50, bias=False)
        self.head.weight = self.embed.weight


def test_plain_to_empty_unties_and_ours_keeps_the_tie() -> None:
    with torch.device("meta"):
        model = TiedLM()
    plain = copy.deepcopy(model)
    plain.to_empty(device="cpu")
    assert plain.head.weight is not plain.embed.weight  # the fault this helper exists for

    buffers = to_empty(model, "cpu")
    assert model.head.weight is model.embed.weight
    assert model.head.weight.device.type == "cpu"
    assert buffers == ["body.1.running_mean", "body.1.running_var", "body.1.num_batches_tracked"]

    report = initspec_torch.apply("torch-defaults", model, seed=0)
    reference = TiedLM()
    initspec_torch.apply("torch-defaults", reference, seed=0)
    for (name, got), (_, want) in zip(model.named_parameters(), reference.named_parameters(), strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0, msg=name)
    assert [r["shared_with"] for r in report.rows() if r["path"] == "embed.weight"] == [
        ["head.weight"]
    ]


def test_hf_llama_meta_flow_restores_tie_and_rotary_buffers() -> None:
    transformers = pytest.importorskip("transformers")
    cfg = transformers.LlamaConfig(
        vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32,
        tie_word_embeddings=True,
    )
    with torch.device("meta"):
        model = transformers.LlamaForCausalLM(cfg)
    buffers = to_empty(model, "cpu")
    assert buffers == ["model.rotary_emb.inv_freq", "model.rotary_emb.original_inv_freq"]
    assert model.lm_head.weight is model.model.embed_tokens.weight
    owners: set[Any] = {name.rpartition(".")[0] for name in buffers}
    for owner in owners:  # HF's own recomputation of the rotary frequencies
        model._init_weights(model.get_submodule(owner))
    initspec_torch.apply("torch-defaults", model, seed=5)

    reference = transformers.LlamaForCausalLM(cfg)
    initspec_torch.apply("torch-defaults", reference, seed=5)
    for name, want in reference.named_buffers():
        torch.testing.assert_close(model.get_buffer(name), want, rtol=0, atol=0, msg=name)
    for (name, got), (_, want) in zip(model.named_parameters(), reference.named_parameters(), strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0, msg=name)


def test_bad_device_is_an_initspec_error() -> None:
    import initspec

    with torch.device("meta"):
        model = torch.nn.Linear(2, 2)
    with pytest.raises(initspec.BackendError, match="to_empty"):
        to_empty(model, "no-such-device")
