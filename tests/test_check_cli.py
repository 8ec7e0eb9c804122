"""``initspec check FILE --policy P``: checkpoints on disk, exit codes, bad input."""

from __future__ import annotations

import json
import pathlib
import sys
import warnings

import numpy as np
import pytest
import torch

from initspec.checker import check
from initspec.checkpoint import read_checkpoint
from initspec.cli import main

transformers = pytest.importorskip("transformers")
save_numpy = pytest.importorskip("safetensors.numpy").save_file
save_torch = pytest.importorskip("safetensors.torch").save_file


def gpt2_state(seed: int = 0, broken: bool = False, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """A tiny HF GPT-2's state dict as HF saves it (the tied lm_head left out); ``broken``:
    c_proj weights without the depth scaling."""
    config = transformers.GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=1000, n_positions=128)
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = transformers.GPT2LMHeadModel(config)
    if broken:
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith("c_proj.weight"):
                    p.normal_(0.0, 0.02)
    state = {k: v.detach().to(dtype).contiguous().clone() for k, v in model.state_dict().items()}
    state.pop("lm_head.weight")
    return state


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["check", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_safetensors_clean_passes_and_broken_fails(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    good, bad = tmp_path / "good.safetensors", tmp_path / "bad.safetensors"
    save_torch(gpt2_state(0), str(good))
    save_torch(gpt2_state(1, broken=True), str(bad))
    code, out, _ = run(capsys, str(good), "--policy", "gpt2")
    assert code == 0, out
    assert "28 parameters: 28 ok" in out
    code, out, _ = run(capsys, str(bad), "--policy", "gpt2")
    assert code == 1
    failing = [line.split()[0] for line in out.splitlines() if " mismatch " in line]
    assert sorted(failing) == [f"transformer.h.{i}.{m}.c_proj.weight" for i in (0, 1) for m in ("attn", "mlp")]
    code, out, _ = run(capsys, str(bad), "--policy", "gpt2", "--json")
    doc = json.loads(out)
    assert code == 1 and doc["ok"] is False and doc["counts"]["mismatch"] == 4


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_16_bit_safetensors_are_read_exactly(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str], dtype: torch.dtype) -> None:
    path = tmp_path / "half.safetensors"
    state = gpt2_state(2, dtype=dtype)
    save_torch(state, str(path))
    tensors = read_checkpoint(path)
    w = tensors["transformer.wte.weight"]
    assert w.dtype == str(dtype).removeprefix("torch.")
    ref = state["transformer.wte.weight"]
    got = w.load()
    if dtype == torch.bfloat16:  # the raw patterns, bit for bit
        assert np.array_equal(got, ref.view(torch.int16).numpy().view(np.uint16))
    else:
        assert np.array_equal(got, ref.numpy())
    code, out, _ = run(capsys, str(path), "--policy", "gpt2")
    assert code == 0, out
    assert f" {str(dtype).removeprefix('torch.')} " in out


def test_npz_and_torch_save(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = gpt2_state(3)
    np.savez(tmp_path / "w.npz", **{k: v.numpy() for k, v in state.items()})
    torch.save(state, tmp_path / "w.pt")
    for name in ("w.npz", "w.pt"):
        code, out, _ = run(capsys, str(tmp_path / name), "--policy", "gpt2")
        assert code == 0, (name, out)
    broken = gpt2_state(3, broken=True)
    torch.save(broken, tmp_path / "b.bin")
    code, out, _ = run(capsys, str(tmp_path / "b.bin"), "--policy", "gpt2")
    assert code == 1 and out.count(" mismatch ") == 4


def test_strict_and_model(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "m.safetensors"
    state = {k: v.numpy() for k, v in gpt2_state(4).items()}
    state["extra.running_mean"] = np.zeros(4, np.float32)
    save_numpy(state, str(path))
    assert run(capsys, str(path), "--policy", "gpt2")[0] == 0
    code, out, _ = run(capsys, str(path), "--policy", "gpt2", "--strict")
    assert code == 1 and "extra.running_mean" in out
    save_numpy({k: v for k, v in state.items() if k != "extra.running_mean"}, str(path))
    code, out, err = run(capsys, str(path), "--policy", "gpt2", "--model", "tests.fixtures.check_models:tiny_gpt2")
    assert code == 0, out + err


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_bad_input_exits_2_naming_file_and_tensor(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "g.safetensors"
    save_numpy({"fc.weight": np.zeros((4, 4), np.float32), "step": np.zeros(3, np.int64)}, str(good))
    cases: list[tuple[pathlib.Path, str, str]] = []
    text = tmp_path / "notes.safetensors"
    text.write_text("hello, this is not a checkpoint at all")
    cases.append((text, "gpt2", "not a valid safetensors"))
    truncated = tmp_path / "t.safetensors"
    truncated.write_bytes(good.read_bytes()[:-20])
    cases.append((truncated, "gpt2", "truncated safetensors"))
    other = tmp_path / "data.csv"
    other.write_text("a,b\n1,2\n")
    cases.append((other, "gpt2", "not a checkpoint"))
    junk = tmp_path / "x.pt"
    junk.write_bytes(b"\x80\x04junk")
    cases.append((junk, "gpt2", "torch.load(weights_only=True)"))
    ints = '{"initspec": 1, "rules": [{"match": {"path": "step"}, "init": {"kind": "zeros"}}]}'
    cases.append((good, ints, "step"))
    nothing = '{"initspec": 1, "rules": [{"match": {"path": "nope"}, "init": {"kind": "zeros"}}]}'
    cases.append((good, nothing, "matches none of the 2 tensor"))
    unplannable = '{"initspec": 1, "rules": [{"match": {"path": "fc.weight"}, "init": {"kind": "dirac"}}]}'
    cases.append((good, unplannable, "fc.weight"))
    cases.append((tmp_path / "missing.npz", "gpt2", "no such file"))
    for path, policy, needle in cases:
        code, out, err = run(capsys, str(path), "--policy", policy)
        assert code == 2, (path, out, err)
        assert needle in err and path.name in err, (needle, err)
        assert "Traceback" not in err


def test_without_safetensors_the_error_names_the_extra(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "g.safetensors"
    save_numpy({"fc.weight": np.zeros((4, 4), np.float32)}, str(path))
    monkeypatch.setitem(sys.modules, "safetensors", None)
    code, _, err = run(capsys, str(path), "--policy", "gpt2")
    assert code == 2 and "initspec[check]" in err


def test_a_checkpoint_mapping_checks_like_its_file(tmp_path: pathlib.Path) -> None:
    state = {k: v.numpy() for k, v in gpt2_state(5).items()}
    path = tmp_path / "w.safetensors"
    save_numpy(state, str(path))
    a, b = check(state, "gpt2"), check(read_checkpoint(path), "gpt2")
    rows_a = sorted(a.to_dict()["parameters"], key=lambda r: r["path"])
    rows_b = sorted(b.to_dict()["parameters"], key=lambda r: r["path"])  # the file's order
    assert rows_a == rows_b


def test_model_describes_a_flax_checkpoint(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    from flax import nnx

    from tests.fixtures.cli_models import nnx_mlp

    model = nnx_mlp()
    arrays = {"/".join(map(str, path)): np.asarray(v.get_value()) for path, v in nnx.iter_graph(model) if isinstance(v, nnx.Param)}
    assert set(arrays) == {"fc1/kernel", "fc1/bias", "fc2/kernel", "fc2/bias"}
    np.savez(tmp_path / "flax.npz", **arrays)
    code, out, err = run(capsys, str(tmp_path / "flax.npz"), "--policy", "flax-defaults", "--model", "tests.fixtures.cli_models:nnx_mlp")
    assert code == 0, out + err
    assert "fc1.kernel" in out
    # by names alone: 2-dim kernels in the flax layout, the same verdicts
    code, out, err = run(capsys, str(tmp_path / "flax.npz"), "--policy", "flax-defaults", "--layout", "flax")
    assert code == 0, out + err
