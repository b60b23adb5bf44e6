"""Every signal has its five columns in the pairs table."""

from __future__ import annotations

from hubscan.pipeline.comparison.signals import DECISIVE, SIGNALS, signal_columns
from hubscan.pipeline.storage.schema import PAIRS, TABLES


def test_pairs_schema_has_every_signal_column():
    assert TABLES["pairs"] is PAIRS
    for s in SIGNALS:
        assert set(signal_columns(s)) <= set(PAIRS.names), s


def test_the_std_profile_never_decides():
    assert "std_profile" not in DECISIVE
    assert {"sketch", "gain", "dim_std", "col_norms", "tokens", "sorted"} == set(DECISIVE)
