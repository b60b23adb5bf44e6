"""Verdict rules: one table of thresholds, each with its reason."""

from __future__ import annotations

import pytest

from pipeline.comparison import verdicts as v

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
        ({"b_layers": 12, "map_is_identity": False, "sketch_same": 0.02, "sketch": 0.97}, v.STRUCTURAL),
        ({"sketch_same": 0.0, "sketch": 0.01}, v.SAME_LINEAGE),
        ({"sketch_same": 0.0, "sketch": 0.01, "signals": 1}, v.INSUFFICIENT),
    ],
)
def test_verdict_rules(extra, expected):
    assert v.verdict({**BASE, **extra})[0] == expected
