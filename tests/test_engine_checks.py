"""The engine's checks before any write (#15, #17): explain makes apply's dtype checks, a
padding row outside the table is refused before writing, empty structural plans sample."""

from __future__ import annotations

import initspec_torch
import numpy as np
import pytest
import torch
from torch import nn

import initspec
from initspec import ResolutionError

BIG = {"initspec": 1, "rules": [{"init": {"kind": "constant", "value": 1e6}}]}


def test_explain_refuses_what_apply_refuses() -> None:
    """1e6 overflows float16 (largest 65504): explain says so, as apply does, and neither
    writes anything."""
    lin = nn.Linear(3, 2).half()
    before = lin.weight.detach().clone()
    for call in (initspec_torch.explain, initspec_torch.apply):
        with pytest.raises(ResolutionError, match="does not fit in float16"):
            call(BIG, lin)
    assert torch.equal(lin.weight.detach(), before)


def test_a_padding_row_outside_the_table_is_refused_before_writing() -> None:
    emb = nn.Embedding(4, 3, padding_idx=1)
    emb.padding_idx = 9  # set after construction (torch checks it only there)
    before = emb.weight.detach().clone()
    with pytest.raises(ResolutionError, match="padding row 9 lies outside the 4 rows"):
        initspec_torch.apply("torch-defaults", emb)
    assert torch.equal(emb.weight.detach(), before)


@pytest.mark.parametrize("kind", ["dirac", "delta_orthogonal"])
@pytest.mark.parametrize("rng", ["native", "portable"])
def test_structural_plans_with_a_zero_size_dimension_sample_empty(kind: str, rng: str) -> None:
    x = initspec.sample({"kind": kind}, (4, 4, 0, 3), "torch", rng=rng)  # type: ignore[arg-type]
    assert x.shape == (4, 4, 0, 3) and x.dtype == np.float32
