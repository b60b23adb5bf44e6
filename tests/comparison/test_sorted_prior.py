"""The sorted-vector prior: same-distribution samples (the closest unrelated models come) never over-reject."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hubscan.pipeline.comparison import chance


def _sorted_r(a: np.ndarray, b: np.ndarray) -> float:
    sa, sb = np.sort(a) - a.mean(), np.sort(b) - b.mean()
    return float((sa * sb).sum() / math.sqrt((sa * sa).sum() * (sb * sb).sum()))


@pytest.mark.parametrize("n", [64, 384, 2048])
@pytest.mark.parametrize("draw", ["normal", "uniform", "arcsine", "t3", "bimodal"])
def test_same_distribution_pairs_reject_at_most_at_the_nominal_rate(n, draw):
    rng = np.random.default_rng(n)
    sample = {
        "normal": rng.standard_normal,
        "uniform": rng.random,
        "arcsine": lambda k: rng.beta(0.5, 0.5, k),  # lighter tails than uniform: sorted vectors closest
        "t3": lambda k: rng.standard_t(3, k),
        "bimodal": lambda k: rng.integers(0, 2, k) + 0.1 * rng.standard_normal(k),
    }[draw]
    log_ps = [chance.log_p_sorted(_sorted_r(sample(n), sample(n)), n) for _ in range(400)]
    assert np.mean(np.exp(log_ps) < 0.01) <= 0.01


def test_identical_and_drifted_vectors_are_far_beyond_the_null():
    rng = np.random.default_rng(0)
    v = rng.standard_normal(384)
    drifted = rng.permutation(v) + 0.01 * rng.standard_normal(384)  # permuted, 1 % noise
    assert chance.log_p_sorted(_sorted_r(v, v[::-1]), 384) < -200  # identical multiset
    r = _sorted_r(v, drifted)
    assert chance.log_p_sorted(r, 384) < math.log(1e-3)  # one vector
    # the median of 60 vectors is credited as only SORTED_EFFECTIVE_VECTORS independent ones
    many = chance.prior_log_p("sorted", r, 384, roles=60)
    assert many < math.log(1e-8)
    assert many == pytest.approx(chance.prior_log_p("sorted", r, 384, roles=chance.SORTED_EFFECTIVE_VECTORS))
