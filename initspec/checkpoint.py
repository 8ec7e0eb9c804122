"""Read checkpoint files for ``initspec check``, one tensor at a time.

- ``.safetensors``: the ``safetensors`` library's ``safe_open`` validates the file and lists
  its tensors; each tensor's bytes are then read from the offsets in the file's header
  (one ``readinto``), bfloat16 ones (which NumPy, hence ``safe_open(framework="numpy")``,
  cannot hold) as raw uint16. Reading rather than ``get_tensor``'s memory map keeps the
  resident memory at about one tensor (``_safetensors_loader``). ``safetensors`` is an
  optional dependency (``initspec[check]``).
- ``.npz``: ``numpy.load`` without pickles; shapes come from each member's header, the
  values when the tensor is checked.
- a ``torch.save`` state dict (``.pt``, ``.pth``, ``.bin``, or a zip holding ``data.pkl``):
  ``torch.load(weights_only=True, mmap=True)`` (torch imported only then), so the values
  stay in the file until read.

Every failure (not a checkpoint, a truncated file, a tensor that cannot be read) is an
``InitSpecError`` naming the file, and the tensor where there is one.
"""

from __future__ import annotations

import importlib
import json
import math
import pathlib
import struct
import zipfile
from collections.abc import Callable
from typing import Any

import numpy as np

from initspec.errors import InitSpecError, printable
from initspec.stored import StoredTensor

SAFETENSORS_DTYPES = {
    "F16": "float16",
    "BF16": "bfloat16",
    "F32": "float32",
    "F64": "float64",
    "I8": "int8",
    "I16": "int16",
    "I32": "int32",
    "I64": "int64",
    "U8": "uint8",
    "U16": "uint16",
    "U32": "uint32",
    "U64": "uint64",
    "BOOL": "bool",
}
TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit on the JSON header


class CheckpointError(InitSpecError):
    """A checkpoint file that cannot be read; the message names the file (and tensor)."""


def _name(path: pathlib.Path) -> str:
    return printable(str(path))


def read_checkpoint(path: str | pathlib.Path) -> dict[str, StoredTensor]:
    """Every tensor of the file, by name, each loaded when its ``load()`` is called."""
    p = pathlib.Path(path)
    if not p.is_file():
        raise CheckpointError(f"{_name(p)}: no such file")
    try:
        with open(p, "rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise CheckpointError(f"{_name(p)}: cannot be read: {exc.strerror or exc}") from None
    suffix = p.suffix.lower()
    if suffix == ".safetensors":
        return read_safetensors(p)
    if suffix == ".npz":
        return read_npz(p)
    if suffix in TORCH_SUFFIXES:
        return read_torch(p)
    if head.startswith(b"PK"):  # a zip: numpy's npz or torch's zip format
        try:
            with zipfile.ZipFile(p) as zf:
                names = zf.namelist()
        except zipfile.BadZipFile as exc:
            raise CheckpointError(f"{_name(p)}: not a checkpoint (a broken zip: {exc})") from None
        if any(n.endswith("data.pkl") for n in names):
            return read_torch(p)
        return read_npz(p)
    if len(head) >= 9 and head[8:9] == b"{":
        return read_safetensors(p)
    raise CheckpointError(
        f"{_name(p)}: not a checkpoint initspec reads (.safetensors, .npz, or a torch.save "
        f"state dict: .pt/.pth/.bin)"
    )


# --- safetensors ----------------------------------------------------------------------


def _header(p: pathlib.Path) -> tuple[int, dict[str, Any]]:
    """(offset of the data, the JSON header) of a safetensors file, checked against the
    file's size so that a truncated file is refused before any tensor is read."""
    size = p.stat().st_size
    with open(p, "rb") as fh:
        raw = fh.read(8)
        if len(raw) < 8:
            raise CheckpointError(f"{_name(p)}: truncated safetensors file ({size} bytes)")
        (n,) = struct.unpack("<Q", raw)
        if n > MAX_HEADER or 8 + n > size:
            raise CheckpointError(
                f"{_name(p)}: not a valid safetensors file (header of {n} bytes in a file "
                f"of {size}: truncated or not safetensors)"
            )
        text = fh.read(n)
    try:
        header = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{_name(p)}: not a valid safetensors header ({exc})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{_name(p)}: not a valid safetensors header (not an object)")
    end = 0
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        _check_entry(p, key, entry)
        end = max(end, entry["data_offsets"][1])
    if 8 + n + end > size:
        raise CheckpointError(
            f"{_name(p)}: truncated safetensors file: the header lists {8 + n + end} bytes, "
            f"the file has {size}"
        )
    return 8 + n, header


def _check_entry(p: pathlib.Path, key: str, entry: Any) -> None:
    """One header entry is ``{"dtype", "shape", "data_offsets"}`` whose offsets hold
    exactly a tensor of that dtype and shape."""
    where = f"{_name(p)}: tensor {printable(key)!r}"
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise CheckpointError(f"{where}: not a safetensors entry (dtype, shape, data_offsets)")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if dtype not in SAFETENSORS_DTYPES:
        raise CheckpointError(
            f"{where}: dtype {printable(str(dtype)[:20])!r} is not a safetensors dtype "
            f"initspec reads; allowed: {', '.join(SAFETENSORS_DTYPES)}"
        )
    if not (
        isinstance(shape, list)
        and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
        and isinstance(offsets, list)
        and len(offsets) == 2
        and all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
    ):
        raise CheckpointError(f"{where}: shape and data_offsets must be lists of integers")
    begin, end = offsets
    itemsize = np.dtype(_NUMPY_CODES[SAFETENSORS_DTYPES[dtype]]).itemsize
    # past the end of the data: the caller's "truncated" error
    if not 0 <= begin <= end or end - begin != math.prod(shape) * itemsize:
        raise CheckpointError(
            f"{where}: data_offsets {offsets} do not hold a {dtype} tensor of shape {shape} "
            f"({math.prod(shape) * itemsize} bytes)"
        )


def _safetensors_module(p: pathlib.Path) -> Any:
    try:
        return importlib.import_module("safetensors")
    except ImportError:
        raise CheckpointError(
            f"{_name(p)}: reading .safetensors needs the safetensors package: "
            f"pip install 'initspec[check]'"
        ) from None


def read_safetensors(p: pathlib.Path) -> dict[str, StoredTensor]:
    lib = _safetensors_module(p)
    try:
        base, header = _header(p)
        handle = lib.safe_open(str(p), framework="numpy")
        handle.__enter__()
        keys = list(handle.keys())
    except CheckpointError:
        raise
    except Exception as exc:  # safetensors' own errors (SafetensorError, ...)
        raise CheckpointError(
            f"{_name(p)}: not a valid safetensors file: {type(exc).__name__}: {exc}"
        ) from None
    out = {}
    for key in keys:
        entry = header.get(key)
        if not isinstance(entry, dict):
            raise CheckpointError(f"{_name(p)}: tensor {printable(key)!r} is missing from the header")
        dtype = SAFETENSORS_DTYPES.get(str(entry.get("dtype")), str(entry.get("dtype")).lower())
        shape = tuple(int(d) for d in entry.get("shape", ()))
        start = int(entry["data_offsets"][0])
        out[key] = StoredTensor(shape, dtype, _safetensors_loader(p, handle, key, dtype, shape, base + start))
    return out


_NUMPY_CODES = {
    "float16": "<f2",
    "bfloat16": "<u2",  # numpy has no bfloat16: the raw 16-bit patterns
    "float32": "<f4",
    "float64": "<f8",
    "int8": "i1",
    "int16": "<i2",
    "int32": "<i4",
    "int64": "<i8",
    "uint8": "u1",
    "uint16": "<u2",
    "uint32": "<u4",
    "uint64": "<u8",
    "bool": "?",
}


def _safetensors_loader(
    p: pathlib.Path, handle: Any, key: str, dtype: str, shape: tuple[int, ...], offset: int
) -> Callable[[], np.ndarray]:
    """Read the tensor's bytes at its header offsets into a fresh array (one ``readinto``,
    freed once checked). Not ``get_tensor``: safetensors maps the file, and
    every mapped page it touches stays in the process's resident memory, so a pass over
    a 500 MB checkpoint would end at 500 MB plus the largest tensor."""

    def load() -> np.ndarray:
        code = _NUMPY_CODES.get(dtype)
        if code is None:
            raise CheckpointError(
                f"{_name(p)}: tensor {printable(key)!r} has dtype {dtype}, which initspec "
                f"cannot read"
            )
        count = math.prod(shape)
        values = np.empty(count, dtype=code)
        try:
            with open(p, "rb", buffering=0) as fh:
                fh.seek(offset)
                got = fh.readinto(values.data.cast("B")) if count else 0
        except OSError as exc:
            raise CheckpointError(f"{_name(p)}: tensor {printable(key)!r} cannot be read: {exc}") from None
        if got != values.nbytes:
            raise CheckpointError(f"{_name(p)}: tensor {printable(key)!r} is truncated")
        return values.astype(values.dtype.newbyteorder("="), copy=False).reshape(shape)

    return load


# --- npz ------------------------------------------------------------------------------


def read_npz(p: pathlib.Path) -> dict[str, StoredTensor]:
    try:
        archive = np.load(p, allow_pickle=False)
    except Exception as exc:
        raise CheckpointError(
            f"{_name(p)}: not a checkpoint (numpy cannot read it as .npz: {type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise CheckpointError(f"{_name(p)}: a single .npy array, not an .npz of named tensors")
    out = {}
    assert archive.zip is not None
    for key in archive.files:
        try:
            with archive.zip.open(f"{key}.npy") as fh:
                version = np.lib.format.read_magic(fh)
                if version == (1, 0):
                    shape, _, descr = np.lib.format.read_array_header_1_0(fh)
                else:
                    shape, _, descr = np.lib.format.read_array_header_2_0(fh)
        except Exception as exc:
            raise CheckpointError(
                f"{_name(p)}: tensor {printable(key)!r} cannot be read: {type(exc).__name__}: {exc}"
            ) from None
        out[key] = StoredTensor(tuple(shape), str(descr.name), _npz_loader(p, archive, key))
    return out


def _npz_loader(p: pathlib.Path, archive: Any, key: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        try:
            return np.asarray(archive[key])
        except Exception as exc:
            raise CheckpointError(
                f"{_name(p)}: tensor {printable(key)!r} cannot be read: {type(exc).__name__}: {exc}"
            ) from None

    return load


# --- torch.save -----------------------------------------------------------------------


def torch_values(tensor: Any) -> np.ndarray:
    """A CPU torch tensor's values as NumPy (bfloat16 as its uint16 bit patterns)."""
    t = tensor.detach()
    if str(t.dtype) == "torch.bfloat16":
        torch = importlib.import_module("torch")
        return np.asarray(t.cpu().contiguous().view(torch.int16).numpy().view(np.uint16))
    return np.asarray(t.cpu().numpy())


def torch_stored(tensor: Any) -> StoredTensor:
    name = str(tensor.dtype).removeprefix("torch.")
    return StoredTensor(tuple(int(d) for d in tensor.shape), name, lambda: torch_values(tensor))


def read_torch(p: pathlib.Path) -> dict[str, StoredTensor]:
    try:
        torch = importlib.import_module("torch")
    except ImportError:
        raise CheckpointError(f"{_name(p)}: reading a torch.save file needs torch installed") from None
    try:
        try:
            state = torch.load(str(p), map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            state = torch.load(str(p), map_location="cpu", weights_only=True)  # legacy format
    except Exception as exc:
        raise CheckpointError(
            f"{_name(p)}: not a torch.save state dict torch.load(weights_only=True) can "
            f"read: {type(exc).__name__}: {str(exc)[:300]}"
        ) from None
    if not isinstance(state, dict):
        raise CheckpointError(
            f"{_name(p)}: holds a {type(state).__name__}, not a state dict (a mapping of names to tensors)"
        )
    out = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(
                f"{_name(p)}: entry {printable(str(key))!r} is a {type(value).__name__}, not a "
                f"tensor: save model.state_dict() itself"
            )
        out[str(key)] = torch_stored(value)
    return out
