"""Verdict rules: one table of thresholds, each with its reason."""

from __future__ import annotations

import pytest

from hubscan.pipeline.comparison import verdicts as v
from hubscan.pipeline.comparison.candidates import CandidatePair
from hubscan.pipeline.comparison.working_row import WorkingRow

BASE = {"flagged": True, "signals": 5, "a_layers": 6, "b_layers": 6, "map_is_identity": True,
        "a_dtype": "F32", "b_dtype": "F32", "sketch_identical": 0.0, "values_identical": 0.0}  # fmt: skip


def test_every_threshold_says_why():
    assert all(len(t.reason) > 40 for t in v.THRESHOLDS.values())


@pytest.mark.parametrize(
    ("dtype", "band"), [("F32", 0.0), ("BF16", 1e-5), ("Q8_0", 3e-5), ("Q4_K_M", 1e-2), (None, 0.0)]
)
def test_cast_band(dtype, band):
    assert v.cast_band(dtype) == band


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"copy_link": True, "flagged": False}, v.EXACT_COPY),
        ({"flagged": False}, v.UNRELATED),
        ({"flagged": False, "signals": 0}, v.INSUFFICIENT),
        ({"sketch_identical": 1.0, "sketch_same": 1.0, "sketch": 1.0}, v.EXACT_COPY),
        ({"b_dtype": "BF16", "sketch_same": 1 - 2e-6, "sketch": 1.0}, v.CAST_COPY),
        ({"values_identical": 1.0, "sketch_same": 1 - 3e-5, "sketch": 1.0}, v.CAST_COPY),
        ({"sketch_same": 1 - 5e-5, "sketch": 0.99995}, v.FINE_TUNE),  # a 1 % drift in F32
        (
            {"b_dtype": "BF16", "sketch_same": 1 - 5e-5, "sketch": 0.99995},
            v.FINE_TUNE,
        ),  # beyond bf16 rounding
        # siblings: both sides' rounding bands add up
        ({"a_dtype": "Q8_0", "b_dtype": "BF16", "sketch_same": 1 - 3.5e-5, "sketch": 1.0}, v.CAST_COPY),
        # a round trip stored as F32: norms and biases agree to rounding while matrices moved a Q4 step
        ({"sorted": 1 - 1.5e-6, "sketch_same": 1 - 4e-3, "sketch": 0.996}, v.CAST_COPY),
        ({"sorted": 1 - 2.4e-5, "sketch_same": 1 - 4e-3, "sketch": 0.996}, v.FINE_TUNE),
        ({"sorted": 1.0, "sketch_same": 1 - 0.05, "sketch": 0.95}, v.FINE_TUNE),  # beyond any quantiser
        (
            {"sketch_identical": 1.0, "sketch_same": 1.0, "sketch": 1.0, "a_vocab": 250037, "b_vocab": 47284},
            v.VOCAB_COPY,
        ),
        (
            {"sketch_identical": 1.0, "sketch_same": 1.0, "sketch": 1.0, "a_vocab": 30522, "b_vocab": 30522},
            v.EXACT_COPY,
        ),
        # permuted: sorted vectors agree exactly (copy) or beyond rounding (trained after)
        ({"sorted": 1.0, "sorted_p": 1e-300, "sketch_p": 0.4, "gain_p": 0.5, "sketch": 0.0}, v.REPARAM),
        (
            {"sorted": 1 - 2.4e-5, "sorted_p": 1e-10, "sketch_p": 0.4, "gain_p": 0.5, "sketch": 0.0},
            v.REPARAM_FINE_TUNE,
        ),
        # rescaled: element-aligned r survives, the std profile bends
        ({"sketch_same": 1.0, "std_profile": 0.1, "sketch": 1.0}, v.REPARAM),
        ({"sketch_same": 1 - 5e-5, "std_profile": 0.1, "sketch": 1.0}, v.REPARAM_FINE_TUNE),
        ({"b_layers": 12, "map_is_identity": False, "sketch_same": 0.02, "sketch": 0.97}, v.STRUCTURAL),
        ({"sketch_same": 0.0, "sketch": 0.01}, v.SAME_LINEAGE),
        ({"sketch_same": 0.0, "sketch": 0.01, "signals": 1}, v.INSUFFICIENT),
    ],
)
def test_verdict_rules(extra, expected):
    row = WorkingRow(CandidatePair("org/a", "r1", "org/b", "r2", 64, "exhaustive"), **{**BASE, **extra})
    assert v.verdict(row)[0] == expected
