"""Fingerprints: digests of tensor values that prove two inits equal, across layouts,
shardings and frameworks (docs/fingerprint.md).

A parameter's fingerprint, version 1:

- element ``i`` of a parameter: its row-major index in the layout's canonical order
  (out, in, batch, receptive field: ``initspec.stream.layout_perm``), the counter the
  portable stream gives it, so a torch weight ``(out, in)`` and its Flax kernel ``(in, out)``
  number their elements alike; ``v``: the element's bits (its dtype's 16, 32 or 64 bits,
  as an unsigned integer);
- ``mix(z)``: the SplitMix64 finalizer (Steele, Lea and Flood, "Fast splittable pseudorandom
  number generators", OOPSLA 2014; the constants of Stafford's Mix13), a bijection of 64-bit
  words: ``z = (z ^ z >> 30) * 0xBF58476D1CE4E5B9; z = (z ^ z >> 27) * 0x94D049BB133111EB;
  z ^ z >> 31``;
- ``h(i, v) = mix(mix((i + 1) * PHI) ^ v)`` with ``PHI = 0x9E3779B97F4A7C15``: the inner
  word is SplitMix64's output number ``i + 1`` (seed 0), so each index gets its own
  pseudo-random mask; the element term is a bijection of ``v`` for a fixed ``i``;
- ``sum``: the sum of ``h(i, v)`` over the elements, modulo 2**64. Addition is commutative
  and associative: the order in which elements are visited does not matter, and the sums of
  the shards of a tensor (each computed from its global indices alone) add up to the sum of
  the whole (``combine``);
- ``digest``: ``blake2b(dtype, canonical shape, sum)``, 8 bytes, as 16 hex digits: equal bits
  of different dtypes, or of different shapes, differ.

A model's fingerprint: ``blake2b`` over its parameters sorted by key, each key with its
digest; the key of a parameter is the name the portable stream keys it by
(``initspec.seeding.stream_path`` of its canonical path: Flax's ``fc.kernel`` is ``fc.weight``),
so a torch model and its Flax twin, which draw every parameter from the same stream, are
compared parameter by parameter under the same names.

Collisions: a change of one element always changes ``sum`` (``h`` is a bijection of ``v``
for each ``i``); any other difference leaves it equal with probability about 2**-64 if ``mix``
behaves as a random permutation (digests: the same, at 64 bits). This detects accidental
differences, not forgeries: ``mix`` is invertible and sums of hashes admit generalized
birthday attacks, so someone who wants a collision can build one. Bits are compared, not
values: ``-0.0`` differs from ``0.0``, NaNs with different payloads differ.

The sums run in the compiled kernel (``initspec/_stream.c``, ``fingerprint_sum``) where it is
built, else in the NumPy code below, the reference; both give the same sums
(tests/test_fingerprint.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from initspec.errors import BackendError, ShapeError
from initspec.layout import LayoutLike, check_shape
from initspec.numeric import FLOAT_DTYPES
from initspec.portable import in_threads
from initspec.seeding import stream_path
from initspec.stream import Block, block, layout_perm

__all__ = [
    "FINGERPRINT_VERSION",
    "Fingerprint",
    "ParamFingerprint",
    "assemble",
    "block_sum",
    "canonical_shape",
    "combine",
    "element_hash",
    "fingerprint",
    "param_fingerprint",
    "shard_sum",
    "value_bits",
]

FINGERPRINT_VERSION = 1
PHI = 0x9E3779B97F4A7C15
MIX1 = 0xBF58476D1CE4E5B9
MIX2 = 0x94D049BB133111EB
M64 = (1 << 64) - 1
CHUNK = 1 << 16  # elements per chunk of the NumPy code: bounds its temporaries
MIN_PER_THREAD = 1 << 18  # elements per thread below which a thread costs more than it saves

_ITEMSIZE = {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8}
_UINT: dict[int, type[np.unsignedinteger[Any]]] = {
    2: np.uint16,
    4: np.uint32,
    8: np.uint64,
}
_PERSON_PARAM = b"initspec-fp1-p"
_PERSON_MODEL = b"initspec-fp1-m"

_kernel: ModuleType | None
try:  # the compiled kernel (initspec/_stream.c); an older build may lack fingerprint_sum
    import initspec._stream as _kernel
except ImportError:  # pragma: no cover - an install without a compiler: NumPy only
    _kernel = None

COMPILED: bool = _kernel is not None and hasattr(_kernel, "fingerprint_sum")
"""Whether the compiled fingerprint kernel is present (the same sums as the NumPy code)."""


# --- the element hash ---------------------------------------------------------------------


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finalizer of uint64 ``z``, in place (uint64 arithmetic wraps mod 2**64)."""
    z ^= z >> np.uint64(30)
    z *= np.uint64(MIX1)
    z ^= z >> np.uint64(27)
    z *= np.uint64(MIX2)
    z ^= z >> np.uint64(31)
    return z


def element_hash(counters: np.ndarray, bits: np.ndarray) -> np.ndarray:
    """``h(i, v) = mix(mix((i + 1) * PHI) ^ v)`` (uint64) of counters ``i`` and value bits ``v``."""
    z = np.asarray(counters).astype(np.uint64)
    z += np.uint64(1)
    z *= np.uint64(PHI)
    z = _mix(z)
    z ^= np.asarray(bits).astype(np.uint64)
    return _mix(z)


def _counters(blk: Block, start: int, stop: int) -> np.ndarray:
    """uint64 counters of the block's row-major elements ``start .. stop - 1``."""
    flat = np.arange(start, stop, dtype=np.uint64)
    if blk.dense:
        return np.asarray(flat + np.uint64(blk.offset))
    out = np.full(flat.shape, blk.offset, dtype=np.uint64)
    for n, m in zip(reversed(blk.shape), reversed(blk.mults), strict=True):
        if n > 1:
            out += (flat % np.uint64(n)) * np.uint64(m)
            flat //= np.uint64(n)
    return out


def _sum_numpy(flat: np.ndarray, blk: Block) -> int:
    total = 0
    for lo in range(0, flat.size, CHUNK):
        part = flat[lo : lo + CHUNK]
        h = element_hash(_counters(blk, lo, lo + part.size), part)
        # NumPy's uint64 sum wraps modulo 2**64: exactly the sum we want
        total += int(h.sum(dtype=np.uint64))
    return total & M64


def block_sum(
    bits: np.ndarray, blk: Block, *, compiled: bool | None = None, threads: int = 1
) -> int:
    """The sum mod 2**64 of ``h(i, v)`` over the elements of a block: ``bits`` (unsigned ints
    of 2, 4 or 8 bytes, shape ``blk.shape``) their value bits, ``i`` their counters.

    ``compiled``: None uses the compiled kernel where it is built, False the NumPy code (the
    reference), True the kernel or ``BackendError``. ``threads``: the kernel's threads, each
    on a contiguous range of elements (it releases the GIL)."""
    bits = np.asarray(bits)
    if tuple(bits.shape) != blk.shape:
        raise ShapeError(f"values of shape {tuple(bits.shape)} for a block of shape {blk.shape}")
    if bits.dtype.kind != "u" or bits.dtype.itemsize not in _UINT:
        raise BackendError(f"bits must be unsigned 16-, 32- or 64-bit integers, got {bits.dtype}")
    if compiled and not COMPILED:
        raise BackendError("the compiled fingerprint kernel is not built in this install")
    flat = np.ascontiguousarray(bits).reshape(-1)
    if not flat.flags.aligned:  # a file's bytes mapped at an odd offset: the kernel reads words
        flat = flat.copy()
    if compiled is False or not COMPILED:
        return _sum_numpy(flat, blk)
    return _sum_compiled(flat, blk, max(1, threads))


def _sum_compiled(flat: np.ndarray, blk: Block, threads: int) -> int:
    kernel = _kernel
    assert kernel is not None
    n = flat.size
    parts = max(1, min(threads, n // MIN_PER_THREAD))
    bounds = [n * i // parts for i in range(parts + 1)]
    sums = [0] * parts

    def run(i: int) -> None:
        lo, hi = bounds[i], bounds[i + 1]
        sums[i] = kernel.fingerprint_sum(flat[lo:hi], blk.offset, blk.shape, blk.mults, lo, hi)

    in_threads(parts, run)
    return combine(sums)


def combine(sums: Iterable[int]) -> int:
    """The sum of a tensor from the sums of its shards: their sum modulo 2**64."""
    return sum(sums) & M64


# --- values, shapes and shards --------------------------------------------------------------


def value_bits(
    values: Any, dtype: str | None = None, where: str = "tensor"
) -> tuple[np.ndarray, str]:
    """``(bits, dtype name)``: the elements of ``values`` as unsigned integers of their size.

    ``values``: a NumPy array of a float dtype of ``FLOAT_DTYPES`` (bfloat16: ml_dtypes',
    as JAX gives it), or, with ``dtype`` naming the float dtype, its bits already as
    integers of that size (torch's bfloat16, which NumPy lacks). ``BackendError`` for other
    dtypes."""
    try:
        arr = np.asarray(values)
    except Exception:  # a framework tensor NumPy cannot read (torch's bfloat16, a GPU tensor)
        raise BackendError(
            f"{where}: a {type(values).__name__} is not an array NumPy can read; the adapters "
            f"(initspec_torch.fingerprint, initspec_jax.fingerprint) read their tensors"
        ) from None
    name = arr.dtype.name if dtype is None else dtype
    if name not in _ITEMSIZE:
        raise BackendError(
            f"{where}: dtype {name!r} has no fingerprint; allowed: {', '.join(FLOAT_DTYPES)}"
        )
    size = _ITEMSIZE[name]
    if arr.dtype.itemsize != size or (dtype is not None and arr.dtype.kind not in "uif"):
        raise BackendError(
            f"{where}: values of dtype {arr.dtype} are not the bits of {name} ({size} bytes each)"
        )
    return arr.view(_UINT[size]), name


def canonical_shape(shape: tuple[int, ...], layout: LayoutLike) -> tuple[int, ...]:
    """``shape`` in the canonical axis order (``layout_perm``): a Flax kernel ``(in, out)``
    and a torch weight ``(out, in)`` both give ``(out, in)``."""
    return tuple(shape[a] for a in layout_perm(tuple(shape), layout))


def shard_sum(
    values: Any,
    shape: tuple[int, ...],
    layout: LayoutLike = "torch",
    index: tuple[slice, ...] | None = None,
    *,
    dtype: str | None = None,
    path: str = "",
    compiled: bool | None = None,
    threads: int = 1,
) -> int:
    """The sum of the shard ``index`` (one slice per dimension, global indices; None: the
    whole tensor) of a tensor of global ``shape`` stored in ``layout``, from the shard's
    ``values`` alone (``value_bits`` for ``values`` and ``dtype``)."""
    where = f"parameter {path!r}" if path else "tensor"
    shape = check_shape(shape)
    bits, _ = value_bits(values, dtype, where)
    blk = block(shape, layout_perm(shape, layout), index)
    if tuple(bits.shape) != blk.shape:
        raise ShapeError(
            f"{where}: values of shape {tuple(bits.shape)} for the shard {index!r} of "
            f"{shape}, which has shape {blk.shape}"
        )
    return block_sum(bits, blk, compiled=compiled, threads=threads)


# --- digests ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParamFingerprint:
    """One parameter's fingerprint: ``path`` (canonical), ``key`` (its name in the model
    digest: the portable stream's, ``stream_path(path)``), ``dtype``, ``shape`` (stored),
    ``canonical_shape``, ``sum`` (combinable over shards) and ``digest`` (16 hex digits)."""

    path: str
    key: str
    dtype: str
    shape: tuple[int, ...]
    canonical_shape: tuple[int, ...]
    sum: int
    digest: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "dtype": self.dtype,
            "shape": list(self.shape),
            "canonical_shape": list(self.canonical_shape),
            "digest": self.digest,
        }


def param_fingerprint(
    path: str, dtype: str, shape: tuple[int, ...], layout: LayoutLike, total: int
) -> ParamFingerprint:
    """The fingerprint of the parameter at ``path`` whose elements sum to ``total``."""
    if dtype not in _ITEMSIZE:
        raise BackendError(f"parameter {path!r}: dtype {dtype!r} has no fingerprint")
    shape = check_shape(shape)
    canon = canonical_shape(shape, layout)
    total &= M64
    data = f"{dtype}\x00{list(canon)}\x00".encode() + total.to_bytes(8, "little")
    digest = hashlib.blake2b(data, digest_size=8, person=_PERSON_PARAM).hexdigest()
    return ParamFingerprint(path, stream_path(path), dtype, shape, canon, total, digest)


class Fingerprint:
    """A model's fingerprint: ``digest`` (16 hex digits) over ``params`` (by key). Two
    fingerprints are equal when their digests are; ``diff`` names the parameters that
    differ."""

    def __init__(self, params: Iterable[ParamFingerprint]) -> None:
        by_key: dict[str, ParamFingerprint] = {}
        for p in params:
            if p.key in by_key:
                raise BackendError(
                    f"parameters {by_key[p.key].path!r} and {p.path!r} have the same "
                    f"fingerprint key {p.key!r}"
                )
            by_key[p.key] = p
        self.params: dict[str, ParamFingerprint] = dict(sorted(by_key.items()))
        h = hashlib.blake2b(digest_size=8, person=_PERSON_MODEL)
        for key, p in self.params.items():
            raw = key.encode("utf-8", "surrogatepass")
            h.update(len(raw).to_bytes(8, "little") + raw + bytes.fromhex(p.digest))
        self.digest: str = h.hexdigest()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Fingerprint):
            return NotImplemented
        return self.digest == other.digest

    def __hash__(self) -> int:
        return hash(self.digest)

    def __repr__(self) -> str:
        return f"Fingerprint({self.digest}, {len(self.params)} parameters)"

    def __str__(self) -> str:
        return self.digest

    def diff(self, other: Fingerprint) -> list[str]:
        """One line per parameter whose fingerprint differs from ``other``'s, or that only
        one of them has; empty when they are equal."""
        out = []
        for key in sorted(self.params.keys() | other.params.keys()):
            a, b = self.params.get(key), other.params.get(key)
            if a is None or b is None:
                out.append(f"{key}: only in the {'second' if a is None else 'first'}")
            elif a.digest != b.digest:
                if (a.dtype, a.canonical_shape) != (b.dtype, b.canonical_shape):
                    what = (
                        f"{a.dtype} {list(a.canonical_shape)} vs "
                        f"{b.dtype} {list(b.canonical_shape)}"
                    )
                else:
                    what = "values differ"
                out.append(f"{key}: {a.digest} vs {b.digest} ({what})")
        return out

    def table(self) -> str:
        """A text table: key, dtype, canonical shape, digest; the model digest last."""
        rows = [("parameter", "dtype", "canonical shape", "digest")]
        rows += [
            (k, p.dtype, "x".join(map(str, p.canonical_shape)) or "()", p.digest)
            for k, p in self.params.items()
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        lines.append(f"model: {self.digest} ({len(self.params)} parameters)")
        return "\n".join(line.rstrip() for line in lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "fingerprint": FINGERPRINT_VERSION,
            "digest": self.digest,
            "params": {k: p.to_dict() for k, p in self.params.items()},
        }


def assemble(params: Iterable[ParamFingerprint]) -> Fingerprint:
    """The model fingerprint of parameter fingerprints (``BackendError`` if two share a key)."""
    return Fingerprint(params)


def fingerprint(
    tensors: Mapping[str, Any],
    *,
    layout: LayoutLike = "torch",
    layouts: Mapping[str, LayoutLike] | None = None,
    compiled: bool | None = None,
    threads: int = 1,
) -> Fingerprint:
    """The fingerprint of NumPy arrays by canonical path (a state dict's names).

    ``layout``: how every tensor's axes are stored (``torch`` for a torch state dict,
    ``flax`` for Flax kernels); ``layouts``: per-path exceptions (a ConvTranspose weight's
    ``torch_transposed``, a Flax embedding table's ``embedding``). Tensors whose layout does
    not resolve for their shape (biases, norms' scales) count in stored order, as the
    portable stream does. The adapters (``initspec_torch.fingerprint``,
    ``initspec_jax.fingerprint``) take each parameter's layout from the module."""
    if not isinstance(tensors, Mapping):
        raise BackendError(
            f"expected a mapping of parameter paths to arrays, got {type(tensors).__name__}"
        )
    layouts = layouts or {}
    unknown = sorted(set(layouts) - set(tensors))
    if unknown:
        raise BackendError(f"layouts names parameters that are not among the tensors: {unknown}")
    out = []
    for path, values in tensors.items():
        if not isinstance(path, str):
            raise BackendError(f"parameter names must be strings, got {path!r}")
        bits, name = value_bits(values, None, f"parameter {path!r}")
        lay = layouts.get(path, layout)
        total = shard_sum(
            bits, bits.shape, lay, dtype=name, path=path, compiled=compiled, threads=threads
        )
        out.append(param_fingerprint(path, name, bits.shape, lay, total))
    return assemble(out)
