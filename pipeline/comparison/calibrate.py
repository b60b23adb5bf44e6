"""Backgrounds from the data, shrunk to the chance prior; combined p-values; false discovery rate.

Each decisive signal is first turned into a chance-level z (pipeline.comparison.chance). The
block's own unrelated pairs then estimate an empirical null of that z (Efron): location and
scale by median/MAD over the pairs presumed unrelated, i.e. those no signal puts beyond
``RELATED_Z`` of chance, plus any pairs known to be unrelated. The estimate is shrunk towards
N(0, 1) by its size and never made less conservative than chance (location >= 0, scale >= 1):
a tiny store (the testbed has ~14 models, 22 unrelated pairs in its biggest block, all near-
duplicates of one MiniLM x e5 comparison) effectively keeps the prior.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from hubscan.pipeline.comparison.chance import log_sf

# A pair with any decisive signal beyond this chance z is left out of the background: related
# pairs would otherwise inflate it (copies, casts and fine-tunes are often most pairs of a block).
RELATED_Z = 4.0
# Pseudo-count of the chance prior: with n background pairs the data gets weight n / (n + 20).
PRIOR_PAIRS = 20
# The displayed background is this central range of the null (5 %–95 %).
BACKGROUND_Z = 1.6449
# Fewer presumed-unrelated pairs than this: the std-profile (no chance prior) gets no p-value.
MIN_DATA_BACKGROUND = 5
# Below this log p, ACAT's tan term is 1 / (p * pi) to double precision (p < 1e-15).
_LOG_ACAT_TINY = -34.5
# p-values enter the Cauchy combination capped here: a signal far below its null (p = 1 - 1e-12, e.g. a
# permuted copy's sketch) gives tan -> -1e11 and cancelled a decisive p = 7e-11 of another signal; the cap
# bounds that term at -32 and moves only the top 1 % of null p-values, so the tail stays calibrated.
ACAT_MAX_P = 0.99
# MAD -> sd for a normal distribution.
_MAD_SD = 1.4826


@dataclass(frozen=True)
class Background:
    """An empirical null N(delta, sigma) of a signal's z in one block, and how many pairs back it."""

    delta: float
    sigma: float
    pairs: int
    source: str  # "prior", "data+prior", "data"
    # 5-95 % of the signal's values over those pairs, shown beside each value; None below
    # MIN_DATA_BACKGROUND pairs, where the calibrated null's own range is shown instead
    lo: float | None = None
    hi: float | None = None


def with_range(bg: Background, values: Sequence[float]) -> Background:
    """The background with the observed 5-95 % range of its pairs' values (when there are enough)."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=np.float64)
    if len(v) < MIN_DATA_BACKGROUND:
        return bg
    lo, hi = np.quantile(v, [0.05, 0.95])
    return replace(bg, lo=float(lo), hi=float(hi))


def fit_shrunk(z_unrelated: Sequence[float]) -> Background:
    """Empirical null of chance-level z's, shrunk to N(0, 1) and never narrower or lower than it."""
    z = np.asarray([v for v in z_unrelated if math.isfinite(v)], dtype=np.float64)
    if len(z) < 2:
        return Background(0.0, 1.0, len(z), "prior")
    med = float(np.median(z))
    mad = float(np.median(np.abs(z - med))) * _MAD_SD
    w = len(z) / (len(z) + PRIOR_PAIRS)
    delta = max(0.0, w * med)
    sigma = max(1.0, w * mad + (1.0 - w))
    return Background(delta, sigma, len(z), "data+prior")


def fit_data_only(values: Sequence[float]) -> Background | None:
    """Empirical null of Fisher-z values for a signal with no chance prior (the std profile)."""
    z = np.asarray([v for v in values if math.isfinite(v)], dtype=np.float64)
    if len(z) < MIN_DATA_BACKGROUND:
        return None
    med = float(np.median(z))
    # Near-duplicate pairs give a MAD of ~0; a floor of 0.05 in Fisher z keeps p-values finite.
    mad = max(0.05, float(np.median(np.abs(z - med))) * _MAD_SD)
    return Background(med, mad, len(z), "data")


def log_tail(z: float, bg: Background) -> float:
    """log P(null z > z) under the background."""
    if math.isinf(z):
        return -math.inf if z > 0 else 0.0
    return log_sf((z - bg.delta) / bg.sigma)


def acat(log_ps: Sequence[float]) -> float:
    """Cauchy combination (Liu & Xie 2020) of p-values, as a log; valid under dependence between them.

    A pair's signals share tensors, so Fisher's independence assumption fails; ACAT's tail
    stays calibrated whatever the correlation and is dominated by the strongest signal.
    """
    if not log_ps:
        return 0.0
    if any(lp == -math.inf for lp in log_ps):
        return -math.inf
    tiny = [lp for lp in log_ps if lp < _LOG_ACAT_TINY]
    if tiny:
        # tan((0.5 - p) * pi) = 1 / (p * pi) for small p; these terms dwarf the rest, so sum them
        # in log space (p itself may be below the smallest double) and return log(1 / (T * pi)).
        top = max(-lp for lp in tiny)
        log_t = top + math.log(sum(math.exp(-lp - top) for lp in tiny)) - math.log(math.pi * len(log_ps))
        return -(log_t + math.log(math.pi))
    t = sum(math.tan((0.5 - min(math.exp(lp), ACAT_MAX_P)) * math.pi) for lp in log_ps) / len(log_ps)
    return math.log(max(1e-300, 0.5 - math.atan(t) / math.pi))


def benjamini_hochberg(p: Sequence[float], tests: int | None = None) -> list[float]:
    """BH-adjusted q-values, in input order, over ``tests`` hypotheses (default: the p-values given)."""
    return [math.exp(lq) for lq in log_benjamini_hochberg([_log(v) for v in p], tests)]


def log_benjamini_hochberg(log_p: Sequence[float], tests: int | None = None) -> list[float]:
    """Natural logs of BH-adjusted q-values, in input order, over ``tests`` hypotheses.

    In log space because copies have p far below the smallest double: ranked there, a permuted copy
    (log10 p ~ -2000) and a cousin (~ -40) keep their order instead of both reading 1e-300.
    Pairs never scored (not candidates) count as tests with p = 1: the FDR then holds over the
    whole block, as if it had been scored exhaustively.
    """
    n = max(len(log_p), tests or 0)
    if not log_p:
        return []
    order = sorted(range(len(log_p)), key=lambda i: log_p[i])
    q = [0.0] * len(log_p)
    running = 0.0
    for rank in range(len(log_p), 0, -1):
        i = order[rank - 1]
        running = min(running, log_p[i] + math.log(n) - math.log(rank))
        q[i] = running
    return q


def _log(p: float) -> float:
    return math.log(p) if p > 0.0 else -math.inf
