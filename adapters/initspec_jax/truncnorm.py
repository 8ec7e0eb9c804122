"""N(0, 1) restricted to [alpha, beta], by inverse CDF in the work dtype, with no pile-up.

``jax.random.truncated_normal`` maps u ~ U(erf(alpha/sqrt2), erf(beta/sqrt2)) through
``erf_inv``. In float32 erf(x/sqrt2) is within one ulp of +-1 beyond |x| ~ 5.3, so an
interval such as [5, 6] gets a handful of distinct values piled on its ends. Here:

- alpha and beta are static (they come from the plan), so the probabilities
  Pa = Phi(alpha), Qb = 1 - Phi(beta), W = Phi(beta) - Phi(alpha) and Ea = erf(alpha/sqrt2)
  are computed once on the host in float64 (``initspec.plans.normal_mass``, tail-accurate);
- u = (k + 1/2) 2^-m with k uniform on m random bits (m = 23 for float32, 52 for float64),
  so u and 1 - u are exact and never 0 or 1;
- each sample uses the form of the inverse CDF that is accurate where it lands:
      p = Pa + u W          x = ndtri(p)             where p < exp(-2)   (left tail)
      q = Qb + (1 - u) W    x = -ndtri(q)            where q < exp(-2)   (right tail)
      e = Ea + 2 u W        x = sqrt2 erf_inv(e)     otherwise           (|x| < 1.1)
  p, q and e are the same quantile written relative to the end it is small against, so
  each keeps the work dtype's relative precision (narrow intervals included). exp(-2) is
  where Cephes' ``ndtri`` itself leaves its central rational for its tail expansion
  z - log(z)/z - P(1/z)/(z Q(1/z)), z = sqrt(-2 log p), so only that expansion is evaluated
  (JAX's ``ndtri`` evaluates all three of its forms on every element, which made this
  sampler 20% slower than ``jax.random.truncated_normal``); its second pair of polynomials
  (z >= 8, p < exp(-32), beyond 7.62 sigma) only when the interval reaches that far;
- within +-2 sigma (the default bounds of torch, timm and Flax) the e form alone is within
  8 float32 ulps everywhere (erf_inv's own error is 5), so an interval there, wide enough
  that its u cells stay 2 ulps of e apart, is sampled with it alone, at the cost of
  ``jax.random.truncated_normal`` (the tail forms cost 10-15% more);
- far tails: when the interval lies on one side of 0 and its nearer end has tail mass below
  ``tiny * 2**50`` of the work dtype (float32: beyond ~9.9 sigma; float64: ~36 sigma,
  where the core refuses anyway), the probabilities would be subnormal. The quantile is then
  solved in log space: log Q(x) = log Q(a) + log((1 - u) + u Q(b)/Q(a)) (a < b the
  interval's ends mirrored to the right of 0), starting from the Gaussian-only solution
  x0 = sqrt(a^2 - 2 log(...)) (which lies right of the root) and refined by Newton steps on
  the concave ``log_ndtr``, which then converge monotonically.

The result is clipped to [alpha, beta] (rounding only; the exact quantiles lie inside).
"""

from __future__ import annotations

import functools
import math
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import erfinv, log_ndtr

from initspec import stream
from initspec.plans import normal_mass
from initspec_jax import threefry

_SQRT2 = math.sqrt(2.0)
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_EXP_M2 = math.exp(-2.0)  # where the tail forms take over (Cephes ndtri's own switch)
_EXP_M32 = math.exp(-32.0)  # below: z >= 8, Cephes' second tail expansion
_NEWTON_STEPS = 4  # x0's relative error is O(1/a^2) with a > 9.9; quadratic convergence


def open_uniform(key: jax.Array, shape: tuple[int, ...], work: np.dtype[Any]) -> jax.Array:
    """u = (k + 1/2) * 2^-m, k uniform on [0, 2^m): the midpoints of 2^m equal cells of (0, 1).

    m = 23 in float32 and 52 in float64, so k + 1/2 fits the significand and both u and
    1 - u are exact.
    """
    if work == np.float64:
        k = threefry.bits(key, shape, 64) >> 12
        return (k.astype(jnp.float64) + 0.5) * 2.0**-52
    k32 = threefry.bits(key, shape, 32) >> 9
    return (k32.astype(jnp.float32) + 0.5) * np.float32(2.0**-23)


def far_tail_threshold(work: np.dtype[Any]) -> float:
    """Tail mass below which the probabilities would lose precision in ``work``."""
    return float(jnp.finfo(work).tiny) * 2.0**50


def _log_upper_tail(x: float) -> float:
    """log Q(x) = log(1 - Phi(x)) in float64 on the host (x >= 0)."""
    return math.log(normal_mass(x, math.inf))


Branch = Literal["erf", "central", "central_deep", "right", "left"]

# The e form alone is within 8 float32 ulps of the exact quantile (of max(|x|, 1/4)) up to
# here, as accurate as erf_inv itself is in the centre (5 ulps): tests/test_jax_initializer.py
_ERF_ONLY_REACH = 2.0 * (1 + 1e-12)  # bounds computed as +-2 std may round past 2


@functools.lru_cache(maxsize=256)
def truncnorm_branch(
    alpha: float, beta: float, work: np.dtype[Any]
) -> tuple[Branch, tuple[float, ...]]:
    """The host-side half: which form to use and its float64 constants.

    ``"central"``: (alpha, beta, Pa, Qb, W, Ea); ``"central_deep"`` the same when a tail
    probability can fall below 4 exp(-32) (an end beyond 7.44 sigma); ``"erf"`` the same, for
    an interval within +-2 sigma (the default of torch, timm and Flax) wide enough that
    its u cells are at least two ulps of e apart: the e form alone, as
    ``jax.random.truncated_normal`` but on open midpoints, at its cost. ``"right"`` (the
    interval far right of 0) and ``"left"`` (far left, sampled mirrored): (a, b, log Q(a),
    Q(b) / Q(a)) with 0 < a < b. Separating them lets one compiled program serve every
    interval of a given shape.
    """
    near = alpha if alpha >= 0 else (-beta if beta <= 0 else 0.0)
    if near > 0 and normal_mass(near, math.inf) < far_tail_threshold(work):
        a, b = (alpha, beta) if alpha >= 0 else (-beta, -alpha)
        log_qa = _log_upper_tail(a)
        # Q(b) / Q(a); 0 when Q(b) underflows float64 (b is then beyond any reachable quantile)
        ratio = math.exp(_log_upper_tail(b) - log_qa) if normal_mass(b, math.inf) > 0 else 0.0
        return ("right" if alpha >= 0 else "left"), (a, b, log_qa, ratio)
    pa, qb, mass = (
        normal_mass(-math.inf, alpha),
        normal_mass(beta, math.inf),
        normal_mass(alpha, beta),
    )
    constants = (alpha, beta, pa, qb, mass, math.erf(alpha / _SQRT2))
    e_max = max(abs(math.erf(alpha / _SQRT2)), abs(math.erf(beta / _SQRT2)))
    cell = 2 * mass * 2.0 ** -(np.finfo(work).nmant)  # the e-width of one u cell
    if (
        -_ERF_ONLY_REACH <= alpha
        and beta <= _ERF_ONLY_REACH
        and cell >= 2 * np.spacing(work.type(e_max))
    ):
        return "erf", constants
    # 4x margin: p = Pa + u W is rounded, and a missed deep tail would be wrong, not slow
    deep = min(pa, qb) < 4 * _EXP_M32
    return ("central_deep" if deep else "central"), constants


def sample_standard(
    key: jax.Array,
    shape: tuple[int, ...],
    work: np.dtype[Any],
    branch: Branch,
    constants: tuple[Any, ...],
) -> jax.Array:
    """The device-side half: draws for ``truncnorm_branch``'s output (constants may be
    traced values)."""
    c = tuple(jnp.asarray(v, work) for v in constants)
    if branch in ("erf", "central", "central_deep"):
        return _central(key, shape, work, *c, branch=branch)
    x = _far_right_tail(key, shape, work, *c)
    return x if branch == "right" else -x


def inverse_cdf_truncated_normal(
    key: jax.Array, shape: tuple[int, ...], alpha: float, beta: float, work: np.dtype[Any]
) -> jax.Array:
    """``shape`` draws of N(0, 1) restricted to [alpha, beta] in dtype ``work``."""
    branch, constants = truncnorm_branch(alpha, beta, work)
    return sample_standard(key, shape, work, branch, constants)


def _central(
    key: jax.Array,
    shape: tuple[int, ...],
    work: np.dtype[Any],
    alpha: jax.Array,
    beta: jax.Array,
    pa: jax.Array,
    qb: jax.Array,
    w: jax.Array,
    ea: jax.Array,
    *,
    branch: Branch = "central_deep",
) -> jax.Array:
    """Inverse CDF in the p, q or e form (module docstring); ``"erf"``: the e form alone."""
    u = open_uniform(key, shape, work)
    x = _SQRT2 * erfinv(ea + u * (2 * w))
    if branch != "erf":
        p = pa + u * w
        q = qb + (1 - u) * w
        tail = ndtri_tail(jnp.minimum(p, q), branch == "central_deep")  # -ndtri(min(p, q))
        x = jnp.where(
            jnp.minimum(p, q) < jnp.asarray(_EXP_M2, work), jnp.where(p < q, -tail, tail), x
        )
    return jnp.clip(x, alpha, beta)


def ndtri_tail(t: jax.Array, deep: bool = True) -> jax.Array:
    """-ndtri(t) for 0 < t < exp(-2): Cephes' tail expansion, operation for operation as
    ``jax.scipy.special.ndtri`` computes it there. ``deep=False`` assumes t >= exp(-32)
    (z < 8) and skips the second pair of polynomials."""
    dtype = t.dtype
    z = jnp.sqrt(jnp.asarray(-2.0, dtype) * jnp.log(t))
    first = z - jnp.log(z) / z

    def expansion(p: tuple[float, ...], q: tuple[float, ...]) -> jax.Array:
        pc, qc = np.array(p, dtype), np.array(q, dtype)
        return first - jnp.polyval(pc, 1 / z) / jnp.polyval(qc, 1 / z) / z

    near = expansion(stream.P1, stream.Q1)
    if not deep:
        return near
    return jnp.where(z >= jnp.asarray(8.0, dtype), expansion(stream.P2, stream.Q2), near)


def _far_right_tail(
    key: jax.Array,
    shape: tuple[int, ...],
    work: np.dtype[Any],
    a: jax.Array,
    b: jax.Array,
    log_qa: jax.Array,
    ratio: jax.Array,
) -> jax.Array:
    """N(0, 1) restricted to [a, b], 0 < a < b, solved in log space (module docstring)."""
    u = open_uniform(key, shape, work)
    log_rel = jnp.log((1 - u) + u * ratio)  # log(Q(x) / Q(a)), <= 0
    target = log_qa + log_rel
    x = jnp.sqrt(a * a - 2 * log_rel)
    for _ in range(_NEWTON_STEPS):
        log_q = log_ndtr(-x)
        log_pdf = -0.5 * x * x - jnp.asarray(_LOG_SQRT_2PI, work)
        x = x + (log_q - target) * jnp.exp(log_q - log_pdf)
    return jnp.clip(x, a, b)
