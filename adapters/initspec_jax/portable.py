"""The portable random stream, version 1, in JAX: the same values as ``initspec.portable``.

docs/portable-random.md specifies it; the NumPy reference is ``initspec.portable``:

- key ``(k0, k1)`` of a parameter: ``initspec.portable.param_key(seed, path)``;
- element ``i``: its row-major index in the plan's canonical order (``layout_perm``), built
  from a global ``broadcasted_iota`` per axis, so under ``jax.jit`` with sharded outputs the
  SPMD partitioner gives each device the counters of its own shard only;
- bits: ``(b0, b1) = threefry2x32_20((k0, k1), (i >> 32, i & 0xFFFFFFFF))``, the words of
  JAX's own ``threefry2x32`` primitive, written out (``initspec_jax.threefry``: JAX's CPU
  lowering of the primitive is a rolled loop that runs at memory speed);
- ``u = (u64 >> 11) * 2**-53``, ``uo = ((u64 >> 12) + 0.5) * 2**-52`` (``u64 = b0 << 32 | b1``);
- U(low, high): ``low + (high - low) * u``; N(loc, scale): ``loc + scale * ndtri(uo)``;
  truncated normal: ``clip(loc + scale * (+-ndtri(pa + uo * mass)), low, high)``;
- all of it in float64 (under ``jax.enable_x64`` for the duration of the call, whatever the
  global setting), then rounded once to the target dtype and clipped to the dtype's values
  inside the bounds.

XLA rewrites some float expressions into ones that round differently (``a * b + c`` into a
fused multiply-add, ``v / sqrt(u)`` into ``v * rsqrt(u)``); ``_opaque`` hides the operands
of those from the rewrites, so every operation rounds once, as the specification and the
other backends do.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from initspec import stream
from initspec.numeric import check_fits, inward_bounds
from initspec.plans import ConstantPlan, NormalPlan, Plan, TruncatedNormalPlan, UniformPlan
from initspec.portable import PortableStructural
from initspec.stream import Block, block, check_version
from initspec_jax.checks import check_dtype
from initspec_jax.sharding import place
from initspec_jax.threefry import threefry2x32

_U32 = jnp.uint32
_U64 = jnp.uint64
_F64 = jnp.float64


# --- counters ---------------------------------------------------------------------------


def counters(blk: Block) -> tuple[jax.Array, jax.Array]:
    """``(i >> 32, i & 0xFFFFFFFF)`` as uint32 arrays of ``blk.shape`` (needs x64).

    A sum of per-axis iotas (JAX's own ``iota_2x32_shape`` lowers the same way), which the
    SPMD partitioner splits: a device computes the counters of its shard only.
    """
    c = jnp.full(blk.shape, blk.offset, _U64)
    for axis, (n, m) in enumerate(zip(blk.shape, blk.mults, strict=True)):
        if n > 1:
            c = c + lax.broadcasted_iota(_U64, blk.shape, axis) * _U64(m)
    hi = lax.convert_element_type(c >> _U64(32), _U32)
    lo = lax.convert_element_type(c & _U64(0xFFFFFFFF), _U32)
    return hi, lo


def words(key: jax.Array, blk: Block) -> tuple[jax.Array, jax.Array]:
    """``(b0, b1)``, uint32, of the block's counters under the key (uint32[2])."""
    hi, lo = counters(blk)
    return threefry2x32(key[0], key[1], hi, lo)


def _u64(b0: jax.Array, b1: jax.Array) -> jax.Array:
    return (lax.convert_element_type(b0, _U64) << _U64(32)) | lax.convert_element_type(b1, _U64)


def uniform01(b0: jax.Array, b1: jax.Array) -> jax.Array:
    """[0, 1): ``(u64 >> 11) * 2**-53`` (exact: below 2**53, times a power of two)."""
    return lax.convert_element_type(_u64(b0, b1) >> _U64(11), _F64) * stream.TWO_M53


def uniform_open(b0: jax.Array, b1: jax.Array) -> jax.Array:
    """(0, 1): ``((u64 >> 12) + 0.5) * 2**-52``."""
    return (lax.convert_element_type(_u64(b0, b1) >> _U64(12), _F64) + 0.5) * stream.TWO_M52


# --- float64 arithmetic as the reference ------------------------------------------------


_LOWEST = -float(np.finfo(np.float64).max)


def _opaque(x: jax.Array) -> jax.Array:
    """``x`` itself, as ``max(x, lowest float64)``: an operation neither XLA nor LLVM removes
    (it differs from ``x`` at -inf), so no rewrite merges the operation that made ``x``
    with the one that uses it:

    - ``a * b + c`` is contracted into a fused multiply-add (one rounding, not two): on XLA
      CPU the uniform affine then differs from NumPy in the last bit for half the elements;
    - ``v / sqrt(u)`` becomes ``v * rsqrt(u)`` (two roundings, not one): ``log(t) / t`` in
      ndtri's tail then differs for half of them.

    What does not work: ``optimization_barrier`` and ``reduce_precision`` (removed by XLA
    before code generation), and ``where(x == x, x, y)`` (LLVM proves ``x`` is never NaN
    along the bits-to-float chain and drops the select).
    """
    return lax.max(x, jnp.asarray(_LOWEST, x.dtype))


def _poly(x: jax.Array, coefs: Sequence[Any]) -> jax.Array:
    # Horner as the reference, two roundings per step. A coefficient may be an array (one
    # per element: the tail's two approximations selected elementwise).
    out = jnp.full_like(x, coefs[0]) if np.ndim(coefs[0]) == 0 else coefs[0]
    for c in coefs[1:]:
        out = _opaque(out * x) + c
    return out


def _select(cond: jax.Array, a: Sequence[float], b: Sequence[float]) -> list[Any]:
    """Per-element coefficients: ``a[k]`` where ``cond``, else ``b[k]``."""
    return [jnp.where(cond, x, y) for x, y in zip(a, b, strict=True)]


def ndtri(p: jax.Array) -> jax.Array:
    """Inverse normal CDF of float64 ``p`` in (0, 1), Cephes ``ndtri`` in the reference's
    operation order (``initspec.portable.ndtri``); both branches are evaluated for every
    element and selected (no data-dependent shapes under jit).

    - central, ``exp(-2) < y < 1 - exp(-2)``: ``w = y - 0.5``,
      ``x = (w + w * (w2 * P0(w2) / Q0(w2))) * sqrt(2 pi)``;
    - tails, ``y = min(p, 1 - p)``: ``t = sqrt(-2 log y)``, ``z = 1 / t``,
      ``x = t - log(t) / t - z * P(z) / Q(z)`` with (P1, Q1) for t < 8 else (P2, Q2).
    """
    upper = p > 1.0 - stream.EXPM2
    y = jnp.where(upper, 1.0 - p, p)
    central = y > stream.EXPM2
    w = y - 0.5
    w2 = w * w
    r = (w2 * _poly(w2, stream.P0)) / _poly(w2, stream.Q0)
    xc = (w + _opaque(w * r)) * stream.S2PI
    t = _opaque(jnp.sqrt(-2.0 * jnp.log(y)))  # else log(t) / t becomes log(t) * rsqrt(.)
    z = 1.0 / t
    near = t < 8.0  # (P1, Q1) else (P2, Q2): same degree, so one Horner per polynomial
    corr = (z * _poly(z, _select(near, stream.P1, stream.P2))) / _poly(
        z, _select(near, stream.Q1, stream.Q2)
    )
    xt = t - jnp.log(t) / t - corr
    return jnp.where(central, jnp.where(upper, -xc, xc), jnp.where(upper, xt, -xt))


def round_once(x: jax.Array, target: np.dtype[Any]) -> jax.Array:
    """float64 ``x`` rounded once, to nearest even, to ``target``.

    XLA converts float64 to bfloat16 and float16 through float32 (two roundings:
    1 + 2**-8 + 2**-30 becomes 1.0 in bfloat16, not 1 + 2**-7). Rounding to float32 with
    round-to-odd first (the odd one of the two float32 neighbours when inexact) keeps what
    the second rounding needs, so odd-then-nearest-even equals one nearest-even rounding.
    """
    if target in (np.dtype(np.float64), np.dtype(np.float32)):
        return x.astype(target)
    r = x.astype(jnp.float32)
    back = r.astype(_F64)
    even = (lax.bitcast_convert_type(r, _U32) & _U32(1)) == 0
    toward = jnp.where(back < x, jnp.float32(jnp.inf), jnp.float32(-jnp.inf))
    r = jnp.where((back != x) & even, jnp.nextafter(r, toward), r)
    return r.astype(target)


# --- programs ---------------------------------------------------------------------------

# The value functions of the elementwise primitives: float64 values of a block from the key
# and the plan's numbers (traced, so plans of one kind and shape share a program).
Values = Callable[[jax.Array, jax.Array, Block, bool], jax.Array]


def _constant64(key: jax.Array, numbers: jax.Array, blk: Block, flip: bool) -> jax.Array:
    return jnp.full(blk.shape, numbers[0], _F64)


def _uniform64(key: jax.Array, numbers: jax.Array, blk: Block, flip: bool) -> jax.Array:
    low, width = numbers[0], numbers[1]
    return low + _opaque(width * uniform01(*words(key, blk)))


def _normal64(key: jax.Array, numbers: jax.Array, blk: Block, flip: bool) -> jax.Array:
    loc, scale = numbers[0], numbers[1]
    return loc + _opaque(scale * ndtri(uniform_open(*words(key, blk))))


def _truncated_normal64(key: jax.Array, numbers: jax.Array, blk: Block, flip: bool) -> jax.Array:
    loc, scale, low, high, pa, mass = (numbers[i] for i in range(6))
    z = ndtri(pa + _opaque(uniform_open(*words(key, blk)) * mass))
    if flip:  # mirrored
        z = -z
    return jnp.clip(loc + _opaque(scale * z), low, high)


def _finish(x: jax.Array, bounds: jax.Array | None, target: np.dtype[Any]) -> jax.Array:
    out = round_once(x, target)
    if bounds is not None:
        out = jnp.clip(out, bounds[0].astype(target), bounds[1].astype(target))
    return out


@partial(jax.jit, static_argnums=(3, 4, 5, 6, 7))
def _elementwise_jit(
    key: jax.Array,
    numbers: jax.Array,
    bounds: jax.Array | None,
    values: Values,
    flip: bool,
    blk: Block,
    target: np.dtype[Any],
    sharding: Any,
) -> jax.Array:
    # The plan's numbers and the key are traced: one program per kind, block and dtype.
    out = _finish(values(key, numbers, blk, flip), bounds, target)
    return out if sharding is None else place(out, sharding)


@partial(jax.jit, static_argnums=(3, 4, 5, 6))
def _flat_jit(
    key: jax.Array,
    numbers: jax.Array,
    bounds: jax.Array | None,
    values: Values,
    flip: bool,
    size: int,
    target: np.dtype[Any],
) -> jax.Array:
    # Counters 0 .. size - 1: one program per kind, dtype and size bucket, whatever the shape.
    return _finish(values(key, numbers, Block((size,), 0, (1,)), flip), bounds, target)


def _bucket(n: int) -> int:
    """The flat size a tensor of ``n`` elements is computed with: 2**16 at least (biases and
    small kernels share one program; 2**16 elements cost about a millisecond), the next
    power of two up to 2**22, then the next multiple of 2**22."""
    if n <= 1 << 22:
        return max(1 << 16, 1 << max(n - 1, 0).bit_length())
    return -(-n // (1 << 22)) * (1 << 22)


@partial(jax.jit, static_argnums=(1, 2))
def _unflatten(flat: jax.Array, canonical: tuple[int, ...], inverse: tuple[int, ...]) -> jax.Array:
    """The first ``prod(canonical)`` values in canonical order, moved to the stored layout
    (one small program per shape, instead of one each for the slice, reshape and transpose)."""
    out = flat[: math.prod(canonical)].reshape(canonical)
    return out if inverse == tuple(range(len(inverse))) else out.transpose(inverse)


def _traced() -> bool:
    """Whether this call is being traced (under an outer ``jax.jit``): then every array
    made here, even a constant, is a tracer."""
    return isinstance(jnp.zeros(()), jax.core.Tracer)


class JaxPortable(PortableStructural):
    """The portable stream in JAX: a ``Sampler[jax.Array]`` of ``target`` arrays (the whole
    tensor, or the shard ``index``), placed on ``sharding`` when given. Structural plans
    come from the core's float64 build (``PortableStructural``). Call under
    ``jax.enable_x64(True)`` (``sample`` does)."""

    def __init__(
        self,
        key: tuple[int, int],
        perm: tuple[int, ...],
        target: np.dtype[Any],
        index: tuple[slice, ...] | None = None,
        sharding: Any = None,
    ) -> None:
        self.key, self.perm, self.target = key, perm, target
        self.index, self.sharding = index, sharding

    def from_float64(self, values: np.ndarray, plan: Plan) -> jax.Array:
        out = round_once(jnp.asarray(values, _F64), self.target)
        return out if self.sharding is None else place(out, self.sharding)

    def _run(
        self, plan: Plan, values: Values, numbers: tuple[float, ...], flip: bool = False
    ) -> jax.Array:
        bounds = None
        if plan.bounds is not None:
            # an empty tensor has nothing to clip: no refusal, as NumPy and torch
            b = inward_bounds(*plan.bounds, self.target.name, plan.open_high) if plan.numel else (0.0, 0.0)
            bounds = jnp.asarray(b, _F64)
        key = jnp.asarray(np.array(self.key, dtype=np.uint32))
        args = (key, jnp.asarray(numbers, _F64), bounds, values, flip)
        if self.index is None and self.sharding is None and not _traced():
            # A whole tensor, computed here: its counters are 0 .. n - 1 in the canonical
            # order, so compute them flat and transpose to the stored layout. XLA CPU
            # compiles Threefry on a small N-D shape slowly (20 s for (3, 3, 8, 16), 1 s
            # flat), and the flat program is shared by every shape in a size bucket.
            # Sharded or traced calls keep the N-D form the SPMD partitioner can split.
            flat = _flat_jit(*args, _bucket(plan.numel), self.target)
            canonical = tuple(plan.shape[a] for a in self.perm)
            inverse = tuple(int(a) for a in np.argsort(self.perm))
            if canonical == flat.shape:  # a vector filling its bucket: nothing to move
                return flat
            return _unflatten(flat, canonical, inverse)
        blk = block(plan.shape, self.perm, self.index)
        return _elementwise_jit(*args, blk, self.target, self.sharding)

    def constant(self, plan: ConstantPlan) -> jax.Array:
        return self._run(plan, _constant64, (plan.value,))

    def uniform(self, plan: UniformPlan) -> jax.Array:
        # high - low in Python float64, as the reference computes it.
        return self._run(plan, _uniform64, (plan.low, plan.high - plan.low))

    def normal(self, plan: NormalPlan) -> jax.Array:
        return self._run(plan, _normal64, (plan.loc, plan.scale))

    def truncated_normal(self, plan: TruncatedNormalPlan) -> jax.Array:
        flip, pa, mass = plan.inverse_cdf
        numbers = (plan.loc, plan.scale, plan.low, plan.high, pa, mass)
        return self._run(plan, _truncated_normal64, numbers, flip)


def sample(
    plan: Plan,
    key: tuple[int, int],
    perm: tuple[int, ...],
    dtype: Any = jnp.float32,
    index: tuple[slice, ...] | None = None,
    sharding: Any = None,
    stream: int = 1,
) -> jax.Array:
    """Stream-``stream`` values of ``plan`` as a ``dtype`` array: the whole tensor, or the shard
    ``index`` (one slice per dimension) computed from its global indices alone.

    ``key``: ``initspec.stream.param_key(seed, path)``; ``perm``:
    ``initspec.stream.layout_perm(plan.shape, layout)``. Traceable (works under an outer
    ``jax.jit``); ``sharding`` (a ``Sharding``, or a ``PartitionSpec`` under a mesh) places
    the result inside the program (``initspec_jax.sharding.place``), so each device computes
    only its shard; under ``jax.jit(..., out_shardings=...)`` the partitioner does the same.
    float64 without ``jax_enable_x64`` comes back as float32, as everywhere in JAX.
    ``BackendError`` for an unknown ``stream``, a dtype the stream does not define, or an
    ``index`` that is not one in-bounds slice per dimension.
    """
    check_version(stream)
    target = check_dtype(dtype)
    out_dtype = np.dtype(jax.dtypes.canonicalize_dtype(target))  # float32 for float64 w/o x64
    check_fits(plan, out_dtype.name)
    block(plan.shape, perm, index)  # validates the shard
    with jax.enable_x64(True):
        return plan.draw(JaxPortable(key, perm, out_dtype, index, sharding))
