"""The chance prior: tails are accurate far out, and under simulated independence they never over-reject."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hubscan.pipeline.comparison import chance


def _pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    xc = x - x.mean(axis=-1, keepdims=True)
    yc = y - y.mean(axis=-1, keepdims=True)
    return (xc * yc).sum(-1) / np.sqrt((xc * xc).sum(-1) * (yc * yc).sum(-1))


@pytest.mark.parametrize("z", [-3.0, 0.0, 1.0, 8.0, 36.0])
def test_log_sf_matches_erfc_where_erfc_is_exact(z):
    assert chance.log_sf(z) == pytest.approx(math.log(0.5 * math.erfc(z / math.sqrt(2))), rel=1e-6)


def test_log_sf_stays_finite_and_continuous_where_the_tail_underflows_a_double():
    assert chance.log_sf(60.0) < -1800 and math.isfinite(chance.log_sf(60.0))
    assert chance.log_sf(37.0 - 1e-9) == pytest.approx(chance.log_sf(37.0), rel=1e-9)


@pytest.mark.parametrize("log_p", [-0.01, -2.3, -40.0, -700.0, -2000.0, -1e6, -1e9])
def test_z_from_log_p_inverts_log_sf(log_p):
    assert chance.log_sf(chance.z_from_log_p(log_p)) == pytest.approx(log_p, rel=1e-4)


def test_a_copy_gets_a_tail_far_below_any_threshold():
    assert chance.prior_log_p("gain", 1.0, 384) < -1000


def _false_positive_rate(signal: str, draws: np.ndarray, n: int, **kw: int) -> float:
    ps = [math.exp(chance.prior_log_p(signal, float(v), n, **kw)) for v in draws]
    return float(np.mean(np.asarray(ps) < 0.01))


def test_single_pearson_prior_does_not_over_reject_independent_vectors():
    rng = np.random.default_rng(0)
    r = _pearson(rng.standard_normal((4000, 384)), rng.standard_normal((4000, 384)))
    assert _false_positive_rate("gain", r, 384) <= 0.01


def test_sketch_prior_does_not_over_reject_independent_models():
    # median over 3 shallow layers of the best of 6 deep layers of the median over 6 roles
    rng = np.random.default_rng(1)
    n, roles, shallow, deep, sims = 256, 6, 3, 6, 600
    a = rng.standard_normal((sims, shallow, 1, roles, n))
    b = rng.standard_normal((sims, 1, deep, roles, n))
    r = _pearson(a, b)  # sims x shallow x deep x roles
    stat = np.median(np.median(r, axis=3).max(axis=2), axis=1)
    assert _false_positive_rate("sketch", stat, n, tries=deep, roles=roles, layers=shallow) <= 0.01


def test_col_norms_prior_does_not_over_reject_independent_models():
    rng = np.random.default_rng(2)
    n, tries, roles, sims = 384, 18, 4, 800
    r = _pearson(rng.standard_normal((sims, roles, tries, n)), rng.standard_normal((sims, roles, tries, n)))
    stat = np.median(r.max(axis=2), axis=1)
    assert _false_positive_rate("col_norms", stat, n, tries=tries, roles=roles) <= 0.01


def test_the_prior_is_not_blind_either():
    # a moderately related pair (r = 0.3 over 384 dimensions) is in the chance tail even with inflation
    assert chance.prior_log_p("dim_std", 0.3, 384) < math.log(1e-4)


def test_value_at_z_inverts_the_prior():
    x = chance.value_at_z("col_norms", 2.0, 384.0, 36, 4, 1)
    assert chance.z_from_log_p(chance.prior_log_p("col_norms", x, 384.0, 36, 4, 1)) == pytest.approx(
        2.0, abs=1e-3
    )


@pytest.mark.parametrize("signal", ["sketch", "col_norms"])
def test_a_value_far_below_chance_has_tail_one_even_as_the_best_of_many_tries(signal):
    # r = -1 over 4096 values: the single tail rounds to p = 1, where log1p(-p) has no value
    assert chance.prior_log_p(signal, -1.0, 4096, tries=6, roles=4) == 0.0
