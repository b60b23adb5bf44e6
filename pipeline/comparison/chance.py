"""Chance-level tail probabilities of each signal: the conservative prior every background starts from.

Independently trained models have arbitrary hidden bases, so for element-aligned and per-dimension
signals an unrelated pair sits at chance: a Pearson over n aligned values is ~N(0, 1/sqrt(n)) on
the Fisher-z scale. Summaries that take a best match or a median are handled exactly under
independence: a max over k tries is a Sidak tail, a median over m items a binomial tail. Logs
throughout, because copies give tail probabilities far below 1e-300.
"""

from __future__ import annotations

import math
from functools import lru_cache
from statistics import NormalDist

# Real weights are heavy-tailed per dimension (outlier dimensions, shared-architecture bias), so
# the chance sd is inflated. On the testbed every unrelated pair sits within 1.3 chance sds.
PRIOR_SD_INFLATION = 1.5
# Vectors shorter than this give no usable Pearson.
MIN_VALUES = 8
# The sorted-vector signal (permutation-invariant): its null is two models whose per-dimension values
# are independent draws from the SAME distribution, the closest unrelated models can come. Then
# n * (1 - r) of the sorted vectors (Pearson) has median 1.0-1.6 (normal), 0.66 (uniform), 0.73
# (arcsine, the lightest tails), 3-10 (bimodal), with log-sd 0.42-0.73 (1.2 bimodal) for n = 64-2048
# (simulated, tests/comparison/test_sorted_prior.py); 0.5 and 0.75 are below every one of them.
# Measured: all-MiniLM-L6 vs e5-small 13.9 (unrelated), a 1 %-drifted permuted copy 0.0094, exact or
# permuted copies 0.
SORTED_NULL_ND = 0.5
SORTED_NULL_LOG_SD = 0.75
# One model's vectors are not independent (one training run shapes them all), so their median is
# treated as a median of this many independent items, not of all of them: one per kind of vector
# (norm gains, norm biases, projection biases, MLP biases, embedding dim-std).
SORTED_EFFECTIVE_VECTORS = 5
# Below this n * (1 - r), a sorted vector is identical to double precision.
_SORTED_FLOOR = 1e-12
_LOG_TINY = -745.0  # log of the smallest double: below it p underflows to 0
_NORMAL = NormalDist()


def log_sf(z: float) -> float:
    """log P(Z > z) for a standard normal, accurate far into the tail."""
    if z < 37.0:
        return math.log(0.5 * math.erfc(z / math.sqrt(2.0)))
    # Mills-ratio asymptotic series (erfc underflows near z = 38); its error at 37 is below 1e-12.
    z2 = z * z
    series = 1.0 - 1.0 / z2 + 3.0 / z2**2 - 15.0 / z2**3
    return -0.5 * z2 - math.log(z * math.sqrt(2.0 * math.pi)) + math.log(series)


def z_from_log_p(log_p: float) -> float:
    """The standard-normal z whose upper tail is exp(log_p) (inverse of log_sf)."""
    if log_p >= 0.0:
        return -math.inf
    if log_p > _LOG_TINY + 5:
        p = math.exp(log_p)
        return -_NORMAL.inv_cdf(min(p, 1.0 - 1e-16))
    # Beyond double range: invert the asymptotic tail by fixed-point iteration. It lands on an exact fixed
    # point within ~5 steps, after which every step returns it again: stop there (a family's pairs are
    # mostly this far out, and 50 steps each were ~4 % of flag's CPU at 10k Hub-shaped models).
    z = math.sqrt(-2.0 * log_p)
    for _ in range(50):
        step = math.sqrt(max(1e-12, -2.0 * (log_p + math.log(z * math.sqrt(2.0 * math.pi)))))
        if step == z:
            break
        z = step
    return z


def fisher_z(r: float) -> float:
    """atanh clipped just inside ±1, so a bit-identical pair gives a large finite value."""
    return math.atanh(max(-1.0 + 1e-15, min(1.0 - 1e-15, r)))


def log_p_single(r: float, n: float) -> float:
    """log tail of one Pearson over n aligned values at chance (inflated sd)."""
    sd = PRIOR_SD_INFLATION / math.sqrt(max(n - 3.0, 1.0))
    return log_sf(fisher_z(r) / sd)


def log_p_max(log_p: float, k: int) -> float:
    """Sidak: log tail of the best of k independent tries whose single tail is exp(log_p)."""
    if k <= 1:
        return log_p
    if log_p < -30.0:
        return min(0.0, math.log(k) + log_p)
    if log_p > -1e-16:
        # p rounds to 1 (a value far below chance, e.g. anti-correlated layers): so does the best of k
        return 0.0
    return math.log(-math.expm1(k * math.log1p(-math.exp(log_p))))


def log_p_median(log_p: float, m: int) -> float:
    """log tail of a median of m independent items with tail exp(log_p): binomial, conservative for even m."""
    if m <= 1:
        return log_p
    need = math.ceil(m / 2)  # the upper-middle item must exceed: true whenever the median does
    if log_p <= _LOG_TINY:
        return math.lgamma(m + 1) - math.lgamma(need + 1) - math.lgamma(m - need + 1) + need * log_p
    log_q = math.log1p(-math.exp(log_p)) if log_p < -1e-12 else _LOG_TINY
    terms = [
        math.lgamma(m + 1) - math.lgamma(j + 1) - math.lgamma(m - j + 1) + j * log_p + (m - j) * log_q
        for j in range(need, m + 1)
    ]
    top = max(terms)
    return min(0.0, top + math.log(sum(math.exp(t - top) for t in terms)))


def prior_log_p(
    signal: str, value: float, n: float, tries: int = 1, roles: int = 1, layers: int = 1
) -> float:
    """Chance-level log tail probability of one signal's summary value (see module docstring)."""
    if signal == "sketch":
        # median over shallow layers of the best deep layer of the median over roles
        cell = log_p_median(log_p_single(value, n), roles)
        return log_p_median(log_p_max(cell, tries), layers)
    if signal == "col_norms":
        # median over roles of the best layer pair
        return log_p_median(log_p_max(log_p_single(value, n), tries), roles)
    if signal == "sorted":
        return log_p_median(log_p_sorted(value, n), min(roles, SORTED_EFFECTIVE_VECTORS))
    return log_p_single(value, n)


def log_p_sorted(r: float, n: float) -> float:
    """log P(two same-distribution samples of n values have sorted vectors at least this close)."""
    nd = max(_SORTED_FLOOR, n * (1.0 - r))
    z = (math.log(SORTED_NULL_ND) - math.log(nd)) / (PRIOR_SD_INFLATION * SORTED_NULL_LOG_SD)
    return log_sf(z)


@lru_cache(maxsize=65536)
def value_at_z(signal: str, z: float, n: float, tries: int = 1, roles: int = 1, layers: int = 1) -> float:
    """The summary value whose chance-level tail equals that of a standard normal at z (bisection)."""
    target = log_sf(z)
    lo, hi = -0.999999, 0.999999
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if prior_log_p(signal, mid, n, tries, roles, layers) > target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)
