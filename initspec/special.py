"""Special functions for ``initspec.check``, vectorized with NumPy (the core has no SciPy).

- ``erfc`` / ``normal_cdf`` / ``normal_sf``: a series for |x| < 1.2 and a continued fraction
  beyond, relative error below 1e-14 on [0, 26] (``tests/test_check_stats.py`` compares them
  with ``scipy.special``);
- ``kolmogorov_sf``: the limiting Kolmogorov distribution, the p-value of ``sqrt(n) D``;
- ``three_moment_p``: the two-sided p-value of a statistic with known mean, standard
  deviation and skewness, from the gamma distribution with those three moments (Pearson type
  III) evaluated by Wilson and Hilferty's cube root;
- ``poisson_sf`` and ``holm``.
"""

from __future__ import annotations

import math

import numpy as np

_SQRT2 = math.sqrt(2.0)
_SQRT_PI = math.sqrt(math.pi)
_SERIES_CUT = 1.2
_SERIES_TERMS = 30  # term ratio 2 x^2 / (2n + 3) <= 2.9 / (2n + 3): below 1e-17 after 30
# (low, high, depth): the continued fraction's depth for 2e-15 relative error on [low, high)
_FRACTION_BANDS = (
    (_SERIES_CUT, 2.0, 120),
    (2.0, 3.0, 60),
    (3.0, 4.5, 30),
    (4.5, 7.0, 20),
    (7.0, math.inf, 10),
)


def _erfc_nonneg(x: np.ndarray) -> np.ndarray:
    """erfc(x) for x >= 0 (float64 array)."""
    out = np.empty_like(x)
    small = x < _SERIES_CUT
    if small.any():
        # erf(x) = 2/sqrt(pi) exp(-x^2) sum_n 2^n x^(2n+1) / (1*3*...*(2n+1)): positive terms
        xs = x[small]
        x2 = xs * xs
        term = xs.copy()
        total = xs.copy()
        for n in range(_SERIES_TERMS):
            term *= (2.0 * x2) / (2 * n + 3)
            total += term
        out[small] = 1.0 - (2.0 / _SQRT_PI) * np.exp(-x2) * total
    # erfc(x) = exp(-x^2) / sqrt(pi) / (x + (1/2) / (x + 1 / (x + (3/2) / (x + ...)))),
    # evaluated from a fixed depth that shrinks as x grows (each band within 2e-15)
    for lo, hi, depth in _FRACTION_BANDS:
        band = (x >= lo) & (x < hi)
        if not band.any():
            continue
        xl = x[band]
        t = xl.copy()
        for k in range(depth, 0, -1):
            t = xl + (0.5 * k) / t
        with np.errstate(over="ignore", under="ignore"):
            out[band] = np.exp(-xl * xl) / (_SQRT_PI * t)
    return out


def erfc(x: np.ndarray | float) -> np.ndarray:
    """The complementary error function, elementwise (NaN stays NaN; +-inf give 0 and 2)."""
    a = np.asarray(x, dtype=np.float64)
    flat = a.reshape(-1)
    out = np.full(flat.shape, np.nan)
    finite = np.isfinite(flat)
    v = flat[finite]
    r = _erfc_nonneg(np.abs(v))
    out[finite] = np.where(v < 0, 2.0 - r, r)
    out[flat == np.inf] = 0.0
    out[flat == -np.inf] = 2.0
    return out.reshape(a.shape)


def erf(x: np.ndarray | float) -> np.ndarray:
    """The error function: ``1 - erfc(x)`` (from the series near 0, where that is exact
    enough: erfc(x) ~ 1 there, the absolute error stays below 1e-16)."""
    return 1.0 - erfc(x)


def normal_cdf(z: np.ndarray | float) -> np.ndarray:
    """Phi(z) = erfc(-z / sqrt 2) / 2: accurate (relative) in the lower tail too."""
    return 0.5 * erfc(-np.asarray(z, dtype=np.float64) / _SQRT2)


def normal_sf(z: np.ndarray | float) -> np.ndarray:
    """1 - Phi(z) = erfc(z / sqrt 2) / 2."""
    return 0.5 * erfc(np.asarray(z, dtype=np.float64) / _SQRT2)


def kolmogorov_sf(lam: float) -> float:
    """P(K > lam) for the Kolmogorov distribution: the asymptotic p-value of a one-sample
    KS statistic D at sample size n, lam = sqrt(n) D.

    2 sum_k (-1)^(k-1) exp(-2 k^2 lam^2) for lam >= 1; 1 - sqrt(2 pi) / lam
    sum_k exp(-(2k-1)^2 pi^2 / (8 lam^2)) below (both series converge to float64 within 8
    terms there). At finite n the true p-value is smaller (scipy's exact ``kstwo`` at
    n >= 50 and p in [1e-8, 0.5]: the asymptotic one is 1.00x to 2.8x larger), so the test
    is conservative: it never rejects more often than its level.
    """
    if not lam > 0:
        return 1.0
    if lam >= 1.0:
        total = math.fsum((-1.0) ** (k - 1) * math.exp(-2.0 * k * k * lam * lam) for k in range(1, 9))
        return min(1.0, max(0.0, 2.0 * total))
    s = sum(math.exp(-((2 * k - 1) ** 2) * math.pi**2 / (8.0 * lam * lam)) for k in range(1, 9))
    return min(1.0, max(0.0, 1.0 - math.sqrt(2.0 * math.pi) / lam * s))


def _sf(z: float) -> float:
    """1 - Phi(z) of one number (math.erfc: the arrays' setup costs more than the value)."""
    return 0.5 * math.erfc(z / _SQRT2)


def _upper_lower(t: float, mean: float, sd: float, skew: float) -> tuple[float, float]:
    """(P(T >= t), P(T <= t)) for T gamma-distributed with these three moments."""
    if abs(skew) < 1e-6:
        z = (t - mean) / sd
        return _sf(z), _sf(-z)
    if skew < 0:  # mirror: -T has positive skew
        up, low = _upper_lower(-t, -mean, sd, -skew)
        return low, up
    # T = a + b G, G ~ Gamma(k, 1): mean a + b k, sd b sqrt(k), skew 2 / sqrt(k)
    k = 4.0 / (skew * skew)
    b = sd * skew / 2.0
    a = mean - b * k
    g = max((t - a) / b, 0.0)
    # Wilson-Hilferty: (G / k)^(1/3) ~ N(1 - 1/(9k), 1/(9k))
    w = ((g / k) ** (1.0 / 3.0) - (1.0 - 1.0 / (9.0 * k))) * 3.0 * math.sqrt(k)
    return _sf(w), _sf(-w)


def three_moment_p(t: float, mean: tuple[float, float], sd: float, skew: float) -> float:
    """Two-sided p-value of an observed ``t`` whose expectation lies in the interval ``mean``
    (a rounding tolerance; a point when both ends are equal), standard deviation ``sd`` and
    skewness ``skew``: 2 min(P(T >= t), P(T <= t)) under the Pearson type III (shifted gamma)
    with those moments, Wilson-Hilferty's cube root for its tail.

    For a sample variance of normal values (a scaled chi-square, which that gamma is
    exactly) the tail is within 2% of the exact one at n = 256 and z = 6; the normal
    approximation is 100x off there.
    """
    low, high = mean
    if not sd > 0 or not math.isfinite(t):
        return 0.0 if not math.isfinite(t) else 1.0
    if low <= t <= high:
        return 1.0
    centre = low if t < low else high
    up, down = _upper_lower(t, centre, sd, skew)
    return min(1.0, 2.0 * min(up, down))


def poisson_sf(k: int, lam: float) -> float:
    """P(K >= k) for K ~ Poisson(lam), summed in logs (k small: a handful of extra zeros)."""
    if k <= 0:
        return 1.0
    if lam <= 0:
        return 0.0
    below = sum(math.exp(j * math.log(lam) - lam - math.lgamma(j + 1)) for j in range(k))
    if below < 0.5:
        return 1.0 - below
    # P(K >= k) directly, from the terms at and above k (no cancellation)
    total, j = 0.0, k
    while True:
        term = math.exp(j * math.log(lam) - lam - math.lgamma(j + 1))
        total += term
        j += 1
        if term < 1e-18 * total or j > k + 10_000:
            return min(1.0, total)


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values: reject test i at family-wise level alpha exactly
    when ``adjusted[i] <= alpha``. p_(j) adjusted = max over i <= j of min(1, (m - i + 1)
    p_(i)), in ascending order; valid under any dependence between the tests."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    out = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        out[i] = running
    return out
