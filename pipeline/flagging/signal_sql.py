"""The signal SQL of one batch of candidate pairs, and the DuckDB connections it runs on.

Shared by the in-process run (engine.py) and the Ray tasks (flag_blocks.py): each opens a connection
over a unit's home (pipeline/storage/homes.py) or a block's files and runs the compute_*_scores.sql files.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator
from typing import Any

import duckdb

from hubscan.pipeline.comparison.candidates import CandidatePair
from hubscan.pipeline.comparison.scoring import BatchSignals
from hubscan.pipeline.keys import ModelKey
from hubscan.pipeline.storage.duckdb import connect, fetch_rows, use_candidates
from hubscan.pipeline.storage.homes import Homes, read_homes
from hubscan.pipeline.storage.parquet import Store

# DuckDB otherwise grows its buffers towards 80 % of RAM although it can spill: 30k synthetic pairs
# peaked at 4.2 GB unbounded and 2.2 GB under this limit, in the same 14 s.
DUCKDB_MEMORY_LIMIT = "2GB"
# Pairs scored per batch of SQL: the sketch query holds ~40 rows per pair in materialized CTEs,
# which do not spill; 255k pairs at once ran out of 2 GB, batches of 40k stay under it.
PAIRS_PER_BATCH = 40_000
# The pairs cut into groups, each with the connection to query it on (`unit_connections` over flag's homes).
Units = Callable[[list[CandidatePair]], Iterable[tuple[duckdb.DuckDBPyConnection, list[CandidatePair]]]]


def flag_connection(store: Store, blocks: Collection[str] | None = None) -> duckdb.DuckDBPyConnection:
    """A connection over the store's views (compacted files of ``blocks`` only, when given) with the
    memory limit pair scoring runs under."""
    con = connect(store, blocks=blocks)
    con.execute(f"SET memory_limit = '{DUCKDB_MEMORY_LIMIT}'")
    # The compute_*.sql files are written candidates-first, the order that scales. DuckDB's join
    # ordering misestimates list-heavy CTEs and joined model x model tensors before the candidates:
    # 70 s instead of 1.6 s for 30k pairs of 1000 synthetic models.
    con.execute("SET disabled_optimizers = 'join_order'")
    return con


def unit_connections(
    con: duckdb.DuckDBPyConnection, store: Store, homes: Homes | None, pairs: list[CandidatePair]
) -> Iterator[tuple[duckdb.DuckDBPyConnection, list[CandidatePair]]]:
    """The pairs unit by unit, each with a connection whose `tensors` are its unit's homes only (or all
    the pairs with ``con`` over the store's own files, when flag wrote no homes)."""
    if homes is None:
        if pairs:
            yield con, pairs
        return
    for unit in homes.units(pairs):
        unit_con = flag_connection(homes.empty_store)
        try:
            read_homes(unit_con, homes.files(unit))
            yield unit_con, unit.pairs
        finally:
            unit_con.close()


def batch_signals(con: duckdb.DuckDBPyConnection, batch: list[CandidatePair], layout: bool) -> BatchSignals:
    """The signal SQL run over one batch (at most PAIRS_PER_BATCH pairs: its callers cut them) of a
    hidden-size block or, with ``layout``, of unknown architectures: a working row per pair.

    Raises:
        QueryError: a shipped query failed, or returned a column the working row has no field for.
    """
    inputs = BatchSignals.of(batch)
    if not batch:
        return inputs
    use_candidates(con, batch)
    if layout:  # unknown architectures: the roles-free signals, in the sketch and sorted columns
        inputs.add_signal_rows(fetch_rows(con, "compute_layout_scores"))
        return inputs
    for name in (
        "compute_sketch_scores",
        "compute_dim_scores",
        "compute_token_scores",
        "compute_sorted_scores",
    ):
        inputs.add_signal_rows(fetch_rows(con, name))
    for key, roles in _profiles(fetch_rows(con, "list_std_profiles")).items():
        inputs.profiles.setdefault(key, roles)
    return inputs


def _profiles(rows: list[dict[str, Any]]) -> dict[ModelKey, dict[str, list[float]]]:
    out: dict[ModelKey, dict[str, list[float]]] = {}
    for r in rows:
        out.setdefault((r["repo_id"], r["revision"]), {})[r["role"]] = list(r["stds"])
    return out
