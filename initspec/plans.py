"""Plans: a spec resolved against one shape and layout. Pure math, no randomness.

The set is closed; every backend samples exactly these:

- ``ConstantPlan(value)``
- ``UniformPlan(low, high)``                      U[low, high)
- ``NormalPlan(loc, scale)``                      N(loc, scale**2), untruncated
- ``TruncatedNormalPlan(loc, scale, low, high)``  N(loc, scale**2) restricted to [low, high],
  absolute bounds; ``mean``/``std`` are the moments *after* truncation
- ``OrthogonalPlan(gain)``                        (rows, cols) with orthonormal rows or columns
- ``IdentityPlan(gain)``                          ``gain * eye(rows, cols)``
- ``DiracPlan(gain, groups, matrix)``             a conv kernel that is identity (dirac) or an
  orthogonal matrix (delta-orthogonal) at its spatial centre
- ``SparsePlan(sparsity, std)``                   N(0, std**2) with ``zeros_per_column`` zeros

Each plan knows the exact mean and variance of its elements and describes itself in one line.
Structural plans are built in canonical (out, in, ...) order, ``canonical_shape``, and moved
back to the stored layout with ``perm`` (see ``layout.canonical_perm``).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal, TypeVar

import numpy as np

from initspec import special as _special
from initspec.errors import SpecError

if TYPE_CHECKING:
    from initspec.backend import Sampler

T = TypeVar("T")

# No normal sampler produces a draw 40 std from its mode (density e^-800 of the peak); every
# backend's normals stay within ~9 std (the portable stream's ndtri within 8.3).
NORMAL_REACH = 40.0

_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _g(x: float) -> str:
    return f"{x:.4g}"


def normal_pdf(x: float) -> float:
    return _INV_SQRT_2PI * math.exp(-0.5 * x * x)


def normal_mass(alpha: float, beta: float) -> float:
    """Phi(beta) - Phi(alpha), accurate in both tails (erfc of the side away from 0)."""
    if alpha >= 0:
        return 0.5 * (math.erfc(alpha / _SQRT2) - math.erfc(beta / _SQRT2))
    if beta <= 0:
        return 0.5 * (math.erfc(-beta / _SQRT2) - math.erfc(-alpha / _SQRT2))
    return 0.5 * (math.erf(beta / _SQRT2) - math.erf(alpha / _SQRT2))


def normal_cdf(x: np.ndarray) -> np.ndarray:
    """Phi(x), vectorized (``initspec.special``), accurate in both tails."""
    return _special.normal_cdf(x)


@dataclass(frozen=True)
class _Base:
    shape: tuple[int, ...]
    fans: tuple[int, int] | None = field(default=None, kw_only=True)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def mean(self) -> float:
        raise NotImplementedError

    @property
    def var(self) -> float:
        raise NotImplementedError

    @property
    def std(self) -> float:
        return math.sqrt(self.var)

    @property
    def kurtosis(self) -> float:
        """Fourth standardized moment (3 for a normal); NaN where it is not defined."""
        return math.nan

    @property
    def bounds(self) -> tuple[float, float] | None:
        """[low, high] of a bounded plan (uniform, truncated normal), else None: rounding
        to a dtype is clipped to the dtype's values inside them."""
        return None

    open_high = False
    """Whether ``high`` itself is excluded (a uniform's [low, high))."""

    @property
    def max_magnitude(self) -> float:
        """A bound on |value| over everything the plan can produce (``numeric.check_fits``).

        Exact for constant, uniform, eye, dirac and orthogonal plans (an entry of a matrix
        with orthonormal rows or columns is at most 1, times gain); for normal-based plans
        the largest |value| within ``NORMAL_REACH`` std of the mode.
        """
        raise NotImplementedError

    def draw(self, sampler: Sampler[T]) -> T:
        """The sampler's primitive for this plan: the one dispatch over plan types."""
        raise NotImplementedError

    def _body(self) -> str:
        raise NotImplementedError

    def scaled(self, factor: float) -> Plan:
        """The distribution multiplied by ``factor`` about its location (rules' gain and
        depth scaling): std, and bounds relative to the location, scale; structural plans
        scale their gain. Constant plans have nothing to scale and refuse.
        """
        raise SpecError(("gain",), factor, f"{self._body()} is constant: a gain cannot scale it")

    def describe(self) -> str:
        """One line, e.g. ``normal(mean=0, std=0.0589)  fan_in=576 fan_out=288``."""
        text = self._body()
        if self.fans is not None:
            text += f"  fan_in={self.fans[0]} fan_out={self.fans[1]}"
        return text


@dataclass(frozen=True)
class ConstantPlan(_Base):
    """Every element ``value`` (variance 0)."""

    value: float

    @property
    def mean(self) -> float:
        return self.value

    @property
    def var(self) -> float:
        return 0.0

    @property
    def max_magnitude(self) -> float:
        return abs(self.value)

    def draw(self, sampler: Sampler[T]) -> T:
        return sampler.constant(self)

    def _body(self) -> str:
        return f"constant({_g(self.value)})"


@dataclass(frozen=True)
class UniformPlan(_Base):
    """U[low, high): mean ``(low + high) / 2``, variance ``(high - low)**2 / 12``."""

    low: float
    high: float

    @property
    def mean(self) -> float:
        return 0.5 * (self.low + self.high)

    @property
    def var(self) -> float:
        width = self.high - self.low
        return width * width / 12.0

    @property
    def std(self) -> float:
        # the width first: (high - low) / sqrt(12) stays finite and nonzero where its
        # square would overflow or underflow
        return (self.high - self.low) / math.sqrt(12.0)

    @property
    def kurtosis(self) -> float:
        return 9.0 / 5.0

    @property
    def bounds(self) -> tuple[float, float]:
        return self.low, self.high

    open_high = True

    @property
    def max_magnitude(self) -> float:
        return max(abs(self.low), abs(self.high))

    def draw(self, sampler: Sampler[T]) -> T:
        return sampler.uniform(self)

    def cdf(self, x: np.ndarray) -> np.ndarray:
        return np.clip((np.asarray(x, np.float64) - self.low) / (self.high - self.low), 0.0, 1.0)

    def scaled(self, factor: float) -> Plan:
        mid, half = self.mean, 0.5 * (self.high - self.low) * factor
        return replace(self, low=mid - half, high=mid + half)

    def _body(self) -> str:
        return f"uniform(low={_g(self.low)}, high={_g(self.high)})"


@dataclass(frozen=True)
class NormalPlan(_Base):
    """N(loc, scale**2), untruncated."""

    loc: float
    scale: float

    @property
    def mean(self) -> float:
        return self.loc

    @property
    def var(self) -> float:
        return self.scale * self.scale

    @property
    def std(self) -> float:
        return abs(self.scale)  # not sqrt(scale**2), which underflows below 1e-154

    @property
    def kurtosis(self) -> float:
        return 3.0

    @property
    def max_magnitude(self) -> float:
        return abs(self.loc) + NORMAL_REACH * self.scale

    def draw(self, sampler: Sampler[T]) -> T:
        return sampler.normal(self)

    def cdf(self, x: np.ndarray) -> np.ndarray:
        return normal_cdf((np.asarray(x, np.float64) - self.loc) / self.scale)

    def scaled(self, factor: float) -> Plan:
        return replace(self, scale=self.scale * factor)

    def _body(self) -> str:
        return f"normal(mean={_g(self.loc)}, std={_g(self.scale)})"


@dataclass(frozen=True)
class TruncatedNormalPlan(_Base):
    """N(loc, scale**2) restricted to the absolute interval [low, high]."""

    loc: float
    scale: float
    low: float
    high: float

    def __post_init__(self) -> None:
        if not self.low < self.high:
            raise SpecError(("low",), self.low, f"must be < high ({self.high})")
        z = normal_mass(self.alpha, self.beta)
        if not (z > 0 and math.isfinite(z)) or z < 1e-300:
            raise SpecError(
                ("low",),
                self.low,
                f"the interval [{self.low}, {self.high}] has no probability mass under "
                f"N({self.loc}, {self.scale}**2) in float64 (alpha={self.alpha:.4g}, "
                f"beta={self.beta:.4g}); bring the bounds within ~37 std of the mean",
            )

    @property
    def alpha(self) -> float:
        return (self.low - self.loc) / self.scale

    @property
    def beta(self) -> float:
        return (self.high - self.loc) / self.scale

    @property
    def bounds(self) -> tuple[float, float]:
        return self.low, self.high

    @property
    def max_magnitude(self) -> float:
        mode = min(max(self.loc, self.low), self.high)
        low = max(self.low, mode - NORMAL_REACH * self.scale)
        high = min(self.high, mode + NORMAL_REACH * self.scale)
        return max(abs(low), abs(high))

    @property
    def rejection(self) -> Rejection:
        """The exact rejection sampler of the standard truncated normal on [alpha, beta],
        as the native NumPy and torch streams draw it (``Rejection``)."""
        return Rejection.for_interval(self.alpha, self.beta)

    @functools.cached_property
    def inverse_cdf(self) -> tuple[bool, float, float]:
        """``(flip, pa, mass)`` of the portable stream's inverse-CDF truncated normal:
        mirrored to the lower tail when alpha > 0 (where ndtri is accurate), ``pa =
        erfc(-lo / sqrt 2) / 2`` and ``mass = Phi(hi) - Phi(lo)`` on that side, so
        ``z = +-ndtri(pa + u * mass)``. Computed once, in Python, for every backend."""
        a, b = self.alpha, self.beta
        flip = a > 0
        lo, hi = (-b, -a) if flip else (a, b)
        return flip, 0.5 * math.erfc(-lo / _SQRT2), normal_mass(lo, hi)

    def draw(self, sampler: Sampler[T]) -> T:
        return sampler.truncated_normal(self)

    def _raw_moments(self) -> tuple[float, float, float, float]:
        m = self.standard_raw_moments(4)
        return m[1], m[2], m[3], m[4]

    def standard_raw_moments(self, order: int) -> list[float]:
        """[E[X^0], ..., E[X^order]] of the standard normal truncated to [alpha, beta].

        Recurrence E[X^k] = (k-1) E[X^(k-2)] + (a^(k-1) phi(a) - b^(k-1) phi(b)) / Z.
        """
        a, b = self.alpha, self.beta
        z = normal_mass(a, b)
        pa, pb = normal_pdf(a), normal_pdf(b)

        def edge(x: float, px: float, k: int) -> float:
            # x^(k-1) phi(x) -> 0 where phi(x) underflows (|x| > ~38.6, or x infinite for a
            # std near 1e-310): x**3 would overflow, inf * 0 would be NaN.
            return x ** (k - 1) * px if px > 0.0 else 0.0

        m = [1.0, (pa - pb) / z]
        for k in range(2, order + 1):
            m.append((k - 1) * m[k - 2] + (edge(a, pa, k) - edge(b, pb, k)) / z)
        return m

    @property
    def mean(self) -> float:
        return self.loc + self.scale * self._raw_moments()[0]

    @property
    def std(self) -> float:
        # std first: scale * sqrt(unit variance) stays finite where scale**2 would not.
        m1, m2, _, _ = self._raw_moments()
        return self.scale * math.sqrt(max(m2 - m1 * m1, 0.0))

    @property
    def var(self) -> float:
        return self.std * self.std

    @property
    def kurtosis(self) -> float:
        m1, m2, m3, m4 = self._raw_moments()
        var = m2 - m1 * m1
        c4 = m4 - 4 * m1 * m3 + 6 * m1 * m1 * m2 - 3 * m1**4
        return c4 / (var * var)

    def cdf(self, x: np.ndarray) -> np.ndarray:
        """(Phi(z) - Phi(alpha)) / (Phi(beta) - Phi(alpha)), with both differences taken on
        the tail side (erfc), so it stays accurate for intervals far in either tail."""
        a, b = self.alpha, self.beta
        z = (np.clip(np.asarray(x, np.float64), self.low, self.high) - self.loc) / self.scale
        mass = normal_mass(a, b)
        if a >= 0:  # upper tail: Phi(z) - Phi(a) = (erfc(a/sqrt2) - erfc(z/sqrt2)) / 2
            num = 0.5 * (math.erfc(a / _SQRT2) - _special.erfc(z / _SQRT2))
        elif b <= 0:  # lower tail: (erfc(-z/sqrt2) - erfc(-a/sqrt2)) / 2
            num = 0.5 * (_special.erfc(-z / _SQRT2) - math.erfc(-a / _SQRT2))
        else:
            num = normal_cdf(z) - 0.5 * (1.0 + math.erf(a / _SQRT2))
        return np.asarray(np.clip(num / mass, 0.0, 1.0))

    def scaled(self, factor: float) -> Plan:
        return replace(
            self,
            scale=self.scale * factor,
            low=self.loc + (self.low - self.loc) * factor,
            high=self.loc + (self.high - self.loc) * factor,
        )

    def _body(self) -> str:
        return (
            f"truncated_normal(mean={_g(self.loc)}, std={_g(self.scale)}, "
            f"low={_g(self.low)}, high={_g(self.high)}) -> std {_g(self.std)}"
        )


# Branch threshold of the truncated-normal rejection sampler: normal proposals above this
# mass, as torch >= 2.12.
NORMAL_PROPOSAL_MASS = 0.3


@dataclass(frozen=True)
class Rejection:
    """N(0, 1) restricted to [a, b], exactly, by rejection: the proposal and its constants.

    Mirrored first (``flip``) when b <= 0, so the interval lies mostly right of 0; then

    - mass Phi(b) - Phi(a) > 0.3: N(0, 1) proposals, keep those inside [a, b] (as torch
      >= 2.12; acceptance = mass);
    - narrow, (b - a) a <= 1 or a <= 0: a uniform proposal on [a, b] accepted with
      exp((m^2 - x^2) / 2), m = ``nearest``, the point of [a, b] nearest 0;
    - a wide tail interval: Robert's (1995) exponential proposal a + Exp(rate), rate =
      (a + sqrt(a^2 + 4)) / 2, accepted with exp(-(x - rate)^2 / 2) and x <= b.

    No inverse CDF, so narrow intervals far in the tail neither pile up nor overflow.
    """

    flip: bool
    a: float
    b: float
    mass: float
    proposal: Literal["normal", "uniform", "exponential"]
    nearest: float = 0.0
    rate: float = 0.0

    @classmethod
    def for_interval(cls, a: float, b: float) -> Rejection:
        flip = b <= 0
        if flip:
            a, b = -b, -a
        mass = normal_mass(a, b)
        if mass > NORMAL_PROPOSAL_MASS:
            return cls(flip, a, b, mass, "normal")
        if a <= 0 or (b - a) * a <= 1.0:
            return cls(flip, a, b, mass, "uniform", nearest=0.0 if a <= 0 else a)
        return cls(flip, a, b, mass, "exponential", rate=0.5 * (a + math.sqrt(a * a + 4.0)))

    @property
    def acceptance(self) -> float:
        """The expected fraction of proposals kept (Robert's without the cut at b is above
        0.75; the cut lowers it: 0.5 is a safe first estimate)."""
        if self.proposal == "normal":
            return self.mass
        if self.proposal == "uniform":
            m = self.nearest
            return math.sqrt(2.0 * math.pi) * math.exp(0.5 * m * m) * self.mass / (self.b - self.a)
        return 0.5


@dataclass(frozen=True)
class _Structural(_Base):
    canonical_shape: tuple[int, ...] = field(kw_only=True)
    perm: tuple[int, ...] = field(kw_only=True)

    @property
    def permuted_shape(self) -> tuple[int, ...]:
        """``shape`` in canonical axis order; ``canonical_shape`` reshapes to it."""
        return tuple(self.shape[a] for a in self.perm)

    @property
    def inverse_perm(self) -> tuple[int, ...]:
        """The transpose that takes ``permuted_shape`` back to the stored ``shape``."""
        inv = [0] * len(self.perm)
        for i, a in enumerate(self.perm):
            inv[a] = i
        return tuple(inv)

    @property
    def rows(self) -> int:
        return self.canonical_shape[0] if self.canonical_shape else 1

    @property
    def cols(self) -> int:
        return math.prod(self.canonical_shape[1:])


@dataclass(frozen=True)
class OrthogonalPlan(_Structural):
    """(rows, cols) = (size of out axes, the rest), as torch's ``orthogonal_`` flattens."""

    gain: float

    @property
    def mean(self) -> float:
        return 0.0

    @property
    def var(self) -> float:
        n = self.rows * self.cols
        return self.gain * self.gain * min(self.rows, self.cols) / n if n else 0.0

    def scaled(self, factor: float) -> Plan:
        return replace(self, gain=self.gain * factor)

    @property
    def max_magnitude(self) -> float:
        return abs(self.gain)

    def draw(self, sampler: Sampler[T]) -> T:
        return sampler.orthogonal(self)

    def _body(self) -> str:
        return f"orthogonal(gain={_g(self.gain)}) rows={self.rows} cols={self.cols}"


@dataclass(frozen=True)
class IdentityPlan(_Base):
    """``gain`` times the identity matrix (torch ``eye_``, keras ``Identity``; 2-D only)."""

    gain: float

    def _ones(self) -> int:
        return min(self.shape)

    @property
    def mean(self) -> float:
        return self.gain * self._ones() / self.numel if self.numel else 0.0

    @property
    def var(self) -> float:
        if not self.numel:
            return 0.0
        return self.gain * self.gain * self._ones() / self.numel - self.mean * self.mean

    def scaled(self, factor: float) -> Plan:
        return replace(self, gain=self.gain * factor)

    @property
    def max_magnitude(self) -> float:
        return abs(self.gain)

    def build(self) -> np.ndarray:
        """``gain * eye(rows, cols)`` in float64 (no randomness: built once, by the core)."""
        if not self.numel:
            return np.zeros(self.shape)
        return np.asarray(self.gain * np.eye(self.shape[0], self.shape[1]))

    def draw(self, sampler: Sampler[T]) -> T:
        return sampler.identity(self)

    def _body(self) -> str:
        return f"eye(gain={_g(self.gain)})"


@dataclass(frozen=True)
class DiracPlan(_Structural):
    """Canonical (out, in, *k): ``w[g*out_per_group + d, d, *center] = gain * M[...]``.

    ``matrix="identity"`` is torch's ``dirac_`` (M = I per group, center ``k // 2``);
    ``matrix="orthogonal"`` is jax's ``delta_orthogonal`` (M an orthogonal (out, in)
    matrix, center ``(k - 1) // 2``, groups 1).
    """

    gain: float
    groups: int
    matrix: Literal["identity", "orthogonal"]
    center: tuple[int, ...]

    @property
    def out_per_group(self) -> int:
        return self.canonical_shape[0] // self.groups

    @property
    def nonzeros(self) -> int:
        return self.groups * min(self.out_per_group, self.canonical_shape[1])

    @property
    def mean(self) -> float:
        if self.matrix == "orthogonal" or not self.numel:
            return 0.0
        return self.gain * self.nonzeros / self.numel

    @property
    def var(self) -> float:
        if not self.numel:
            return 0.0
        return self.gain * self.gain * self.nonzeros / self.numel - self.mean * self.mean

    def scaled(self, factor: float) -> Plan:
        return replace(self, gain=self.gain * factor)

    @property
    def max_magnitude(self) -> float:
        return abs(self.gain)

    @property
    def centre_matrix(self) -> OrthogonalPlan:
        """The (out, in) matrix of a delta-orthogonal kernel, as an orthogonal plan."""
        out_ch, in_ch = self.canonical_shape[:2]
        return OrthogonalPlan(
            (out_ch, in_ch), canonical_shape=(out_ch, in_ch), perm=(0, 1), gain=self.gain
        )

    @property
    def centre_index(self) -> tuple[slice | int, ...]:
        """Where a delta-orthogonal kernel's matrix goes in the canonical (out, in, *k)."""
        return (slice(None), slice(None), *self.center)

    def build(self, centre: np.ndarray | None = None) -> np.ndarray:
        """The kernel in float64, in the stored layout: the identity per group, or
        ``centre`` (the drawn ``centre_matrix``, gain included) at the centre."""
        w = np.zeros(self.canonical_shape)
        if self.numel:
            if self.matrix == "orthogonal":
                assert centre is not None
                w[self.centre_index] = centre
            else:
                n = min(self.out_per_group, self.canonical_shape[1])
                d = np.tile(np.arange(n), self.groups)
                rows = np.repeat(np.arange(self.groups) * self.out_per_group, n) + d
                w[(rows, d) + self.center] = self.gain
        return np.asarray(w.transpose(self.inverse_perm))

    def draw(self, sampler: Sampler[T]) -> T:
        return sampler.dirac(self)

    def _body(self) -> str:
        name = "dirac" if self.matrix == "identity" else "delta_orthogonal"
        return f"{name}(gain={_g(self.gain)}, groups={self.groups}) center={list(self.center)}"


@dataclass(frozen=True)
class SparsePlan(_Structural):
    """torch ``sparse_``: N(0, std**2), then ``zeros_per_column`` random rows zeroed per column."""

    sparsity: float
    sigma: float

    @property
    def zeros_per_column(self) -> int:
        return math.ceil(self.sparsity * self.rows)

    @property
    def mean(self) -> float:
        return 0.0

    @property
    def var(self) -> float:
        if not self.rows:
            return 0.0
        return self.sigma * self.sigma * (self.rows - self.zeros_per_column) / self.rows

    def scaled(self, factor: float) -> Plan:
        return replace(self, sigma=self.sigma * factor)

    @property
    def max_magnitude(self) -> float:
        return NORMAL_REACH * self.sigma

    def draw(self, sampler: Sampler[T]) -> T:
        return sampler.sparse(self)

    def _body(self) -> str:
        return (
            f"sparse(sparsity={_g(self.sparsity)}, std={_g(self.sigma)}) "
            f"zeros_per_column={self.zeros_per_column}"
        )


Plan = (
    ConstantPlan
    | UniformPlan
    | NormalPlan
    | TruncatedNormalPlan
    | OrthogonalPlan
    | IdentityPlan
    | DiracPlan
    | SparsePlan
)
"""The closed set of primitives a backend samples; ``plan.draw(sampler)`` dispatches."""
