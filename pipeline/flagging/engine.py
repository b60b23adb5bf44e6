"""`hubscan flag`: score candidate pairs in DuckDB, calibrate and judge them, and write the `pairs` table.

candidates (compute_*candidate_pairs.sql) -> homes (pipeline/storage/homes.py: the candidates' tensors
rewritten by family, so each unit of pairs reads its own) -> signals (compute_*_scores.sql,
list_std_profiles.sql) per batch -> calibration in three passes over the batches kept on disk
(pipeline/flagging/flag_rows.py; pipeline.comparison.scoring) -> unit by unit, layer/expert maps of the pairs that
need one (compute_layer_similarity.sql, pipeline.comparison.structure) and the verdict, decided once
(pipeline.comparison.judge) -> one atomic write of layer_maps and of pairs/pairs.parquet.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hubscan.pipeline import __version__
from hubscan.pipeline.comparison.candidates import CandidatePair
from hubscan.pipeline.comparison.judge import judge_pairs
from hubscan.pipeline.comparison.records import ScoredPair, pairs_from_table, pairs_table
from hubscan.pipeline.comparison.scoring import (
    DEFAULT_Q,
    BatchSignals,
    ModelInfo,
    copy_links,
    copy_pairs,
    declared_bases,
    merge_rows,
)
from hubscan.pipeline.comparison.signals import SIGNALS
from hubscan.pipeline.comparison.structure import PartialPair, derived_sides
from hubscan.pipeline.config import Settings
from hubscan.pipeline.flagging import (
    flag_incremental,
    flag_lineage,
    layer_maps,
    licence_edges,
    low_rank_deltas,
)
from hubscan.pipeline.flagging.flag_rows import RowSpill
from hubscan.pipeline.flagging.signal_sql import (
    PAIRS_PER_BATCH,
    batch_signals,
    flag_connection,
    unit_connections,
)
from hubscan.pipeline.keys import ModelKey, PairKey
from hubscan.pipeline.storage.compact import hidden_sizes
from hubscan.pipeline.storage.duckdb import candidate_pairs, drop_candidate_steps, fetch_candidates
from hubscan.pipeline.storage.homes import Homes, pair_homes
from hubscan.pipeline.storage.parquet import Store
from hubscan.pipeline.storage.schema import LAYER_MAPS

# Blocks up to this many models are scored pair by pair; larger ones through LSH buckets. 1000
# synthetic models in one block (500k pairs) took 179 s and 5.7 GB exhaustively, 3.8 s through LSH
# with the same flags; 300 (45k pairs) take ~15 s (bench/detection.py).
EXHAUSTIVE_MAX = 300
PAIRS_FILE = "pairs/pairs.parquet"
# Where `hubscan flag` runs the signal SQL: in this process, as Ray tasks per block batch, or chosen.
RUNNERS = ("auto", "ray", "local")
# The printout's first columns, before one per signal of the signal table.
FLAGGED_LEAD = ("a_repo_id", "b_repo_id", "verdict", "structure", "declared", "score", "q")


@dataclass
class FlagResult:
    """What one flag run scored and wrote."""

    flag_id: str
    pairs: pa.Table
    candidates: int = 0  # pairs this run scored
    flagged: int = 0
    undeclared: int = 0

    @functools.cached_property
    def rows(self) -> list[ScoredPair]:
        """The written pairs as records (built on first use: a hub's run need not hold them all)."""
        return pairs_from_table(self.pairs)

    def flagged_table(self) -> pa.Table:
        """The flagged pairs, most significant first: verdict and score, then every signal's value."""
        cols = [*FLAGGED_LEAD, *SIGNALS, "license_finding"]
        flagged = self.pairs.filter(pc.field("flagged"))
        rank = pc.negate(pc.fill_null(flagged["score"], 0.0))
        order = pc.sort_indices(
            pa.table({"declared": flagged["declared"], "rank": rank}),
            sort_keys=[("declared", "ascending"), ("rank", "ascending")],
        )
        return flagged.take(order).select(cols)


def run(
    settings: Settings,
    q_level: float = DEFAULT_Q,
    exhaustive_max: int = EXHAUSTIVE_MAX,
    known_unrelated: Iterable[frozenset[str]] = (),
    runner: str = "auto",
    incremental: bool = False,
) -> FlagResult:
    """Score every candidate pair of the store and replace its `pairs` table; with ``incremental``, only the
    edges of the models the last run did not place (pipeline/flagging/flag_incremental.py), keeping its other rows.

    Each unit's judged pairs become Arrow columns as they come, so the records of a hub's pairs are
    never held at once.

    Raises:
        QueryError: a shipped query failed (e.g. the folder is not a store).
        StoreError: the store cannot be written, or its marker is not hubscan's.
    """
    store = Store(settings.store).init().writable()
    con = flag_connection(store)
    flag_id = f"flag-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
    stamp = {"flag_id": flag_id, "flagged_at": datetime.now(UTC), "hubscan_version": __version__}
    tables = [pairs_table([], stamp)]
    maps = [LAYER_MAPS.empty_table()]
    previous = _previous(store) if incremental else None
    new = flag_incremental.new_models(store, previous)
    scope = Scope(
        q_level,
        exhaustive_max,
        frozenset(known_unrelated),
        runner,
        settings,
        None if new is None else frozenset(new),
    )
    for records, unit_maps in score_units(con, store, scope):
        tables.append(pairs_table(records, stamp))
        maps.append(unit_maps)
        del records
    table = pa.concat_tables(tables).combine_chunks()
    del tables  # the units' own tables: kept, they doubled the pairs table's memory through the lineage pass
    scored = table.num_rows  # this run's; an incremental run keeps the last run's other rows beside them
    map_table = pa.concat_tables(maps)
    if previous is not None and new is not None:
        stored = model_infos(store).keys()
        earlier = _read(store, layer_maps.FLAG_FILE)
        if earlier is not None:
            map_table = flag_incremental.merged_maps(earlier, table, map_table)
        table = flag_incremental.merged(previous, table, stored).combine_chunks()
    table = flag_lineage.annotate(con, store, table)
    store.write(layer_maps.FLAG_FILE, map_table)
    store.write(PAIRS_FILE, table)
    flagged = pc.fill_null(table["flagged"], False)
    return FlagResult(
        flag_id=flag_id,
        pairs=table,
        candidates=scored,
        flagged=pc.sum(flagged).as_py() or 0,
        undeclared=pc.sum(pc.and_(flagged, pc.invert(pc.fill_null(table["declared"], False)))).as_py() or 0,
    )


def all_units(units: Iterable[tuple[list[ScoredPair], pa.Table]]) -> tuple[list[ScoredPair], pa.Table]:
    """Every unit of `score_units` at once: the judged pairs and their layer_maps rows (``compare``'s block)."""
    records: list[ScoredPair] = []
    maps: list[pa.Table] = [LAYER_MAPS.empty_table()]
    for unit_records, unit_maps in units:
        records += unit_records
        maps.append(unit_maps)
    return records, pa.concat_tables(maps)


@dataclass(frozen=True)
class Focus:
    """A part of the store to score: given pairs, scored whether or not a candidate query proposes them,
    inside one block (a hidden size, or an unknown architecture's layout)."""

    pairs: tuple[PairKey, ...] = ()
    hidden: int | None = None
    layout: str | None = None
    # compare: map the given pairs whatever their flag, with stored partial maps that may hold a
    # stack's other parent; its layer_maps rows are stamped "compare"
    map_pairs: bool = False
    known_maps: tuple[PartialPair, ...] = ()


@dataclass(frozen=True)
class Scope:
    """What one run of the engine scores and how: `flag` (the defaults: every block), `flag --incremental`
    (``only``: the new models' edges and their blocks' background), or `compare` (a Focus)."""

    q_level: float = DEFAULT_Q
    exhaustive_max: int = EXHAUSTIVE_MAX
    known_unrelated: frozenset[frozenset[str]] = frozenset()
    # where the signal SQL runs: "local" in this process, "ray" as one Ray task per unit batch
    # (flag_blocks.py), "auto" on Ray when `ray_pays` says so; Ray needs ``settings``
    runner: str = "local"
    settings: Settings | None = None
    only: frozenset[ModelKey] | None = None
    focus: Focus | None = None


def score_units(
    con: duckdb.DuckDBPyConnection, store: Store, scope: Scope = Scope()
) -> Iterator[tuple[list[ScoredPair], pa.Table]]:
    """Candidates, their signals, calibration, the maps of the pairs that need one, and the judged pairs,
    yielded unit by unit (storage/homes.py) so no process holds every pair's working row.

    Yields each unit's judged pairs and their layer_maps rows.
    """
    focus = scope.focus or Focus()
    only, settings, runner = scope.only, scope.settings, scope.runner
    map_only = set(focus.pairs) if focus.map_pairs else None
    source = "compare" if focus.map_pairs else "flag"
    cand, by_layout = candidates(con, store, scope.exhaustive_max, focus.hidden, focus.layout, focus.pairs)
    if only is not None:
        cand, by_layout = flag_incremental.focus(cand, only), flag_incremental.focus(by_layout, only)
    models = model_infos(store)
    links = copy_links(models)
    # byte-identical copies no candidate query proposed are scored as pairs of their block too
    for extra in copy_pairs(cand + by_layout, links):
        if only is None or flag_incremental.focus([extra], only):  # an incremental run: new models' only
            (cand if extra.layout is None else by_layout).append(extra)
    tests = comparable_pairs(cand + by_layout)
    spill = RowSpill.open(set(scope.known_unrelated))
    try:
        on_ray = settings is not None and (runner == "ray" or (runner == "auto" and ray_pays(settings)))
        on_cluster = on_ray and settings is not None and settings.ray_address is not None
        with pair_homes(con, store, cand + by_layout, shared=on_cluster) as homes:
            for unit, inputs in signal_batches(
                con, store, homes, cand, by_layout, settings if on_ray else None
            ):
                spill.add(unit, merge_rows(inputs, models, links))
            del cand, by_layout
            spill.rank(tests)
            moe, depths = layer_maps.model_structure(store)
            licences = licence_edges.model_licences(store)
            for _, rows in spill.units(scope.q_level, declared_bases(models)):
                # structural derivatives: layer / expert maps of the flagged pairs whose structure differs
                todo = [
                    r.pair for r in rows
                    if (layer_maps.needs_map(r, moe) if map_only is None else r.key in map_only)
                ]  # fmt: skip
                structures, maps = layer_maps.map_pairs(
                    con,
                    todo,
                    moe,
                    depths,
                    source,
                    focus.known_maps,
                    lambda pairs: unit_connections(con, store, homes, pairs),
                )
                del todo
                # merged LoRAs: the low-rank delta of flagged same-depth pairs, read by the verdict
                low_rank_deltas.annotate(con, rows, lambda pairs: unit_connections(con, store, homes, pairs))
                derived = derived_sides(
                    maps.select(["a_repo_id", "a_revision", "b_repo_id", "b_revision", "derived"]).to_pylist()
                )
                yield judge_pairs(rows, structures, derived, licences), maps
    finally:
        spill.close()


def signal_batches(
    con: duckdb.DuckDBPyConnection,
    store: Store,
    homes: Homes | None,
    cand: list[CandidatePair],
    by_layout: list[CandidatePair],
    ray_settings: Settings | None = None,
) -> Iterator[tuple[int, BatchSignals]]:
    """(unit, a batch's working rows with their signals) batch by batch, the batches of a unit together:
    in this process, or as Ray tasks when ``ray_settings`` is given."""
    if ray_settings is not None:
        from hubscan.pipeline.flagging import flag_blocks  # imports Ray, which an in-process run never needs

        yield from flag_blocks.signals_on_ray(
            ray_settings, store, cand, by_layout, hidden_sizes(store), homes
        )
        return
    unit = 0
    for pairs, layout in ((cand, False), (by_layout, True)):
        for part_con, part in unit_connections(con, store, homes, pairs):
            for start in range(0, len(part), PAIRS_PER_BATCH):
                yield unit, batch_signals(part_con, part[start : start + PAIRS_PER_BATCH], layout)
            unit += 1


def candidates(
    con: duckdb.DuckDBPyConnection,
    store: Store,
    exhaustive_max: int,
    hidden: int | None = None,
    layout: str | None = None,
    extra_pairs: Sequence[PairKey] = (),
) -> tuple[list[CandidatePair], list[CandidatePair]]:
    """Candidate pairs blocked by hidden size and, for unknown architectures, by layout (optionally one
    block only), plus the given pairs.

    Raises:
        QueryError: a shipped query failed (e.g. the folder is not a store).
    """
    cand = candidate_pairs(con, {"exhaustive_max": exhaustive_max})
    drop_candidate_steps(con)
    by_layout = fetch_candidates(con, "compute_layout_candidate_pairs", {"exhaustive_max": exhaustive_max})
    if hidden is not None or layout is not None:
        cand = [c for c in cand if hidden is not None and c.hidden == hidden]
        by_layout = [c for c in by_layout if layout is not None and c.layout == layout]
    have = {c.key for c in cand + by_layout}
    hidden_of = hidden_sizes(store) if extra_pairs and hidden is None else {}
    extra = [
        CandidatePair.of(
            k, hidden if hidden is not None else hidden_of.get((k[0], k[1])), "requested", layout
        )
        for k in extra_pairs
        if k not in have
    ]
    cand += [c for c in extra if c.layout is None]
    by_layout += [c for c in extra if c.layout is not None]
    return cand, by_layout


def comparable_pairs(cand: Iterable[CandidatePair]) -> int:
    """Every comparable pair of the candidates' blocks: the false discovery rate is controlled over all of
    them (pairs LSH did not propose count as unflagged)."""
    block_pairs: dict[int | str, int] = {}
    for c in cand:
        block = c.block
        block_pairs[block] = max(block_pairs.get(block, 0), c.block_pairs or 0)
    return sum(block_pairs.values())


def ray_pays(settings: Settings) -> bool:
    """Whether "auto" sends the signal SQL to Ray tasks: on a cluster (RAY_ADDRESS, as the sweep). On one
    machine DuckDB already runs on every core: local Ray took 205 s against 143 s in one process for 100k
    synthetic models on 2 cores (tasks of one thread, their rows shipped back, Ray's start and stop)."""
    return settings.ray_address is not None


def model_infos(store: Store) -> dict[ModelKey, ModelInfo]:
    """dtype, declared bases, copy_of and vocabulary size of every committed model."""
    cols = ["repo_id", "revision", "dtype", "base_models", "copy_of", "vocab"]
    table = store.dataset("models").to_table(columns=cols)
    return {
        (r["repo_id"], r["revision"]): ModelInfo(
            r["dtype"], tuple(r["base_models"] or ()), r["copy_of"], r["vocab"]
        )
        for r in table.to_pylist()
    }


def _previous(store: Store) -> pa.Table | None:
    """The last flag run's pairs table, if there is one."""
    return _read(store, PAIRS_FILE)


def _read(store: Store, relative: str) -> pa.Table | None:
    """One of flag's own files of the store (written by `Store.write`), or None when absent."""
    data = store.read_bytes(relative)
    return None if data is None else pq.read_table(pa.BufferReader(data))
