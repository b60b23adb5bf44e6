"""Layer and expert maps of flagged (or requested) pairs: which pairs need one, the DuckDB fetch, the table.

The maps themselves and the structure they show are pure (pipeline.comparison.structure). Only pairs
that need one are mapped, because the layer-similarity query compares every layer with every layer on
all sampled values: flagged pairs whose depths differ, whose best layer matches are not the identity,
or where either model has routed experts; `hubscan compare` maps its pair always.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime

import duckdb
import pyarrow as pa

from hubscan.pipeline import __version__
from hubscan.pipeline.comparison import structure
from hubscan.pipeline.comparison.candidates import CandidatePair
from hubscan.pipeline.comparison.expert_map import Model, models_from_rows
from hubscan.pipeline.comparison.layer_align import PARTIAL, Similarity, similarity_matrices
from hubscan.pipeline.comparison.structure import MapRow, MapStamp, PairStructure, PartialPair
from hubscan.pipeline.comparison.working_row import WorkingRow
from hubscan.pipeline.errors import QueryError
from hubscan.pipeline.flagging.signal_sql import Units
from hubscan.pipeline.keys import ModelKey, PairKey
from hubscan.pipeline.storage.duckdb import fetch_rows, use_candidates
from hubscan.pipeline.storage.parquet import Store
from hubscan.pipeline.storage.schema import LAYER_MAPS

FLAG_FILE = "layer_maps/layer_maps.parquet"
# Pairs mapped per query: the layer-similarity query compares every layer with every layer, and the ~100k
# flagged pairs of a 100k-model synthetic hub at once ran out of flag's 2 GB DuckDB limit.
PAIRS_PER_BATCH = 10_000


def model_structure(store: Store) -> tuple[set[ModelKey], dict[ModelKey, int]]:
    """The stored models with routed experts, and every model's layer count (a stack's depth check): one
    read of `models` per run (over many loose files the models view cost DuckDB 5 s and 15 GB at 10k
    models, per call)."""
    table = store.dataset("models").to_table(columns=["repo_id", "revision", "experts", "layers"])
    moe: set[ModelKey] = set()
    depths: dict[ModelKey, int] = {}
    for r in table.to_pylist():
        key = (r["repo_id"], r["revision"])
        if (r["experts"] or 0) > 0:
            moe.add(key)
        if r["layers"] is not None:
            depths[key] = int(r["layers"])
    return moe, depths


def needs_map(row: WorkingRow, moe: set[ModelKey]) -> bool:
    """A flagged pair whose layer structure or MLP structure differs (or may)."""
    if not row.flagged or row.copy_link:
        return False
    return (
        row.a_layers != row.b_layers or row.map_is_identity is False or row.pair.a in moe or row.pair.b in moe
    )


def map_pairs(
    con: duckdb.DuckDBPyConnection,
    pairs: Iterable[CandidatePair],
    moe: set[ModelKey],
    depths: Mapping[ModelKey, int],
    source: str,
    known: Iterable[PartialPair] = (),
    units: Units | None = None,
) -> tuple[dict[PairKey, PairStructure], pa.Table]:
    """Map the given pairs: each one's structure (its verdict is decided with it later) and the layer_maps rows.

    ``depths``: every model's layer count (`model_structure`, loaded once per run).
    ``known``: partial maps of other pairs (from the store) that may hold a stack's other parent.
    ``units``: the pairs cut into groups, each with the connection to query it on (flag's homes);
    by default all of them on ``con``.

    Raises:
        QueryError: a shipped query failed.
    """
    cand = list(pairs)
    if not cand:
        return {}, LAYER_MAPS.empty_table()
    keys = [c.key for c in cand]
    any_moe = any(k[:2] in moe or k[2:] in moe for k in keys)
    sims: dict[PairKey, Similarity] = {}
    mlps: dict[ModelKey, Model] = {}
    for unit_con, part in units(cand) if units is not None else [(con, cand)]:
        for start in range(0, len(part), PAIRS_PER_BATCH):
            # each pair's matrix comes from its own tensors, so batches give the maps one query gives
            use_candidates(unit_con, part[start : start + PAIRS_PER_BATCH])
            sims.update(similarity_matrices(fetch_rows(unit_con, "compute_layer_similarity")))
            if any_moe:
                mlps.update(models_from_rows(fetch_rows(unit_con, "list_mlp_tensors")))
    stamp = MapStamp(source, datetime.now(UTC), __version__)
    structures, out = structure.map_pairs(keys, sims, mlps, depths, stamp, known)
    return structures, map_table(out)


def map_table(rows: Sequence[MapRow]) -> pa.Table:
    """`layer_maps` rows as its Arrow table, column by column in the schema's order."""
    columns = [pa.array([getattr(r, f.name) for r in rows], f.type) for f in LAYER_MAPS]
    return pa.Table.from_arrays(columns, schema=LAYER_MAPS)


def known_partial_maps(con: duckdb.DuckDBPyConnection, models: Iterable[ModelKey]) -> list[PartialPair]:
    """Stored partial maps (newest write per pair) involving any of ``models``: where a stack's other parent shows.

    Raises:
        QueryError: the layer_maps view cannot be read.
    """
    wanted = set(models)
    try:
        got = con.sql(
            "WITH m AS (SELECT *, max(written_at) OVER (PARTITION BY a_repo_id, a_revision, b_repo_id, b_revision)"
            " AS newest FROM layer_maps WHERE kind = 'layer') "
            "SELECT a_repo_id, a_revision, b_repo_id, b_revision, a_layer, b_layer, r FROM m "
            "WHERE written_at = newest AND matched AND structure = $partial ORDER BY ALL",
            params={"partial": PARTIAL},
        ).fetchall()
    except duckdb.Error as exc:
        raise QueryError("layer_maps", None, None, f"stored maps unreadable: {exc}") from None
    pairs: dict[tuple[ModelKey, ModelKey], list[tuple[int, int, float]]] = {}
    for ar, av, br, bv, la, lb, r in got:
        if (ar, av) in wanted or (br, bv) in wanted:
            pairs.setdefault(((ar, av), (br, bv)), []).append((int(la), int(lb), float(r)))
    return [(a, b, entries) for (a, b), entries in pairs.items()]


def compare_file(key: PairKey) -> str:
    """The layer_maps file `hubscan compare` replaces for one pair."""
    return f"layer_maps/compare-{hashlib.sha1('|'.join(key).encode()).hexdigest()[:16]}.parquet"
