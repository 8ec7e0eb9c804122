"""Moment and KS checks shared by the statistical tests.

Tolerances come from the standard error at the sample size n, at one fixed bound Z:
- mean: the sample mean of n iid draws has standard error sigma / sqrt(n);
- variance: the sample variance has standard error sigma^2 * sqrt((kurtosis - 1) / n)
  (Var[s^2] = (mu_4 - sigma^4) / n + O(1/n^2), and mu_4 = kurtosis * sigma^4).
Z = 5 puts a correct sampler's chance of failing a check at ~6e-7 (two-sided normal tail),
and the seeds are fixed, so a test never flakes. At n = 200_000 a std that is 2% off moves
the variance by ~4%, which is 2.5x to 6x the variance tolerance for every family we sample
(normal: 5 * sqrt(2 / n) = 1.6%; uniform 1.0%; 2-sigma truncated normal 1.3%).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

Z = 5.0
KS_P = 1e-4  # as PyTorch's own test_init.py


@dataclass
class MomentCheck:
    n: int
    z_mean: float
    z_var: float
    ks_p: float

    @property
    def ok(self) -> bool:
        return abs(self.z_mean) <= Z and abs(self.z_var) <= Z and self.ks_p > KS_P


def moment_check(x: np.ndarray, mean: float, var: float, kurtosis: float, cdf=None) -> MomentCheck:
    """z-scores of the sample mean and variance against exact values, and the KS p-value."""
    x = np.asarray(x, dtype=np.float64).ravel()
    n = x.size
    sd = math.sqrt(var)
    z_mean = (x.mean() - mean) / (sd / math.sqrt(n))
    z_var = (x.var() - var) / (var * math.sqrt((kurtosis - 1.0) / n))
    ks_p = stats.kstest(x, cdf).pvalue if cdf is not None else 1.0
    return MomentCheck(n, float(z_mean), float(z_var), float(ks_p))


def plan_check(x: np.ndarray, plan) -> MomentCheck:
    return moment_check(x, plan.mean, plan.var, plan.kurtosis, plan.cdf)
