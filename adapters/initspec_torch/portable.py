"""The portable random stream, version 1, on torch tensors (CPU and CUDA, on their device).

The same values as the NumPy reference ``initspec.portable`` (docs/portable-random.md):

- key ``(k0, k1)`` of a parameter: ``initspec.portable.param_key(seed, path)``;
- element ``i``: its row-major index in the plan's canonical order (``layout_perm``);
- bits: ``(b0, b1) = threefry2x32_20((k0, k1), (i >> 32, i & 0xFFFFFFFF))``;
- ``u = (u64 >> 11) * 2**-53`` in [0, 1) and ``uo = ((u64 >> 12) + 0.5) * 2**-52`` in (0, 1),
  with ``u64 = b0 << 32 | b1``, computed from the two words as
  ``(b0 * 2**21 + (b1 >> 11)) * 2**-53`` and ``(b0 * 2**20 + (b1 >> 12) + 0.5) * 2**-52``
  (integers below 2**53, so the conversion to float64 is exact);
- U(low, high): ``low + (high - low) * u``; N(loc, scale): ``loc + scale * ndtri(uo)``;
  truncated normal: ``clip(loc + scale * (+-ndtri(pa + uo * mass)), low, high)``;
  every step in float64, one rounding per operation (separate kernels, no fused
  multiply-add), then rounded once to the target dtype and clipped to the dtype's values
  inside the bounds.

On the CPU, float32 and float64 tensors are written by the core's compiled kernel
(``initspec.portable.fill_compiled``, ``initspec/_stream.c``) where it is built, and float16 /
bfloat16 from its float64 chunks; the torch operations below are what CUDA runs, and the CPU
without the kernel.

torch has no usable uint32 arithmetic (no add or shift on ``torch.uint32``), so the words are
int64 tensors holding values in [0, 2**32), masked with ``& 0xFFFFFFFF``; Threefry needs only
add, xor and rotate. Work is done in chunks, so memory stays bounded by a few int64
temporaries per chunk element whatever the tensor's size.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence

import numpy as np
import torch

from initspec import portable as ref
from initspec import stream
from initspec.errors import BackendError
from initspec.plans import ConstantPlan, NormalPlan, Plan, TruncatedNormalPlan, UniformPlan
from initspec.portable import PortableStructural
from initspec.stream import Block, block
from initspec_torch.casting import SUPPORTED_DTYPES, clip_to_bounds_, dtype_name

M32 = 0xFFFFFFFF
# Elements per chunk on CPU: below torch's parallel grain size (32768), so each of the ~130
# small kernels of a chunk runs on the calling thread. With intra-op threads, every kernel
# is an OpenMP region; on a 2-core machine shared with other work each region waits for a
# time slice (measured: 1.4 s instead of 0.01 s for 84K normals). Serial chunks measured
# 6.7 M normals/s, 8.5 M uniforms/s, and memory stays at a few MiB.
CHUNK_CPU = 31744
# CUDA: large enough to fill the GPU.
CHUNK_CUDA = 1 << 22

def chunk_size(device: torch.device) -> int:
    return CHUNK_CPU if device.type == "cpu" else CHUNK_CUDA


def check_device(device: torch.device | str) -> torch.device:
    """The device itself if it computes in float64 (the stream's transforms need it)."""
    dev = torch.device(device)
    if dev.type == "mps":
        raise BackendError(
            "the portable stream computes in float64, which MPS does not support; "
            "initialize on the CPU and move the tensor"
        )
    return dev


def portable_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype itself if the stream defines it (float16, bfloat16, float32, float64)."""
    if dtype not in SUPPORTED_DTYPES:
        allowed = ", ".join(dtype_name(d) for d in SUPPORTED_DTYPES)
        raise BackendError(
            f"the portable stream does not define dtype {dtype_name(dtype)}; allowed: {allowed}"
        )
    return dtype


# --- bits -------------------------------------------------------------------------------


def threefry2x32_(
    key: tuple[int, int], x0: torch.Tensor, x1: torch.Tensor, tmp: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Threefry-2x32-20 in place on int64 words in [0, 2**32); returns ``(x0, x1)``.

    Rounds: ``x0 += x1; x1 = rotl(x1, r); x1 ^= x0`` with r cycling through
    13 15 26 6 17 29 16 24; key schedule ``(k0, k1, k0 ^ k1 ^ 0x1BD11BDA)`` injected after
    every 4 rounds (``x0 += ks[s % 3]; x1 += ks[(s + 1) % 3] + s``). ``tmp``: scratch of the
    same shape (allocated if not given).
    """
    k0, k1 = key
    ks = (k0, k1, k0 ^ k1 ^ stream.PARITY)
    if tmp is None:
        tmp = torch.empty_like(x1)
    x0.add_(ks[0])
    x1.add_(ks[1]).bitwise_and_(M32)
    for rnd in range(5):
        for r in stream.ROTATIONS[4 * (rnd % 2) : 4 * (rnd % 2) + 4]:
            # x0 is left unmasked until the end: it only feeds additions and the xor into x1
            # (whose mask drops the high bits); 26 additions of < 2**33 stay below 2**38.
            x0.add_(x1)
            torch.bitwise_right_shift(x1, 32 - r, out=tmp)
            # rotl = (x1 << r) | (x1 >> (32 - r)): the two parts do not overlap, so one fused
            # tmp + x1 * 2**r replaces shift and or; the mask below drops bits >= 32.
            torch.add(tmp, x1, alpha=1 << r, out=x1)
            x1.bitwise_xor_(x0).bitwise_and_(M32)
        s = rnd + 1
        x0.add_(ks[s % 3])
        x1.add_((ks[(s + 1) % 3] + s) & M32).bitwise_and_(M32)
    x0.bitwise_and_(M32)
    return x0, x1


def words(
    key: tuple[int, int], counters: torch.Tensor, tmp: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(b0, b1)``, int64 words in [0, 2**32), for int64 counters (global element indices)."""
    x0 = torch.bitwise_right_shift(counters, 32)
    x1 = torch.bitwise_and(counters, M32)
    return threefry2x32_(key, x0, x1, tmp)


def uniform01_(b0: torch.Tensor, b1: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``(u64 >> 11) * 2**-53`` into float64 ``out``; ``b1`` is overwritten."""
    b1.bitwise_right_shift_(11).add_(b0, alpha=1 << 21)  # u64 >> 11 < 2**53: exact
    return out.copy_(b1).mul_(stream.TWO_M53)


def uniform_open_(b0: torch.Tensor, b1: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``((u64 >> 12) + 0.5) * 2**-52`` into float64 ``out``; ``b1`` is overwritten."""
    b1.bitwise_right_shift_(12).add_(b0, alpha=1 << 20)
    return out.copy_(b1).add_(0.5).mul_(stream.TWO_M52)


# --- ndtri ------------------------------------------------------------------------------

_SPLIT = 134217729.0  # 2**27 + 1: Veltkamp's splitting constant for float64


def sqrt_rn(x: torch.Tensor) -> torch.Tensor:
    """Square root of float64 ``x`` (> 0, not huge) rounded to nearest, as IEEE ``sqrt``.

    ``torch.sqrt`` is not correctly rounded on every device (on CPU 1.3% of float64 results
    differ by an ulp from ``numpy.sqrt``). One Newton step from it, with the residual ``x - s*s`` computed
    exactly (Dekker's product via Veltkamp's split: exact in float64 without fused
    multiply-adds), ``s + r * (0.5 / s)``, is the correctly rounded root unless the root lies
    within ~2**-51 ulp of a rounding midpoint (probability ~1e-15 per element).
    """
    s = torch.sqrt(x)
    c = s * _SPLIT
    hi = c - (c - s)
    lo = s - hi
    p = s * s
    e = ((hi * hi - p) + (hi * lo) * 2.0) + lo * lo  # s*s == p + e exactly
    r = (x - p) - e  # x - p is exact (Sterbenz: p is within a factor 2 of x)
    h = torch.reciprocal(s).mul_(0.5)  # not 0.5 / s: torch computes scalar / tensor as
    # reciprocal(tensor) * scalar anyway; times 0.5 is exact, so this is RN(0.5 / s)
    return s.add_(r.mul_(h))


def _log(x: torch.Tensor) -> torch.Tensor:
    """float64 natural log. On CPU the C library's (``initspec.portable.log64``), as the
    reference (torch's CPU log, Sleef, is an ulp off on ~1e-4 of inputs, which ndtri's tail
    turns into differences of up to 5 float64 ulp); on a GPU the device's own ``log``."""
    if x.device.type == "cpu":
        return torch.from_numpy(ref.log64(x.contiguous().numpy()))
    return torch.log(x)


def _sqrt(x: torch.Tensor) -> torch.Tensor:
    """float64 square root rounded to nearest: NumPy's on CPU (IEEE ``sqrt``), else
    ``sqrt_rn``."""
    if x.device.type == "cpu":
        return torch.from_numpy(np.sqrt(x.contiguous().numpy()))
    return sqrt_rn(x)


def _poly(x: torch.Tensor, coefs: Sequence[float]) -> torch.Tensor:
    # Horner as the reference: out * x then + c, two roundings per step.
    out = torch.full_like(x, coefs[0])
    for c in coefs[1:]:
        out.mul_(x).add_(c)
    return out


def ndtri(p: torch.Tensor) -> torch.Tensor:
    """Inverse normal CDF of float64 ``p`` in (0, 1): Cephes ``ndtri`` (Moshier 1989), with
    the reference's exact operation order (``initspec.portable.ndtri``).

    Not ``torch.special.ndtri``: its compiled polynomial evaluation (contracted to fused
    multiply-adds) differs from the reference by up to 4 float64 ulp on 16% of inputs.

    - central, ``exp(-2) < y < 1 - exp(-2)``: ``w = y - 0.5``, ``x = (w + w * (w2 * P0(w2) /
      Q0(w2))) * sqrt(2 pi)``;
    - tails, with ``y = min(p, 1 - p)``: ``t = sqrt(-2 log y)``, ``x = t - log(t) / t -
      z * P(z) / Q(z)``, ``z = 1 / t``, (P1, Q1) for t < 8 else (P2, Q2); sign by side.
    """
    # Each branch runs on its own elements only (index_select / index_copy_: boolean-mask
    # indexing costs more than the arithmetic here).
    out = torch.empty_like(p)
    upper = p > 1.0 - stream.EXPM2
    y = torch.where(upper, 1.0 - p, p)
    central = y > stream.EXPM2
    ic = central.nonzero().view(-1)
    w = y.index_select(0, ic).sub_(0.5)
    w2 = w * w
    r = (w2 * _poly(w2, stream.P0)).div_(_poly(w2, stream.Q0))
    xc = r.mul_(w).add_(w).mul_(stream.S2PI)
    out.index_copy_(0, ic, torch.where(upper.index_select(0, ic), -xc, xc))
    it = central.logical_not_().nonzero().view(-1)
    if it.numel():
        t = _sqrt(_log(y.index_select(0, it)).mul_(-2.0))
        z = torch.reciprocal(t)
        corr = z * _poly(z, stream.P1) / _poly(z, stream.Q1)
        far = (t >= 8.0).nonzero().view(-1)
        if far.numel():  # y < exp(-32): the second tail approximation
            zf = z.index_select(0, far)
            corr.index_copy_(0, far, zf * _poly(zf, stream.P2) / _poly(zf, stream.Q2))
        xt = t - _log(t) / t - corr
        out.index_copy_(0, it, torch.where(upper.index_select(0, it), xt, -xt))
    return out


# --- rounding ---------------------------------------------------------------------------


def round_once(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """float64 ``x`` rounded once, to nearest even, to ``dtype``.

    torch converts float64 to float16 and bfloat16 through float32, which rounds twice
    (1 + 2**-8 + 2**-30 becomes 1.0 in bfloat16 instead of 1 + 2**-7). Rounding to float32
    with round-to-odd first (the odd one of the two float32 neighbours when inexact) keeps
    the information the second rounding needs: float32 has more than 2 bits beyond either
    16-bit format, so odd-then-nearest-even equals one nearest-even rounding.
    """
    if dtype in (torch.float64, torch.float32):
        return x.to(dtype)
    r = x.to(torch.float32)
    back = r.to(torch.float64)
    even = torch.bitwise_and(r.view(torch.int32), 1) == 0
    fix = (back != x) & even
    if bool(fix.any()):
        inf = torch.tensor(math.inf, dtype=torch.float32, device=x.device)
        toward = torch.where(back < x, inf, -inf)
        r = torch.where(fix, torch.nextafter(r, toward), r)
    return r.to(dtype)


# --- counters ---------------------------------------------------------------------------


def block_counters(blk: Block, start: int, stop: int, device: torch.device) -> torch.Tensor:
    """int64 counters of the block's local flat elements ``start .. stop - 1`` (row-major)."""
    if blk.dense:
        return torch.arange(start + blk.offset, stop + blk.offset, device=device)
    flat = torch.arange(start, stop, device=device)
    out = torch.full_like(flat, blk.offset)
    for n, m in zip(reversed(blk.shape), reversed(blk.mults), strict=True):
        if n > 1:
            out.add_(torch.remainder(flat, n), alpha=m)
            flat.floor_divide_(n)
    return out


# --- values -----------------------------------------------------------------------------

Words = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def fill_elementwise_(
    out: torch.Tensor, plan: Plan, key: tuple[int, int], blk: Block, values: Words | None
) -> torch.Tensor:
    """Write the stream values of elementwise ``plan`` for block ``blk`` into contiguous
    ``out`` (its dtype, shape ``blk.shape``), chunk by chunk; rounded once, not clipped.
    ``values(b0, b1, f)``: the float64 values of a chunk from its words, into ``f``; None
    for a constant (no bits)."""
    flat = out.view(-1)
    n = flat.numel()
    if out.device.type == "cpu" and out.dtype in (torch.float32, torch.float64):
        # The compiled kernel where it is built: straight into the tensor's memory, on
        # torch's intra-op thread count.
        if ref.fill_compiled(flat.numpy(), plan, key, blk, threads=torch.get_num_threads()):
            return out
    chunk = min(chunk_size(out.device), max(n, 1))
    tmp = torch.empty(chunk, dtype=torch.int64, device=out.device)
    f = torch.empty(chunk, dtype=torch.float64, device=out.device)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        m = stop - start
        if values is None:
            assert isinstance(plan, ConstantPlan)
            chunk_values = f[:m].fill_(plan.value)
        elif out.device.type == "cpu" and ref.fill_compiled(f[:m].numpy(), plan, key, blk, start):
            flat[start:stop] = round_once(f[:m], out.dtype)  # float16, bfloat16
            continue
        else:
            b0, b1 = words(key, block_counters(blk, start, stop, out.device), tmp[:m])
            chunk_values = values(b0, b1, f[:m])
        flat[start:stop] = round_once(chunk_values, out.dtype)
    return out


class TorchPortable(PortableStructural):
    """The portable stream into contiguous ``out``, the block ``index`` of the plan (the
    whole tensor if None): a ``Sampler[torch.Tensor]``, rounded once to ``out``'s dtype and
    clipped inside the bounds of a uniform or truncated normal. Structural plans come from
    the core's float64 build (``PortableStructural``), copied to ``out``'s device."""

    def __init__(
        self, out: torch.Tensor, key: tuple[int, int], blk: Block, index: tuple[slice, ...] | None
    ) -> None:
        self.out, self.key, self.blk, self.index = out, key, blk, index

    def from_float64(self, values: np.ndarray, plan: Plan) -> torch.Tensor:
        x = torch.from_numpy(values).to(self.out.device)
        self.out.copy_(round_once(x, self.out.dtype))
        return clip_to_bounds_(self.out, plan)

    def _fill(self, plan: Plan, values: Words | None) -> torch.Tensor:
        fill_elementwise_(self.out, plan, self.key, self.blk, values)
        return clip_to_bounds_(self.out, plan)

    def constant(self, plan: ConstantPlan) -> torch.Tensor:
        return self._fill(plan, None)

    def uniform(self, plan: UniformPlan) -> torch.Tensor:
        width = plan.high - plan.low
        return self._fill(plan, lambda b0, b1, f: uniform01_(b0, b1, f).mul_(width).add_(plan.low))

    def normal(self, plan: NormalPlan) -> torch.Tensor:
        return self._fill(
            plan, lambda b0, b1, f: ndtri(uniform_open_(b0, b1, f)).mul_(plan.scale).add_(plan.loc)
        )

    def truncated_normal(self, plan: TruncatedNormalPlan) -> torch.Tensor:
        flip, pa, mass = plan.inverse_cdf

        def values(b0: torch.Tensor, b1: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
            z = ndtri(uniform_open_(b0, b1, f).mul_(mass).add_(pa))
            if flip:
                z.neg_()
            return z.mul_(plan.scale).add_(plan.loc).clamp_(plan.low, plan.high)

        return self._fill(plan, values)


def fill_(
    out: torch.Tensor,
    plan: Plan,
    key: tuple[int, int],
    perm: tuple[int, ...],
    index: tuple[slice, ...] | None = None,
) -> torch.Tensor:
    """Write stream-1 values of ``plan`` (the whole tensor, or the shard ``index`` of it)
    into contiguous ``out`` of a supported dtype (``TorchPortable``)."""
    portable_dtype(out.dtype)
    check_device(out.device)
    blk = block(plan.shape, perm, index)
    if tuple(out.shape) != blk.shape:
        raise BackendError(
            f"the shard {index!r} of {plan.shape} has shape {blk.shape}, "
            f"the tensor {tuple(out.shape)}"
        )
    if out.numel():
        plan.draw(TorchPortable(out, key, blk, index))
    return out


def sample(
    plan: Plan,
    key: tuple[int, int],
    perm: tuple[int, ...],
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    index: tuple[slice, ...] | None = None,
) -> torch.Tensor:
    """A new tensor of stream-1 values of ``plan`` (or of the shard ``index``)."""
    blk = block(plan.shape, perm, index)
    out = torch.empty(blk.shape, dtype=portable_dtype(dtype), device=device)
    return fill_(out, plan, key, perm, index)


# --- writing into parameters ------------------------------------------------------------


def dtensor_shard(tensor: torch.Tensor) -> tuple[torch.Tensor, tuple[slice, ...]] | None:
    """``(local tensor, its global index)`` of a DTensor sharded with ``Shard`` / ``Replicate``
    placements (each rank's local tensor is one block of the global one); None for a plain
    tensor. ``BackendError`` for placements whose local tensor is not one slice per
    dimension (``_StridedShard``) or not the values themselves (``Partial``).
    """
    if "torch.distributed.tensor" not in sys.modules:
        # A DTensor's module is imported before any DTensor exists; importing it here would
        # cost every plain call seconds.
        return None
    from torch.distributed.tensor import DTensor, Replicate, Shard
    from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

    if not isinstance(tensor, DTensor):
        return None
    for p in tensor.placements:
        if type(p) not in (Shard, Replicate):
            raise BackendError(
                f"portable stream: DTensor placement {p} is not supported (only Shard(dim) "
                f"and Replicate give each rank one slice per dimension)"
            )
    local = tensor.to_local()
    shape, offset = compute_local_shape_and_global_offset(
        tuple(tensor.shape), tensor.device_mesh, tensor.placements
    )
    if tuple(local.shape) != tuple(shape):
        raise BackendError(
            f"portable stream: the local tensor {tuple(local.shape)} is not the shard "
            f"{tuple(shape)} its placements {tensor.placements} describe"
        )
    return local, tuple(slice(o, o + n) for o, n in zip(offset, shape, strict=True))


def write_(
    tensor: torch.Tensor,
    plan: Plan,
    key: tuple[int, int],
    perm: tuple[int, ...],
    index: tuple[slice, ...] | None = None,
) -> torch.Tensor:
    """Write stream-1 values of ``plan`` into ``tensor`` (no grad) and return it.

    A DTensor writes only its local shard, computed from the shard's global indices; a
    plain tensor is the whole ``plan.shape`` or, with ``index``, that shard of it. A
    contiguous tensor is filled in place chunk by chunk; any other is filled through a
    contiguous temporary (``copy_`` writes by logical index). Meta tensors are left as they
    are.
    """
    if tensor.is_meta:
        return tensor
    target = tensor
    shard = dtensor_shard(tensor)
    if shard is not None:
        if index is not None:
            raise BackendError("a DTensor carries its own shard; do not pass index")
        target, index = shard
    with torch.no_grad():
        if target.is_contiguous():
            fill_(target, plan, key, perm, index)
        else:
            target.copy_(sample(plan, key, perm, target.dtype, target.device, index))
    return tensor
