"""The portable random stream, version 1: the same values on NumPy, torch and JAX.

Specified in docs/portable-random.md; in short:

- key: ``derive_seed(seed, path)`` (blake2b, 64 bits) split into ``(k0, k1) = (hi32, lo32)``;
- element ``i``: the row-major index of the element in the plan's canonical order
  (out, in, batch, receptive field: ``plan_perm``), so a torch weight and its transposed
  Flax kernel get the same value at the same logical position;
- bits: ``(b0, b1) = threefry2x32_20((k0, k1), (i >> 32, i & 0xFFFFFFFF))`` (JAX's
  partitionable Threefry, Random123 known-answer vectors), ``u64 = b0 << 32 | b1``;
- uniform on [0, 1): ``(u64 >> 11) * 2**-53``; on (0, 1): ``((u64 >> 12) + 0.5) * 2**-52``;
- U(low, high): ``low + (high - low) * u`` in float64; N(loc, scale): ``loc + scale *
  ndtri(u_open)``; truncated normal: inverse CDF ``ndtri(pa + u_open * (pb - pa))`` on the
  side of 0 where the interval lies (tail accuracy), then clipped to [low, high];
- everything in float64, rounded once (round to nearest even) to the target dtype.

Orthogonal and delta-orthogonal draw their Gaussian from the stream and run QR in float64;
sparse also takes its zero pattern from the stream: in each column the rows whose mask words
(counters ``n + i``) are smallest. These structural plans are built here, once, for every
backend (``structural64``), so they are the same bit for bit everywhere.

The constants, keys and counters live in ``initspec.stream``; this module's NumPy code is
the reference. Elementwise plans run through the compiled
kernel ``initspec/_stream.c`` where it was built (``COMPILED``): the same operations in the
same order, tested equal to this code (tests/test_stream_kernel.py), 4-6x faster.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

from initspec import stream
from initspec.errors import BackendError
from initspec.plans import (
    ConstantPlan,
    DiracPlan,
    IdentityPlan,
    NormalPlan,
    OrthogonalPlan,
    Plan,
    SparsePlan,
    TruncatedNormalPlan,
    UniformPlan,
)
from initspec.stream import Block, block, check_version, layout_perm, param_key

__all__ = [
    "COMPILED",
    "Portable64",
    "PortableStructural",
    "bits64",
    "block",
    "check_version",
    "layout_perm",
    "ndtri",
    "param_key",
    "sample_plan_portable64",
    "structural64",
    "threefry2x32",
]

CHUNK = 1 << 16  # elements per chunk: bounds temporary memory and keeps it in cache
_M32 = np.uint32(0xFFFFFFFF)

_kernel: ModuleType | None
try:  # the compiled kernel (initspec/_stream.c), built at install when a C compiler exists
    import initspec._stream as _kernel
except ImportError:  # pragma: no cover - an install without a compiler: NumPy only
    _kernel = None

COMPILED: bool = _kernel is not None
"""Whether the compiled elementwise kernel is present (the same values as the NumPy code)."""

def threefry2x32(
    key: tuple[int, int], x0: np.ndarray, x1: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Threefry-2x32 with 20 rounds (Random123 ``threefry2x32_20``, JAX's ``threefry_2x32``)."""
    ks = (np.uint32(key[0]), np.uint32(key[1]), np.uint32(key[0] ^ key[1] ^ stream.PARITY))
    # In place, with one scratch array: the stream is memory-bound in NumPy.
    y0 = x0.astype(np.uint32, copy=True)
    y1 = x1.astype(np.uint32, copy=True)
    tmp = np.empty_like(y1)
    with np.errstate(over="ignore"):
        y0 += ks[0]
        y1 += ks[1]
        for block in range(5):
            for r in stream.ROTATIONS[4 * (block % 2) : 4 * (block % 2) + 4]:
                y0 += y1
                np.right_shift(y1, np.uint32(32 - r), out=tmp)
                np.left_shift(y1, np.uint32(r), out=y1)
                y1 |= tmp
                y1 ^= y0
            s = block + 1
            y0 += ks[s % 3]
            y1 += np.uint32((int(ks[(s + 1) % 3]) + s) & 0xFFFFFFFF)
    return y0, y1


def bits64(key: tuple[int, int], counters: np.ndarray) -> np.ndarray:
    """64 bits per counter (int64 array of global element indices): ``b0 << 32 | b1``."""
    c = counters.astype(np.uint64)
    b0, b1 = threefry2x32(
        key, (c >> np.uint64(32)).astype(np.uint32), (c & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    )
    return np.asarray((b0.astype(np.uint64) << np.uint64(32)) | b1.astype(np.uint64))


def uniform01(bits: np.ndarray) -> np.ndarray:
    """[0, 1) with 53 random bits."""
    return np.asarray((bits >> np.uint64(11)).astype(np.float64) * stream.TWO_M53)


def uniform_open(bits: np.ndarray) -> np.ndarray:
    """(0, 1): the midpoints of 2**52 cells, so ndtri never sees 0 or 1 (with 53 bits the
    last midpoint, 1 - 2**-54, would round to 1.0)."""
    return np.asarray(((bits >> np.uint64(12)).astype(np.float64) + 0.5) * stream.TWO_M52)


def _poly(x: np.ndarray, coefs: tuple[float, ...]) -> np.ndarray:
    out = np.full_like(x, coefs[0])
    for c in coefs[1:]:
        out = out * x + c
    return out


_libm_log = np.frompyfunc(math.log, 1, 1)


def log64(x: np.ndarray) -> np.ndarray:
    """float64 natural log as the C library computes it (``math.log``): what the compiled
    kernel, torch's CPU path, scipy's Cephes and XLA's CPU code call. NumPy's own ``log``
    is a SIMD polynomial on AVX512F machines that differs from it by an ulp on ~0.03% of
    inputs (9 of 27,277 measured), which ndtri's tail turns into different values; the
    stream's reference must not depend on the CPU it runs on."""
    return np.asarray(_libm_log(x), dtype=np.float64)


def ndtri(p: np.ndarray) -> np.ndarray:
    """Inverse of the standard normal CDF for p in (0, 1), float64 (Cephes ``ndtri``)."""
    p = np.asarray(p, dtype=np.float64)
    out = np.empty_like(p)
    upper = p > 1.0 - stream.EXPM2
    y = np.where(upper, 1.0 - p, p)
    central = y > stream.EXPM2
    w = y[central] - 0.5
    w2 = w * w
    xc = (w + w * (w2 * _poly(w2, stream.P0) / _poly(w2, stream.Q0))) * stream.S2PI
    out[central] = np.where(upper[central], -xc, xc)
    tail = ~central
    if tail.any():
        with np.errstate(divide="ignore"):
            t = np.sqrt(-2.0 * log64(y[tail]))
            z = 1.0 / t
            near = t < 8.0
            corr = np.empty_like(t)
            corr[near] = z[near] * _poly(z[near], stream.P1) / _poly(z[near], stream.Q1)
            far = ~near
            corr[far] = z[far] * _poly(z[far], stream.P2) / _poly(z[far], stream.Q2)
            xt = t - log64(t) / t - corr
        out[tail] = np.where(upper[tail], xt, -xt)
    return out


def counters_for(
    shape: tuple[int, ...], perm: tuple[int, ...], index: tuple[slice, ...] | None = None
) -> np.ndarray:
    """Global counters (int64) of the elements of ``shape[index]``, in stored order."""
    blk = block(shape, perm, index)
    out = np.full((), blk.offset, dtype=np.int64)
    for n, m in zip(blk.shape, blk.mults, strict=True):
        out = out[..., None] + np.arange(n, dtype=np.int64) * m
    return out


def standard_normal(key: tuple[int, int], counters: np.ndarray) -> np.ndarray:
    return ndtri(uniform_open(bits64(key, counters)))


# Kernel kinds of initspec/_stream.c.
_KERNEL_UNIFORM, _KERNEL_NORMAL, _KERNEL_TRUNCNORM = 0, 1, 2
# Elements per thread below which more threads cost more than they save.
MIN_PER_THREAD = 1 << 16

KernelArgs = tuple[int, tuple[float, ...]] | None


class _KernelArgs:
    """``(kind, params)`` of a plan for the compiled kernel; None where it has none."""

    def constant(self, plan: ConstantPlan) -> KernelArgs:
        return None

    def uniform(self, plan: UniformPlan) -> KernelArgs:
        return _KERNEL_UNIFORM, (plan.low, plan.high - plan.low)

    def normal(self, plan: NormalPlan) -> KernelArgs:
        return _KERNEL_NORMAL, (plan.loc, plan.scale)

    def truncated_normal(self, plan: TruncatedNormalPlan) -> KernelArgs:
        flip, pa, mass = plan.inverse_cdf
        return _KERNEL_TRUNCNORM, (
            plan.loc, plan.scale, pa, mass, plan.low, plan.high, 1.0 if flip else 0.0
        )  # fmt: skip

    def orthogonal(self, plan: OrthogonalPlan) -> KernelArgs:
        return None

    def identity(self, plan: IdentityPlan) -> KernelArgs:
        return None

    def dirac(self, plan: DiracPlan) -> KernelArgs:
        return None

    def sparse(self, plan: SparsePlan) -> KernelArgs:
        return None


def kernel_args(plan: Plan) -> KernelArgs:
    """``(kind, params)`` of ``plan`` for the compiled kernel, None if it has no kernel
    (constants, structural plans) or the kernel is not built."""
    return None if _kernel is None else plan.draw(_KernelArgs())


def in_threads(parts: int, run: Callable[[int], None]) -> None:
    """``run(i)`` for every part ``i``: part 0 on this thread, the others on their own
    (the compiled kernels release the GIL), all joined before returning."""
    workers = [threading.Thread(target=run, args=(i,)) for i in range(1, parts)]
    for w in workers:
        w.start()
    try:
        run(0)
    finally:
        for w in workers:
            w.join()


def fill_compiled(
    out: np.ndarray,
    plan: Plan,
    key: tuple[int, int],
    blk: Block,
    start: int = 0,
    threads: int = 1,
) -> bool:
    """Stream-1 values of block elements ``start .. start + out.size - 1`` (row-major) of an
    elementwise ``plan``, written by the compiled kernel into ``out`` (C-contiguous float64,
    or float32: rounded once from the float64 value, not clipped). Up to ``threads``
    threads, each on a contiguous range (the kernel releases the GIL). False, with nothing
    written, where the kernel cannot: not built, no kernel for the plan, another dtype.
    """
    args = kernel_args(plan)
    kernel = _kernel
    if (
        kernel is None
        or args is None
        or out.dtype not in (np.float64, np.float32)
        or not out.flags.c_contiguous
        or start < 0
        or start + out.size > blk.numel
    ):
        return False
    kind, params = args
    flat = out.reshape(-1)
    n = flat.size
    parts = max(1, min(threads, n // MIN_PER_THREAD))
    bounds = [n * i // parts for i in range(parts + 1)]

    def run(i: int) -> None:
        lo, hi = bounds[i], bounds[i + 1]
        kernel.fill(
            flat[lo:hi], kind, key[0], key[1], blk.offset, blk.shape, blk.mults,
            start + lo, start + hi, params,
        )  # fmt: skip

    in_threads(parts, run)
    return True


class PortableStructural:
    """The portable stream's structural primitives for any backend: the core builds the
    whole float64 tensor once (``initspec.portable.structural64``, the same on every
    backend, bit for bit) and the backend converts it (``from_float64``: the block ``blk``
    of it, rounded once to the target dtype). A backend may override a method for speed."""

    key: tuple[int, int]
    index: tuple[slice, ...] | None

    def from_float64(self, values: np.ndarray, plan: Plan) -> Any:
        raise NotImplementedError

    def _structural(self, plan: Plan) -> Any:
        full = structural64(plan, self.key)
        return self.from_float64(full[self.index] if self.index is not None else full, plan)

    def orthogonal(self, plan: OrthogonalPlan) -> Any:
        return self._structural(plan)

    def identity(self, plan: IdentityPlan) -> Any:
        return self._structural(plan)

    def dirac(self, plan: DiracPlan) -> Any:
        return self._structural(plan)

    def sparse(self, plan: SparsePlan) -> Any:
        return self._structural(plan)


class Portable64(PortableStructural):
    """Stream-1 values (float64, the reference) of a plan over the block ``index`` (the
    whole tensor if None): a ``Sampler[np.ndarray]``.

    Elementwise plans compute only the block, with the compiled kernel where it is built
    (``compiled=None``: when present; ``False``: the NumPy code, the reference; ``True``:
    the kernel or ``BackendError``), else in NumPy, in chunks of ``CHUNK`` elements.
    Structural plans are built whole (``structural64``) and sliced.
    """

    def __init__(
        self,
        key: tuple[int, int],
        perm: tuple[int, ...],
        index: tuple[slice, ...] | None = None,
        compiled: bool | None = None,
    ) -> None:
        if compiled and _kernel is None:
            raise BackendError("the compiled portable-stream kernel is not built in this install")
        self.key, self.perm, self.index, self.compiled = key, perm, index, compiled

    def from_float64(self, values: np.ndarray, plan: Plan) -> np.ndarray:
        return values

    def _fill(self, plan: Plan, values: Any) -> np.ndarray:
        blk = block(plan.shape, self.perm, self.index)
        out = np.empty(blk.shape, dtype=np.float64)
        if self.compiled is not False and fill_compiled(out, plan, self.key, blk):
            return out
        flat_out = out.reshape(-1)
        flat = counters_for(plan.shape, self.perm, self.index).reshape(-1)
        for start in range(0, flat.size, CHUNK):
            bits = bits64(self.key, flat[start : start + CHUNK])
            flat_out[start : start + CHUNK] = values(bits)
        return out

    def constant(self, plan: ConstantPlan) -> np.ndarray:
        return np.full(block(plan.shape, self.perm, self.index).shape, plan.value, np.float64)

    def uniform(self, plan: UniformPlan) -> np.ndarray:
        width = plan.high - plan.low
        return self._fill(plan, lambda bits: plan.low + width * uniform01(bits))

    def normal(self, plan: NormalPlan) -> np.ndarray:
        return self._fill(plan, lambda bits: plan.loc + plan.scale * ndtri(uniform_open(bits)))

    def truncated_normal(self, plan: TruncatedNormalPlan) -> np.ndarray:
        flip, pa, mass = plan.inverse_cdf

        def values(bits: np.ndarray) -> np.ndarray:
            z = ndtri(pa + uniform_open(bits) * mass)
            z = -z if flip else z
            return np.clip(plan.loc + plan.scale * z, plan.low, plan.high)

        return self._fill(plan, values)


def sample_plan_portable64(
    plan: Plan,
    key: tuple[int, int],
    perm: tuple[int, ...],
    index: tuple[slice, ...] | None = None,
    compiled: bool | None = None,
) -> np.ndarray:
    """Stream-1 values of ``plan`` (float64, stored layout), the whole tensor or ``index``
    (``Portable64``)."""
    return np.asarray(plan.draw(Portable64(key, perm, index, compiled)))


def haar(gauss: np.ndarray) -> np.ndarray:
    """The Haar-random matrix of a (rows, cols) float64 Gaussian ``gauss``: orthonormal rows
    or columns, whichever are fewer, as torch's ``orthogonal_``: the QR of the (max, min)
    orientation with Q's columns times sign(diag(R)) (Mezzadri 2007), transposed back."""
    rows, cols = gauss.shape
    if rows * cols == 0:
        return np.zeros((rows, cols))
    flat = gauss.T if rows < cols else gauss
    q, r = np.linalg.qr(flat)
    q = q * np.sign(np.diag(r))
    return np.asarray(q.T if rows < cols else q)


class Structural64:
    """Orthogonal, identity and dirac plans in float64 NumPy, from a Gaussian source
    (``gauss``: NumPy's generator for the native stream, the portable stream's counters
    for the portable one), in the stored layout."""

    def gauss(self, rows: int, cols: int) -> np.ndarray:
        raise NotImplementedError

    def orthogonal(self, plan: OrthogonalPlan) -> np.ndarray:
        q = plan.gain * haar(self.gauss(plan.rows, plan.cols))
        return np.asarray(q.reshape(plan.permuted_shape).transpose(plan.inverse_perm))

    def identity(self, plan: IdentityPlan) -> np.ndarray:
        return plan.build()

    def dirac(self, plan: DiracPlan) -> np.ndarray:
        if plan.matrix == "identity":
            return plan.build()
        centre = plan.centre_matrix
        return plan.build(centre.gain * haar(self.gauss(centre.rows, centre.cols)))


class _Whole64(Structural64):
    """The whole float64 tensor of a structural plan from the stream (stored layout)."""

    def __init__(self, key: tuple[int, int]) -> None:
        self.key = key

    def gauss(self, rows: int, cols: int) -> np.ndarray:
        counters = np.arange(rows * cols, dtype=np.int64)
        return standard_normal(self.key, counters).reshape(rows, cols)

    def _elementwise(self, plan: Plan) -> np.ndarray:
        raise BackendError(f"{type(plan).__name__} is elementwise, not structural")

    constant = uniform = normal = truncated_normal = _elementwise

    def sparse(self, plan: SparsePlan) -> np.ndarray:
        rows, cols = plan.canonical_shape
        n = rows * cols
        values = plan.sigma * self.gauss(rows, cols)
        mask_words = bits64(self.key, np.arange(n, 2 * n, dtype=np.int64)).reshape(rows, cols)
        order = np.argsort(mask_words, axis=0, kind="stable")
        values[order[: plan.zeros_per_column], np.arange(cols)[None, :]] = 0.0
        return np.asarray(values.transpose(plan.inverse_perm))


def structural64(plan: Plan, key: tuple[int, int]) -> np.ndarray:
    """The whole float64 tensor of a structural plan (orthogonal, identity, dirac, sparse),
    stored layout: built here once for every backend, so bitwise equal everywhere."""
    return np.asarray(plan.draw(_Whole64(key)))
