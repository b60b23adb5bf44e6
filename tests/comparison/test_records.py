"""The pair record and the `pairs` schema: one field list, every signal of the signal table in both."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pyarrow.parquet as pq
import pytest

from hubscan.pipeline.comparison.records import (
    PAIRS_SCHEMA,
    ScoredPair,
    SignalValue,
    pairs_from_table,
    pairs_table,
)
from hubscan.pipeline.comparison.signals import SIGNAL_TABLE, SIGNALS, signal_columns
from hubscan.pipeline.flagging.engine import FlagResult
from hubscan.pipeline.storage.schema import PAIRS, TABLES


def _record(i: int, flagged: bool = True) -> ScoredPair:
    """A record with every stored field set to a value of its own (signals too)."""
    signals = tuple(
        SignalValue(value=0.5 + i + k / 100, n=10 * k + i, bg_lo=-0.1 * k, bg_hi=0.1 * k, p=10.0 ** -(k + i))
        for k in range(len(SIGNALS))
    )
    return ScoredPair(
        a_repo_id=f"org/a{i}", a_revision="r1", b_repo_id=f"org/b{i}", b_revision="r2", hidden=384 + i,
        via="exhaustive", layout=None, compared=None, a_layers=6, b_layers=6 + i, a_dtype="F32", b_dtype="BF16",
        by_signal=signals, sketch_same=0.99, sketch_identical=0.25, values_identical=0.5,
        layer_map=[{"a_layer": 0, "b_layer": i, "r": 0.9}],
        col_norms_map=[{"role": "q", "a_layer": 1, "b_layer": 2, "r": 0.8}], signals=5, score=12.5 + i,
        p=1e-12, q=1e-10, flagged=flagged, verdict="fine-tune", reason=f"reason {i}", obfuscation=False,
        structure="pruned" if i else None, declared=bool(i % 2), declared_how="", background_pairs=22,
        flag_id="flag-x", q_level=0.01, flagged_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        hubscan_version="0.1", a_license="mit", b_license="apache-2.0", parent="a", parent_how="declared",
        license_finding="relicensed", license_reason="because",
    )  # fmt: skip


def test_the_pairs_schema_is_the_records_field_list():
    assert PAIRS.equals(PAIRS_SCHEMA) and TABLES["pairs"].equals(PAIRS_SCHEMA)
    stored = [f.name for f in dataclasses.fields(ScoredPair) if "arrow" in f.metadata]
    signal_cols = [c for s in SIGNALS for c in signal_columns(s)]
    assert sorted(PAIRS.names) == sorted(stored + signal_cols)
    assert len(set(PAIRS.names)) == len(PAIRS.names)


def test_records_round_trip_through_arrow_and_a_parquet_file(tmp_path):
    records = [_record(0, flagged=False), _record(1), _record(2)]
    table = pairs_table(records)
    assert table.schema.equals(PAIRS)
    assert pairs_from_table(table) == records
    pq.write_table(table, tmp_path / "pairs.parquet")
    assert pairs_from_table(pq.read_table(tmp_path / "pairs.parquet")) == records
    # the run's stamp fills its columns for every row
    stamped = pairs_table(records, {"flag_id": "flag-y"})
    assert stamped.column("flag_id").to_pylist() == ["flag-y"] * 3
    assert [r.flag_id for r in pairs_from_table(stamped)] == ["flag-y"] * 3


def test_a_records_columns_read_as_the_table_stores_them():
    record = _record(1)
    row = pairs_table([record]).to_pylist()[0]
    assert {c: record[c] for c in PAIRS.names} == row
    assert record.signal("sorted") == record.by_signal[SIGNALS.index("sorted")]
    assert record.get("no such column", "absent") == "absent"


@pytest.mark.parametrize("signal", [s.name for s in SIGNAL_TABLE])
def test_every_signal_has_its_columns_in_the_schema_the_record_and_the_printout(signal):
    value, n, lo, hi, p = signal_columns(signal)
    assert {value, n, lo, hi, p} <= set(PAIRS.names)
    record = _record(1)
    assert record[value] == record.signal(signal).value and record[p] == record.signal(signal).p
    printed = FlagResult(flag_id="flag-x", pairs=pairs_table([record])).flagged_table()
    assert signal in printed.column_names
    assert printed.column(signal).to_pylist() == [record.signal(signal).value]


def test_a_record_without_one_value_per_signal_is_refused():
    short = _record(1).by_signal[:-1]
    with pytest.raises(ValueError, match="signal values for the"):
        dataclasses.replace(_record(1), by_signal=short)


def test_the_printout_lists_flagged_pairs_only_undeclared_and_strongest_first():
    records = [_record(0, flagged=False), _record(1), _record(2), _record(4)]
    printed = FlagResult(flag_id="f", pairs=pairs_table(records)).flagged_table()
    # _record(i) is declared for odd i; among the undeclared, the higher score first
    assert printed.column("b_repo_id").to_pylist() == ["org/b4", "org/b2", "org/b1"]
