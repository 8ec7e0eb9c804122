"""initspec_torch.capture: a model's own init, recorded while it is built, as a policy.

Each test builds a model with its own init code (torch defaults, HF's ``_init_weights``,
explicit ``torch.nn.init`` calls, in-place tensor methods), captures it, and checks the
policy against what that code does, computed here from the formulas of the code itself
(torch's ``reset_parameters``, HF's ``_init_weights``): the plan ``initspec_torch.explain``
gives each parameter of a fresh build.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from initspec_torch import explain
from initspec_torch.capture import capture, capture_report
from torch import nn

from initspec.errors import InitSpecError

transformers = pytest.importorskip("transformers")


def plans(policy, model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = explain(policy, model)
    return {r["path"]: r for r in report.rows()}


class Defaults(nn.Module):
    """torch's own defaults: Linear, Embedding (with a padding row), LayerNorm."""

    def __init__(self, d: int = 8) -> None:
        super().__init__()
        self.emb = nn.Embedding(10, d, padding_idx=0)
        self.l1 = nn.Linear(d, 2 * d)
        self.l2 = nn.Linear(2 * d, d)
        self.ln = nn.LayerNorm(d)


def test_torch_defaults_become_their_plans() -> None:
    policy = capture(Defaults)
    rows = plans(policy, Defaults())
    # Linear.reset_parameters: kaiming_uniform_(a=sqrt(5)) = U(+-1/sqrt(fan_in)), bias the same.
    for name, fan_in in (("l1", 8), ("l2", 16)):
        bound = 1 / math.sqrt(fan_in)
        for leaf in ("weight", "bias"):
            assert rows[f"{name}.{leaf}"]["plan"].startswith(
                f"uniform(low={-bound:.4g}, high={bound:.4g})"
            ), rows[f"{name}.{leaf}"]
    assert rows["emb.weight"]["plan"] == "normal(mean=0, std=1)"
    assert rows["ln.weight"]["plan"] == "constant(1)"
    assert rows["ln.bias"]["plan"] == "constant(0)"
    emb_rule = policy.rules[rows["emb.weight"]["rule_index"]]
    assert emb_rule.zero_padding_row  # Embedding(padding_idx=0) zeroes that row
    assert len(policy.rules) == 5


def _gpt2(n_layer: int = 3, n_embd: int = 32):
    cfg = transformers.GPT2Config(
        n_layer=n_layer, n_embd=n_embd, n_head=4, vocab_size=100, n_positions=64,
        bos_token_id=0, eos_token_id=0,
    )  # fmt: skip
    return transformers.GPT2LMHeadModel(cfg)


def test_hf_gpt2_init_weights_with_depth_scaling() -> None:
    report = capture_report(lambda: _gpt2(3))
    policy = report.policy
    assert len(policy.rules) == 4, report.rules_text()
    assert report.skipped == {}
    # The policy carries GPT-2's scheme, not the 3-layer numbers: applied to 6 layers,
    # c_proj gets 0.02 / sqrt(2 * 6).
    rows = plans(policy, _gpt2(6))
    std = 0.02 / math.sqrt(2 * 6)
    for path, row in rows.items():
        if path.endswith("c_proj.weight"):
            assert row["plan"].startswith(f"normal(mean=0, std={std:.4g})"), (path, row)
        elif path.endswith(("c_attn.weight", "c_fc.weight", "wte.weight", "wpe.weight")):
            assert row["plan"].startswith("normal(mean=0, std=0.02)"), (path, row)
        elif path.endswith(".bias"):
            assert row["plan"] == "constant(0)", (path, row)
        else:
            assert row["plan"] == "constant(1)", (path, row)


def test_build_that_raises_or_returns_no_module() -> None:
    def boom() -> nn.Module:
        raise RuntimeError("no config")

    with pytest.raises(InitSpecError, match="raised RuntimeError: no config"):
        capture(boom)
    with pytest.raises(InitSpecError, match="returned int, not a torch.nn.Module"):
        capture(lambda: 3)  # type: ignore[arg-type, return-value]

    class Nothing(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.empty(3, 4))

    with pytest.raises(InitSpecError, match="initialized nothing"):
        capture(Nothing)
