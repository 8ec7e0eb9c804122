"""The port in one step: a policy captured from a torch model, applied with ``initspec_jax``
to its Flax nnx twin (``tests/twins.py``), gives every parameter pair the same plan.

For HF GPT-2 and HF Llama (tiny configs): ``initspec_torch.explain`` on a fresh torch build
and ``initspec_jax.explain`` on the twin, parameter by parameter (the twin's ``kernel`` /
``scale`` / ``embedding`` is the torch ``weight`` at the same path), must give the same rule
and the same plan (the same distribution and fans; a torch Linear stores (out, in), the twin
(in, out)). That the twins are twins is checked too: with the torch weights copied in, the
logits agree to float32 rounding.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
jnp = pytest.importorskip("jax.numpy")
nnx = pytest.importorskip("flax.nnx")

import initspec_jax  # noqa: E402
import initspec_torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import twins  # noqa: E402


def _gpt2_config(n_layer: int = 2, d: int = 32):
    return transformers.GPT2Config(
        n_layer=n_layer, n_embd=d, n_head=4, vocab_size=100, n_positions=64,
        bos_token_id=0, eos_token_id=0,
    )  # fmt: skip


def _llama_config(n_layer: int = 2, d: int = 32):
    return transformers.LlamaConfig(
        hidden_size=d, intermediate_size=2 * d, num_hidden_layers=n_layer,
        num_attention_heads=4, num_key_value_heads=2, vocab_size=100,
        max_position_embeddings=64, bos_token_id=1, eos_token_id=2,
    )  # fmt: skip


CASES = {
    "gpt2": (_gpt2_config, transformers.GPT2LMHeadModel, twins.GPT2LMHeadModel),
    "llama": (_llama_config, transformers.LlamaForCausalLM, twins.LlamaForCausalLM),
}


def _torch_name(flax_path: str) -> str:
    head, _, leaf = flax_path.rpartition(".")
    return f"{head}.{'bias' if leaf == 'bias' else 'weight'}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_captured_policy_gives_the_twin_the_same_plans(name: str) -> None:
    make_cfg, torch_cls, twin_cls = CASES[name]
    cfg = make_cfg()
    report = initspec_torch.capture_report(lambda: torch_cls(cfg))
    assert report.skipped == {}, report.skipped
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no rule may match nothing on either side
        torch_rows = {
            r["path"]: r for r in initspec_torch.explain(report.policy, torch_cls(cfg)).rows()
        }
        twin = twin_cls(cfg, rngs=nnx.Rngs(0))
        flax_rows = initspec_jax.explain(report.policy, twin).rows()
    paired = set()
    for row in flax_rows:
        t = torch_rows[_torch_name(row["path"])]
        assert (row["rule_index"], row["plan"]) == (t["rule_index"], t["plan"]), (row, t)
        assert row["status"] == t["status"] == "init"
        paired.add(t["path"])
    # Every torch parameter has its twin (GPT-2's lm_head is wte, tied: one parameter).
    assert paired == set(torch_rows)
    # And the plans are the torch model's own init: the recorded ones.
    for path, row in torch_rows.items():
        assert row["plan"] == report.expected[path], path


@pytest.mark.slow  # eager JAX compiles each op once: ~15 s on a shared 2-core machine
@pytest.mark.parametrize("name", sorted(CASES))
def test_twins_compute_what_the_torch_models_compute(name: str) -> None:
    make_cfg, torch_cls, twin_cls = CASES[name]
    cfg = make_cfg()
    model = torch_cls(cfg).eval()
    twin = twin_cls(cfg, rngs=nnx.Rngs(0))
    used = twins.load_torch(twin, model)
    assert set(used) == {n for n, _ in model.named_parameters()}
    ids = np.array([[1, 5, 7, 9, 2, 3, 11]])
    with torch.no_grad():
        expected = model(torch.tensor(ids)).logits.numpy()
    got = np.asarray(twin(jnp.asarray(ids)))
    # float32 rounding of a 2-layer model with logits of order 1: differences ~1e-7.
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-5)
