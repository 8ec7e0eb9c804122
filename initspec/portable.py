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

Orthogonal and delta-orthogonal draw their Gaussian from the stream and run QR in float64
(equal across backends to a tolerance, not bitwise); sparse also takes its zero pattern from
the stream: in each column the rows whose mask words (counters ``n + i``) are smallest.

This module's NumPy code is the reference. Elementwise plans run through the compiled
kernel ``initspec/_stream.c`` where it was built (``COMPILED``): the same operations in the
same order, tested equal to this code (tests/test_stream_kernel.py), 4-6x faster.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from initspec.errors import BackendError, InitSpecError
from initspec.layout import LayoutLike, canonical_perm
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
    normal_mass,
)
from initspec.seeding import derive_seed

_kernel: ModuleType | None
try:  # the compiled kernel (initspec/_stream.c), built at install when a C compiler exists
    import initspec._stream as _kernel
except ImportError:  # pragma: no cover - an install without a compiler: NumPy only
    _kernel = None

COMPILED: bool = _kernel is not None
"""Whether the compiled elementwise kernel is present (the same values as the NumPy code)."""

STREAM_VERSION = 1
STREAM_VERSIONS = (1,)
CHUNK = 1 << 16  # elements per chunk: bounds temporary memory and keeps it in cache

_ROTATIONS = (13, 15, 26, 6, 17, 29, 16, 24)
_PARITY = 0x1BD11BDA
_M32 = np.uint32(0xFFFFFFFF)
_2M53 = 2.0**-53
_2M52 = 2.0**-52


def check_version(stream: int) -> int:
    if stream not in STREAM_VERSIONS:
        raise BackendError(
            f"unknown portable stream version {stream!r}; known: {list(STREAM_VERSIONS)}"
        )
    return stream


def param_key(seed: int, path: str) -> tuple[int, int]:
    """The Threefry key of a parameter: the 64-bit ``derive_seed`` as (high, low) words."""
    s = derive_seed(seed, path)
    return s >> 32, s & 0xFFFFFFFF


def threefry2x32(
    key: tuple[int, int], x0: np.ndarray, x1: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Threefry-2x32 with 20 rounds (Random123 ``threefry2x32_20``, JAX's ``threefry_2x32``)."""
    ks = (np.uint32(key[0]), np.uint32(key[1]), np.uint32(key[0] ^ key[1] ^ _PARITY))
    # In place, with one scratch array: the stream is memory-bound in NumPy.
    y0 = x0.astype(np.uint32, copy=True)
    y1 = x1.astype(np.uint32, copy=True)
    tmp = np.empty_like(y1)
    with np.errstate(over="ignore"):
        y0 += ks[0]
        y1 += ks[1]
        for block in range(5):
            for r in _ROTATIONS[4 * (block % 2) : 4 * (block % 2) + 4]:
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
    return np.asarray((bits >> np.uint64(11)).astype(np.float64) * _2M53)


def uniform_open(bits: np.ndarray) -> np.ndarray:
    """(0, 1): the midpoints of 2**52 cells, so ndtri never sees 0 or 1 (with 53 bits the
    last midpoint, 1 - 2**-54, would round to 1.0)."""
    return np.asarray(((bits >> np.uint64(12)).astype(np.float64) + 0.5) * _2M52)


# Cephes ndtri (Moshier 1989), as scipy.special.ndtri, torch.special.ndtri and
# jax.scipy.special.ndtri: the same rational approximations on every backend.
_S2PI = 2.50662827463100050242e0
_EXPM2 = 0.13533528323661269189
_P0 = (
    -5.99633501014107895267e1,
    9.80010754185999661536e1,
    -5.66762857469070293439e1,
    1.39312609387279679503e1,
    -1.23916583867381258016e0,
)
_Q0 = (
    1.0,
    1.95448858338141759834e0,
    4.67627912898881538453e0,
    8.63602421390890590575e1,
    -2.25462687854119370527e2,
    2.00260212380060660359e2,
    -8.20372256168333339912e1,
    1.59056225126211695515e1,
    -1.18331621121330003142e0,
)
_P1 = (
    4.05544892305962419923e0,
    3.15251094599893866154e1,
    5.71628192246421288162e1,
    4.40805073893200834700e1,
    1.46849561928858024014e1,
    2.18663306850790267539e0,
    -1.40256079171354495875e-1,
    -3.50424626827848203418e-2,
    -8.57456785154685413611e-4,
)
_Q1 = (
    1.0,
    1.57799883256466749731e1,
    4.53907635128879210584e1,
    4.13172038254672030440e1,
    1.50425385692907503408e1,
    2.50464946208309415979e0,
    -1.42182922854787788574e-1,
    -3.80806407691578277194e-2,
    -9.33259480895457427372e-4,
)
_P2 = (
    3.23774891776946035970e0,
    6.91522889068984211695e0,
    3.93881025292474443415e0,
    1.33303460815807542389e0,
    2.01485389549179081538e-1,
    1.23716634817820021358e-2,
    3.01581553508235416007e-4,
    2.65806974686737550832e-6,
    6.23974539184983293730e-9,
)
_Q2 = (
    1.0,
    6.02427039364742014255e0,
    3.67983563856160859403e0,
    1.37702099489081330271e0,
    2.16236993594496635890e-1,
    1.34204006088543189037e-2,
    3.28014464682127739104e-4,
    2.89247864745380683936e-6,
    6.79019408009981274425e-9,
)


def _poly(x: np.ndarray, coefs: tuple[float, ...]) -> np.ndarray:
    out = np.full_like(x, coefs[0])
    for c in coefs[1:]:
        out = out * x + c
    return out


def ndtri(p: np.ndarray) -> np.ndarray:
    """Inverse of the standard normal CDF for p in (0, 1), float64 (Cephes ``ndtri``)."""
    p = np.asarray(p, dtype=np.float64)
    out = np.empty_like(p)
    upper = p > 1.0 - _EXPM2
    y = np.where(upper, 1.0 - p, p)
    central = y > _EXPM2
    w = y[central] - 0.5
    w2 = w * w
    xc = (w + w * (w2 * _poly(w2, _P0) / _poly(w2, _Q0))) * _S2PI
    out[central] = np.where(upper[central], -xc, xc)
    tail = ~central
    if tail.any():
        with np.errstate(divide="ignore"):
            t = np.sqrt(-2.0 * np.log(y[tail]))
            z = 1.0 / t
            near = t < 8.0
            corr = np.empty_like(t)
            corr[near] = z[near] * _poly(z[near], _P1) / _poly(z[near], _Q1)
            far = ~near
            corr[far] = z[far] * _poly(z[far], _P2) / _poly(z[far], _Q2)
            xt = t - np.log(t) / t - corr
        out[tail] = np.where(upper[tail], xt, -xt)
    return out


def layout_perm(shape: tuple[int, ...], layout: LayoutLike) -> tuple[int, ...]:
    """Canonical axis order of the counters: (out, in, batch, rf) when the layout resolves
    for this shape, else the stored order (biases, scalars)."""
    try:
        return canonical_perm(shape, layout)
    except InitSpecError:
        return tuple(range(len(shape)))


def check_index(shape: tuple[int, ...], index: Any) -> tuple[tuple[int, int, int], ...]:
    """``(start, step, length)`` per dimension of a shard ``index`` of ``shape``.

    A shard is one slice per dimension, with a positive step, inside the global shape
    (explicit bounds beyond it are refused rather than clamped, as they describe a tensor
    that does not tile the global one). ``BackendError`` otherwise.
    """
    if (
        not isinstance(index, tuple)
        or len(index) != len(shape)
        or not all(isinstance(s, slice) for s in index)
    ):
        raise BackendError(f"a shard is one slice per dimension of {shape}, got {index!r}")
    out = []
    for axis, (sl, n) in enumerate(zip(index, shape, strict=True)):
        parts = (sl.start, sl.stop, sl.step)
        if not all(v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in parts):
            raise BackendError(f"shard slice {sl!r} (dimension {axis}) must have int bounds")
        if sl.step is not None and sl.step <= 0:
            raise BackendError(f"shard slice {sl!r} (dimension {axis}) needs a positive step")
        for bound in (sl.start, sl.stop):
            if bound is not None and not 0 <= bound <= n:
                raise BackendError(
                    f"shard slice {sl!r} (dimension {axis}) lies outside the global size {n}"
                )
        start, stop, step = sl.indices(n)
        out.append((start, step, len(range(start, stop, step))))
    return tuple(out)


@dataclass(frozen=True)
class Block:
    """The elements of ``shape[index]`` (a shard, or the whole tensor) and their counters:
    ``counter = offset + sum_k idx_k * mult_k`` over the block's local indices ``idx``.
    Hashable, so the JAX adapter can make it a static argument of its compiled programs."""

    shape: tuple[int, ...]
    offset: int
    mults: tuple[int, ...]

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def dense(self) -> bool:
        """Whether the counters are ``offset + local flat index`` (rows of a contiguous
        stored order), so a run of them is one ``arange``."""
        step = 1
        for n, m in zip(reversed(self.shape), reversed(self.mults), strict=True):
            if n > 1 and m != step:
                return False
            step *= n
        return True


def block(
    shape: tuple[int, ...], perm: tuple[int, ...], index: tuple[slice, ...] | None = None
) -> Block:
    """The counters of ``shape[index]`` (the whole tensor if ``index`` is None).

    The counter of an element is its row-major index in the canonical order ``perm``: the
    canonical shape's row-major strides, mapped back to the stored axes; a shard is one
    slice per dimension (``check_index``), computed from its global indices alone.
    """
    cstride = [0] * len(shape)
    step = 1
    for pos in range(len(perm) - 1, -1, -1):
        cstride[perm[pos]] = step
        step *= shape[perm[pos]]
    if index is None:
        return Block(tuple(shape), 0, tuple(cstride))
    parts = check_index(shape, index)
    return Block(
        tuple(n for _, _, n in parts),
        sum(start * cs for (start, _, _), cs in zip(parts, cstride, strict=True)),
        tuple(st * cs for (_, st, _), cs in zip(parts, cstride, strict=True)),
    )


def counters_for(
    shape: tuple[int, ...], perm: tuple[int, ...], index: tuple[slice, ...] | None = None
) -> np.ndarray:
    """Global counters (int64) of the elements of ``shape[index]``, in stored order."""
    blk = block(shape, perm, index)
    out = np.full((), blk.offset, dtype=np.int64)
    for n, m in zip(blk.shape, blk.mults, strict=True):
        out = out[..., None] + np.arange(n, dtype=np.int64) * m
    return out


def truncnorm_constants(plan: TruncatedNormalPlan) -> tuple[bool, float, float]:
    """``(flip, pa, mass)`` of the inverse-CDF truncated normal: mirrored to the lower tail
    when alpha > 0 (where ndtri is accurate), ``pa = erfc(-lo / sqrt 2) / 2`` and ``mass =
    Phi(hi) - Phi(lo)`` on that side. Computed once, in Python, for every backend."""
    a, b = plan.alpha, plan.beta
    flip = a > 0
    lo, hi = (-b, -a) if flip else (a, b)
    return flip, 0.5 * math.erfc(-lo / math.sqrt(2.0)), normal_mass(lo, hi)


def _elementwise(plan: Plan, bits: np.ndarray) -> np.ndarray:
    if isinstance(plan, ConstantPlan):
        return np.full(bits.shape, plan.value, dtype=np.float64)
    if isinstance(plan, UniformPlan):
        return np.asarray(plan.low + (plan.high - plan.low) * uniform01(bits))
    if isinstance(plan, NormalPlan):
        return np.asarray(plan.loc + plan.scale * ndtri(uniform_open(bits)))
    if isinstance(plan, TruncatedNormalPlan):
        flip, pa, mass = truncnorm_constants(plan)
        z = ndtri(pa + uniform_open(bits) * mass)
        z = -z if flip else z
        return np.clip(plan.loc + plan.scale * z, plan.low, plan.high)
    raise BackendError(f"{type(plan).__name__} is not elementwise")


def elementwise(plan: Plan) -> bool:
    return isinstance(plan, (ConstantPlan, UniformPlan, NormalPlan, TruncatedNormalPlan))


def standard_normal(key: tuple[int, int], counters: np.ndarray) -> np.ndarray:
    return ndtri(uniform_open(bits64(key, counters)))


# Kernel kinds of initspec/_stream.c.
_KERNEL_UNIFORM, _KERNEL_NORMAL, _KERNEL_TRUNCNORM = 0, 1, 2
# Elements per thread below which more threads cost more than they save.
MIN_PER_THREAD = 1 << 16


def kernel_args(plan: Plan) -> tuple[int, tuple[float, ...]] | None:
    """``(kind, params)`` of ``plan`` for the compiled kernel, None if it has no kernel
    (constants, structural plans) or the kernel is not built."""
    if _kernel is None:
        return None
    if isinstance(plan, UniformPlan):
        return _KERNEL_UNIFORM, (plan.low, plan.high - plan.low)
    if isinstance(plan, NormalPlan):
        return _KERNEL_NORMAL, (plan.loc, plan.scale)
    if isinstance(plan, TruncatedNormalPlan):
        flip, pa, mass = truncnorm_constants(plan)
        return _KERNEL_TRUNCNORM, (
            plan.loc,
            plan.scale,
            pa,
            mass,
            plan.low,
            plan.high,
            1.0 if flip else 0.0,
        )
    return None


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

    workers = [threading.Thread(target=run, args=(i,)) for i in range(1, parts)]
    for w in workers:
        w.start()
    try:
        run(0)
    finally:
        for w in workers:
            w.join()
    return True


def sample_plan_portable64(
    plan: Plan,
    key: tuple[int, int],
    perm: tuple[int, ...],
    index: tuple[slice, ...] | None = None,
    compiled: bool | None = None,
) -> np.ndarray:
    """Stream-1 values of ``plan`` (float64, stored layout), the whole tensor or ``index``.

    Elementwise plans compute only the requested slice: with the compiled kernel where it
    is built (``compiled=None``: when present; ``False``: the NumPy code, the reference;
    ``True``: the kernel or ``BackendError``), else in NumPy, in chunks of ``CHUNK``
    elements. Structural plans build the whole tensor (QR needs it) and slice it.
    """
    if compiled and _kernel is None:
        raise BackendError("the compiled portable-stream kernel is not built in this install")
    if elementwise(plan):
        blk = block(plan.shape, perm, index)
        out = np.empty(blk.shape, dtype=np.float64)
        if compiled is not False and fill_compiled(out, plan, key, blk):
            return out
        flat_out = out.reshape(-1)
        flat = counters_for(plan.shape, perm, index).reshape(-1)
        for start in range(0, flat.size, CHUNK):
            part = flat[start : start + CHUNK]
            flat_out[start : start + CHUNK] = _elementwise(plan, bits64(key, part))
        return out
    full = _structural(plan, key)
    return full[index] if index is not None else full


def _orthogonal(key: tuple[int, int], rows: int, cols: int, offset: int = 0) -> np.ndarray:
    if rows * cols == 0:
        return np.zeros((rows, cols))
    g = standard_normal(key, np.arange(offset, offset + rows * cols, dtype=np.int64)).reshape(
        rows, cols
    )
    flat = g.T if rows < cols else g
    q, r = np.linalg.qr(flat)
    q = q * np.sign(np.diag(r))
    return np.asarray(q.T if rows < cols else q)


def _structural(plan: Plan, key: tuple[int, int]) -> np.ndarray:
    if isinstance(plan, IdentityPlan):
        return (
            plan.gain * np.eye(plan.shape[0], plan.shape[1]) if plan.numel else np.zeros(plan.shape)
        )
    if isinstance(plan, OrthogonalPlan):
        q = plan.gain * _orthogonal(key, plan.rows, plan.cols)
        return np.asarray(q.reshape(plan.permuted_shape).transpose(plan.inverse_perm))
    if isinstance(plan, DiracPlan):
        out_ch, in_ch = plan.canonical_shape[:2]
        return plan.build(_orthogonal(key, out_ch, in_ch) if plan.matrix == "orthogonal" else None)
    if isinstance(plan, SparsePlan):
        rows, cols = plan.canonical_shape
        n = rows * cols
        values = plan.sigma * standard_normal(key, np.arange(n, dtype=np.int64)).reshape(rows, cols)
        mask_words = bits64(key, np.arange(n, 2 * n, dtype=np.int64)).reshape(rows, cols)
        order = np.argsort(mask_words, axis=0, kind="stable")
        zero_rows = order[: plan.zeros_per_column]
        values[zero_rows, np.arange(cols)[None, :]] = 0.0
        return np.asarray(values.transpose(plan.inverse_perm))
    raise BackendError(f"portable stream: unknown plan {type(plan).__name__}")
