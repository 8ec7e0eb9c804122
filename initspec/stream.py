"""The portable random stream, version 1: its constants, keys and counters.

What every backend's implementation shares, as data (docs/portable-random.md specifies the
stream; ``initspec.portable`` is its NumPy reference):

- ``STREAM_VERSION``: the version these constants define; ``check_version`` refuses others;
- key of a parameter: ``derive_seed(seed, path)`` (64 bits) split into ``(k0, k1) =
  (hi32, lo32)`` (``param_key``, ``split_key``);
- bits: ``threefry2x32_20((k0, k1), (i >> 32, i & 0xFFFFFFFF))`` with the rotations
  ``ROTATIONS`` and the key-schedule parity ``PARITY`` (Random123, JAX's ``threefry_2x32``);
- uniform on [0, 1): ``(u64 >> 11) * TWO_M53``; on (0, 1): ``((u64 >> 12) + 0.5) * TWO_M52``;
- normal values: Cephes ``ndtri`` (Moshier 1989), the central rational ``P0 / Q0`` for
  ``EXPM2 < y < 1 - EXPM2`` times ``S2PI``, else the tail expansions ``P1 / Q1`` (t < 8)
  and ``P2 / Q2``;
- element ``i``: the row-major index in the layout's canonical order (``layout_perm``), of
  the whole tensor or of a shard (``Block``, ``block``, ``check_index``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from initspec.errors import BackendError, InitSpecError
from initspec.layout import LayoutLike, canonical_perm
from initspec.seeding import derive_seed

STREAM_VERSION = 1
STREAM_VERSIONS = (1,)

ROTATIONS = (13, 15, 26, 6, 17, 29, 16, 24)
"""Threefry-2x32 rotation constants, 4 per round group, alternating groups."""
PARITY = 0x1BD11BDA
"""The third key word is ``k0 ^ k1 ^ PARITY``."""
M32 = 0xFFFFFFFF
TWO_M53 = 2.0**-53
TWO_M52 = 2.0**-52


def check_version(stream: object) -> int:
    """``stream`` if it is a known version of the portable stream, else ``BackendError``."""
    if isinstance(stream, bool) or stream not in STREAM_VERSIONS:
        raise BackendError(
            f"unknown portable stream version {stream!r}; known: {list(STREAM_VERSIONS)}"
        )
    assert isinstance(stream, int)
    return stream


def split_key(seed64: int) -> tuple[int, int]:
    """The Threefry key words ``(hi32, lo32)`` of a 64-bit seed."""
    return seed64 >> 32, seed64 & M32


def param_key(seed: int, path: str) -> tuple[int, int]:
    """The Threefry key of a parameter: the 64-bit ``derive_seed(seed, path)`` as words."""
    return split_key(derive_seed(seed, path))


# Cephes ndtri (Moshier 1989), as scipy.special.ndtri, torch.special.ndtri and
# jax.scipy.special.ndtri: the same rational approximations on every backend.
S2PI = 2.50662827463100050242e0
EXPM2 = 0.13533528323661269189
P0 = (
    -5.99633501014107895267e1,
    9.80010754185999661536e1,
    -5.66762857469070293439e1,
    1.39312609387279679503e1,
    -1.23916583867381258016e0,
)
Q0 = (
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
P1 = (
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
Q1 = (
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
P2 = (
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
Q2 = (
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
