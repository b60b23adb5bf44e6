"""The seed's std-profile correlation, depth-interpolated."""

from __future__ import annotations

import pytest

from hubscan.pipeline.comparison.std_profile import std_profile_r

PROFILE = {"attn_q": [0.1, 0.12, 0.11, 0.14, 0.13, 0.15], "attn_v": [0.05, 0.06, 0.065, 0.07, 0.072, 0.08]}


def test_a_profile_matches_itself_and_a_rescaled_copy():
    assert std_profile_r(PROFILE, PROFILE) == (pytest.approx(1.0), 6)
    doubled = {k: [2 * x for x in v] for k, v in PROFILE.items()}
    assert std_profile_r(PROFILE, doubled)[0] == pytest.approx(1.0)


def test_a_shallower_profile_is_interpolated_onto_the_deeper_one():
    every_other = {k: [*v[::2], v[-1]] for k, v in PROFILE.items()}  # 4 layers vs 6
    r, depth = std_profile_r(PROFILE, every_other)
    assert depth == 6 and r > 0.8


def test_too_short_or_flat_profiles_give_nothing():
    assert std_profile_r({"attn_q": [0.1, 0.2]}, {"attn_q": [0.1, 0.2]}) == (None, 0)
    assert std_profile_r({"attn_q": [0.1] * 5}, PROFILE)[0] is None
