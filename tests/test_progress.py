"""Progress and logging of apply (#22 item 4): the bar, the callback, the logger."""

from __future__ import annotations

import logging
import math

import initspec_torch
import pytest
import torch
from torch import nn

import initspec
from initspec import progress as prog
from initspec.errors import MissingExtraError

POLICY = {
    "initspec": 1,
    "name": "p",
    "rules": [
        {"match": {"role": "bias"}, "init": {"kind": "zeros"}},
        {"match": {"kind": "norm"}, "skip": True, "optional": True},
        {"init": {"kind": "normal", "std": 0.1}},
    ],
}


def _model() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 3))


def test_a_callback_sees_every_written_tensor_in_elements() -> None:
    calls: list[tuple[int, int, str]] = []
    initspec_torch.apply(POLICY, _model(), progress=lambda d, t, p: calls.append((d, t, p)))
    # written: 0.weight 32, 0.bias 8, 1.bias 8 (the norm's scale is skipped), 2.weight 24,
    # 2.bias 3
    assert [c[2] for c in calls] == ["0.weight", "0.bias", "1.bias", "2.weight", "2.bias"]
    assert [c[0] for c in calls] == [32, 40, 48, 72, 75] and {c[1] for c in calls} == {75}


def test_explain_and_a_failed_check_report_no_progress() -> None:
    calls: list[str] = []
    model = _model().to(torch.float16)
    huge = {"initspec": 1, "rules": [{"init": {"kind": "normal", "std": 1e6}}]}
    with pytest.raises(initspec.InitSpecError):  # float16 overflows: refused before writing
        initspec_torch.apply(huge, model, progress=lambda d, t, p: calls.append(p))
    assert calls == []


def test_the_default_shows_a_bar_only_from_the_threshold(monkeypatch, capsys) -> None:
    pytest.importorskip("tqdm")
    model = _model()
    initspec_torch.apply(POLICY, model)
    assert "initspec apply" not in capsys.readouterr().err
    monkeypatch.setattr(prog, "PROGRESS_THRESHOLD", 75)  # the 75 elements this apply writes
    initspec_torch.apply(POLICY, model)
    assert "initspec apply" in capsys.readouterr().err
    monkeypatch.setattr(prog, "PROGRESS_THRESHOLD", 76)
    initspec_torch.apply(POLICY, model)
    assert "initspec apply" not in capsys.readouterr().err
    initspec_torch.apply(POLICY, model, progress=True)
    assert "initspec apply" in capsys.readouterr().err
    monkeypatch.setattr(prog, "PROGRESS_THRESHOLD", 1)
    initspec_torch.apply(POLICY, model, progress=False)
    assert "initspec apply" not in capsys.readouterr().err


def test_progress_true_without_tqdm_is_refused_before_writing(monkeypatch) -> None:
    import sys

    model = _model()
    before = model[0].weight.detach().clone()
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    with pytest.raises(MissingExtraError, match="pip install tqdm"):
        initspec_torch.apply(POLICY, model, progress=True)
    assert torch.equal(model[0].weight, before)
    initspec_torch.apply(POLICY, model)  # the default without tqdm: no bar, no error


def test_a_bad_progress_value_is_refused() -> None:
    with pytest.raises(initspec.InitSpecError, match="progress=3"):
        initspec_torch.apply(POLICY, _model(), progress=3)  # type: ignore[arg-type]


def test_apply_logs_what_it_decided(caplog) -> None:
    with caplog.at_level(logging.DEBUG, logger="initspec"):
        initspec_torch.apply(POLICY, _model(), seed=5)
    info = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert info == ["apply policy 'p', seed 5: 6 parameters (5 init, 1 skip); 75 elements to write"]
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert "0.weight (8, 4): init rule #2: normal(mean=0, std=0.1)" in debug
    assert "1.weight (8,): skip rule #1: skip" in debug and len(debug) == 6
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="initspec"):
        initspec_torch.explain(POLICY, _model())
    assert caplog.records[0].getMessage().startswith("explain policy 'p', seed 0")


def test_jax_apply_takes_progress() -> None:
    pytest.importorskip("flax")
    import initspec_jax
    from flax import nnx

    model = nnx.Linear(4, 8, rngs=nnx.Rngs(0))
    calls: list[tuple[int, int, str]] = []
    initspec_jax.apply_nnx(POLICY, model, progress=lambda d, t, p: calls.append((d, t, p)))
    assert calls == [(8, 40, "bias"), (40, 40, "kernel")] or calls == [
        (32, 40, "kernel"),
        (40, 40, "bias"),
    ]
    params = {"params": {"Dense_0": {"kernel": model.kernel[...], "bias": model.bias[...]}}}
    calls.clear()
    initspec_jax.apply(POLICY, params, progress=lambda d, t, p: calls.append((d, t, p)))
    assert sorted(c[2] for c in calls) == ["Dense.0.bias", "Dense.0.kernel"]
    assert calls[-1][0] == calls[-1][1] == math.prod((4, 8)) + 8
