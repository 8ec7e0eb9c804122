"""``initspec fingerprint FILE`` (initspec.cli_fingerprint): safetensors and npz checkpoints,
one tensor at a time, equal to the fingerprint of the model they were saved from; bad files
exit 2 with a message naming the file and the tensor."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

import initspec
from initspec.cli import main


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["fingerprint", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_safetensors_of_a_torch_model_has_the_models_fingerprint(tmp_path, capsys) -> None:
    torch = pytest.importorskip("torch")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    import initspec_torch

    model = torch.nn.Sequential(
        torch.nn.Embedding(11, 6), torch.nn.Linear(6, 5), torch.nn.LayerNorm(5)
    ).to(torch.bfloat16)
    initspec_torch.apply("torch-defaults", model, seed=2, rng="portable")
    path = tmp_path / "model.safetensors"
    safetensors_torch.save_file(model.state_dict(), str(path))
    code, out, _ = _run(capsys, str(path), "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["digest"] == initspec_torch.fingerprint(model).digest
    assert doc["params"]["0.weight"]["dtype"] == "bfloat16"
    code, out, _ = _run(capsys, str(path))
    assert code == 0 and f"model: {doc['digest']}" in out


def test_npz_of_flax_kernels_with_an_embedding_table(tmp_path, capsys) -> None:
    rng = np.random.default_rng(0)
    w, e = rng.standard_normal((4, 3)).astype(np.float32), rng.standard_normal((7, 3))
    torch_names = {"fc.weight": w, "embed.weight": e}
    path = tmp_path / "flax.npz"
    np.savez(path, **{"fc.kernel": w.T, "embed.embedding": e})
    code, out, _ = _run(capsys, str(path), "--layout", "flax", "--layout-of", "embed.embedding=embedding", "--json")  # fmt: skip
    assert code == 0
    assert json.loads(out)["digest"] == initspec.fingerprint(torch_names).digest
    code, out, _ = _run(capsys, str(path), "--layout", "flax", "--json")  # the table transposed
    assert json.loads(out)["digest"] != initspec.fingerprint(torch_names).digest


def _safetensors(path: pathlib.Path, header: dict[str, object], data: bytes) -> None:
    raw = json.dumps(header).encode()
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + data)


@pytest.mark.parametrize(
    "header,data,message",
    [
        ({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}, b"\0" * 12, "truncated"),
        ({"w": {"dtype": "I32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8, "'w': dtype 'int32' has no fingerprint"),
        ({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8, "'w': data_offsets"),
        ({"w": {"dtype": "F32", "shape": "3", "data_offsets": [0, 12]}}, b"\0" * 12, "lists of integers"),
        ({"w": [1, 2]}, b"", "not a safetensors entry"),
    ],
)  # fmt: skip
def test_bad_safetensors_exit_2_naming_file_and_tensor(tmp_path, capsys, header, data, message):
    path = tmp_path / "bad.safetensors"
    _safetensors(path, header, data)
    code, _, err = _run(capsys, str(path))
    assert code == 2 and "bad.safetensors" in err and message in err, err


def test_files_that_are_not_checkpoints_exit_2(tmp_path, capsys) -> None:
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\xff" * 64)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    npz = tmp_path / "broken.npz"
    npz.write_bytes(b"PK\x03\x04 not a zip")
    ints = tmp_path / "ints.npz"
    np.savez(ints, w=np.arange(3))
    good = tmp_path / "good.npz"
    np.savez(good, w=np.ones(3))
    for args, message in [
        ((str(junk),), "not a valid safetensors file"),
        ((str(text),), "not a checkpoint initspec reads"),
        ((str(npz),), "numpy cannot read it as .npz"),
        ((str(ints),), "'w': dtype 'int64' has no fingerprint"),
        ((str(tmp_path / "missing.npz"),), "no such file"),
        ((str(good), "--layout-of", "v=flax"), "does not have: ['v']"),
    ]:
        code, _, err = _run(capsys, *args)
        assert code == 2 and message in err, (args, err)
    with pytest.raises(SystemExit) as exc:
        main(["fingerprint", str(good), "--layout-of", "w=nonsense"])
    assert exc.value.code == 2
