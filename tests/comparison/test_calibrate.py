"""Backgrounds, the Cauchy combination and Benjamini-Hochberg."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hubscan.pipeline.comparison.calibrate import (
    PRIOR_PAIRS,
    Background,
    acat,
    benjamini_hochberg,
    fit_data_only,
    fit_shrunk,
    log_benjamini_hochberg,
    log_tail,
    with_range,
)


def test_a_thin_background_stays_near_the_chance_prior():
    bg = fit_shrunk([5.0, 5.1, 4.9])  # three near-duplicate pairs far from chance
    w = 3 / (3 + PRIOR_PAIRS)
    assert bg.delta == pytest.approx(w * 5.0) and bg.sigma == 1.0


def test_a_wide_background_from_many_pairs_is_learnt():
    z = np.random.default_rng(0).normal(0.5, 3.0, 2000)
    bg = fit_shrunk(z.tolist())
    assert 0.3 < bg.delta < 0.7 and 2.7 < bg.sigma < 3.2


def test_a_background_is_never_less_conservative_than_chance():
    bg = fit_shrunk(np.random.default_rng(1).normal(-1.0, 0.3, 500).tolist())
    assert bg.delta == 0.0 and bg.sigma == 1.0


def test_the_std_profile_background_needs_data():
    assert fit_data_only([0.9, 0.95]) is None
    bg = fit_data_only([math.atanh(x) for x in (0.93, 0.94, 0.95, 0.94, 0.92)])
    assert bg is not None and bg.source == "data"


def test_the_shown_range_is_the_5_to_95_percent_of_the_pairs():
    bg = with_range(Background(0, 1, 100, "data+prior"), list(np.linspace(0, 1, 101)))
    assert bg.lo == pytest.approx(0.05) and bg.hi == pytest.approx(0.95)


def test_log_tail_is_shifted_and_scaled_by_the_background():
    assert log_tail(3.0, Background(1.0, 2.0, 10, "data+prior")) == pytest.approx(
        log_tail(1.0, Background(0, 1, 0, "prior"))
    )


def test_acat_is_dominated_by_the_strongest_signal_and_survives_underflow():
    assert acat([math.log(1e-10), math.log(0.5), math.log(0.9)]) == pytest.approx(math.log(3e-10), rel=1e-3)
    assert acat([-5000.0, math.log(0.5)]) == pytest.approx(-5000.0 + math.log(2), rel=1e-6)
    assert acat([]) == 0.0


def test_acat_of_null_p_values_is_uniform():
    rng = np.random.default_rng(2)
    p = rng.uniform(size=(20000, 4))
    combined = np.exp([acat([math.log(x) for x in row]) for row in p])
    assert abs(np.mean(combined < 0.05) - 0.05) < 0.01


def test_benjamini_hochberg():
    assert benjamini_hochberg([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.16 / 3, 0.16 / 3, 0.5])
    assert benjamini_hochberg([]) == []


def test_benjamini_hochberg_over_pairs_never_scored():
    # 4 scored pairs out of 1000 comparable ones: the unscored count as p = 1, as if scored
    assert benjamini_hochberg([1e-6, 1e-3, 0.5, 0.9], tests=1000) == pytest.approx([1e-3, 0.5, 1.0, 1.0])
    assert benjamini_hochberg([0.01, 0.04], tests=1) == benjamini_hochberg([0.01, 0.04])


def test_log_benjamini_hochberg_ranks_p_values_below_the_smallest_double():
    # log10 p of -2000 and -40: both underflow as doubles, and their q-values keep their order
    log_p = [-2000 * math.log(10), -40 * math.log(10), math.log(0.5)]
    log_q = log_benjamini_hochberg(log_p, tests=3)
    assert log_q[0] == pytest.approx(log_p[0] + math.log(3))
    assert log_q[1] == pytest.approx(log_p[1] + math.log(3 / 2))
    assert log_q[0] < log_q[1] < log_q[2] == pytest.approx(math.log(0.5))
