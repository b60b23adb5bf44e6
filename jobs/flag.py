"""`hubscan flag`: score candidate pairs in DuckDB, calibrate and judge them, and write the `pairs` table.

candidates (compute_*candidate_pairs.sql) -> signals (compute_*_scores.sql, list_std_profiles.sql) ->
calibration (pipeline.comparison.scoring) -> layer/expert maps of the pairs that need one
(compute_layer_similarity.sql, pipeline.comparison.structure) -> the verdict, decided once
(pipeline.comparison.judge) -> one atomic write of layer_maps and of pairs/pairs.parquet.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from jobs import layer_maps, licence_edges
from pipeline import __version__
from pipeline.comparison.judge import judge_pairs
from pipeline.comparison.layout import block_key
from pipeline.comparison.records import PAIRS_SCHEMA, ScoredPair, pairs_table
from pipeline.comparison.scoring import DEFAULT_Q, ModelInfo, PairInputs, pair_key, score_pairs
from pipeline.comparison.signals import SIGNALS
from pipeline.comparison.structure import PartialPair, derived_sides
from pipeline.config import Settings
from pipeline.keys import ModelKey, PairKey
from pipeline.storage.duckdb import candidate_pairs, connect, fetch_rows, use_candidates
from pipeline.storage.parquet import Store

# Blocks up to this many models are scored pair by pair; larger ones through LSH buckets. 1000
# synthetic models in one block (500k pairs) took 179 s and 5.7 GB exhaustively, 3.8 s through LSH
# with the same flags; 300 (45k pairs) take ~15 s (bench/detection.py).
EXHAUSTIVE_MAX = 300
PAIRS_FILE = "pairs/pairs.parquet"
# DuckDB otherwise grows its buffers towards 80 % of RAM although it can spill: 30k synthetic pairs
# peaked at 4.2 GB unbounded and 2.2 GB under this limit, in the same 14 s.
DUCKDB_MEMORY_LIMIT = "2GB"
# Pairs scored per batch of SQL: the sketch query holds ~40 rows per pair in materialized CTEs,
# which do not spill; 255k pairs at once ran out of 2 GB, batches of 40k stay under it.
PAIRS_PER_BATCH = 40_000
# Where `hubscan flag` runs the signal SQL: in this process, as Ray tasks per block batch, or chosen.
RUNNERS = ("auto", "ray", "local")
# "auto" goes to local Ray from this many candidate pairs. Ray's start and stop cost ~4 s here, and each
# task opens its own views; below this the one process finishes first (bench/flag_ray.py).
RAY_MIN_PAIRS = 20_000
# The printout's first columns, before one per signal of the signal table.
FLAGGED_LEAD = ("a_repo_id", "b_repo_id", "verdict", "structure", "declared", "score", "q")


@dataclass
class FlagResult:
    """What one flag run scored and wrote."""

    flag_id: str
    pairs: pa.Table
    candidates: int = 0
    flagged: int = 0
    undeclared: int = 0
    rows: list[ScoredPair] = field(default_factory=list)

    def flagged_table(self) -> pa.Table:
        """The flagged pairs, most significant first: verdict and score, then every signal's value."""
        cols = [*FLAGGED_LEAD, *SIGNALS, "license_finding"]
        rows = sorted((r for r in self.rows if r.flagged), key=lambda r: (r.declared, -(r.score or 0.0)))
        schema = pa.schema([PAIRS_SCHEMA.field(c) for c in cols])
        return pa.Table.from_arrays(
            [pa.array([r[c] for r in rows], f.type) for c, f in zip(cols, schema, strict=True)], schema=schema
        )


def run(
    settings: Settings,
    q_level: float = DEFAULT_Q,
    exhaustive_max: int = EXHAUSTIVE_MAX,
    known_unrelated: Iterable[frozenset[str]] = (),
    runner: str = "auto",
) -> FlagResult:
    """Score every candidate pair of the store and replace its `pairs` table.

    Raises:
        QueryError: a shipped query failed (e.g. the folder is not a store).
    """
    store = Store(settings.store).init()
    con = flag_connection(store)
    pairs, maps = score_store(
        con, store, q_level, exhaustive_max, known_unrelated=known_unrelated, runner=runner, settings=settings
    )
    store.write(layer_maps.FLAG_FILE, maps)
    flag_id = f"flag-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
    stamp = {"flag_id": flag_id, "flagged_at": datetime.now(timezone.utc), "hubscan_version": __version__}
    table = pairs_table(pairs, stamp)
    store.write(PAIRS_FILE, table)
    return FlagResult(
        flag_id=flag_id,
        pairs=table,
        candidates=len(pairs),
        flagged=sum(bool(r.flagged) for r in pairs),
        undeclared=sum(bool(r.flagged and not r.declared) for r in pairs),
        rows=pairs,
    )


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


def score_store(
    con: duckdb.DuckDBPyConnection,
    store: Store,
    q_level: float = DEFAULT_Q,
    exhaustive_max: int = EXHAUSTIVE_MAX,
    hidden: int | None = None,
    extra_pairs: Sequence[PairKey] = (),
    known_unrelated: Iterable[frozenset[str]] = (),
    layout: str | None = None,
    runner: str = "local",
    settings: Settings | None = None,
    source: str = "flag",
    map_only: Collection[PairKey] | None = None,
    known_maps: Iterable[PartialPair] = (),
) -> tuple[list[ScoredPair], pa.Table]:
    """Candidates (optionally one block: a hidden size or an unknown architecture's layout, plus given
    pairs), their signals, calibration, the maps of the pairs that need one, and the judged pairs.

    ``runner`` is where the signal SQL runs: "local" in this process, "ray" as one Ray task per block
    batch (jobs/flag_blocks.py), "auto" on Ray when `ray_pays` says so; Ray needs ``settings``.
    ``map_only``: the pairs mapped, whatever their flag (compare's pair), instead of the flagged pairs
    that need a map; ``known_maps``: stored partial maps that may hold a stack's other parent.
    Returns the judged pairs and their layer_maps rows (stamped with ``source``).
    """
    cand, by_layout = candidates(con, store, exhaustive_max, hidden, layout, extra_pairs)
    inputs = PairInputs(candidates=cand + by_layout, models=model_infos(store))
    if (
        settings is None
        or runner == "local"
        or (runner == "auto" and not ray_pays(settings, len(inputs.candidates)))
    ):
        add_signals(con, inputs, cand, by_layout)
    else:
        from jobs import flag_blocks  # imports Ray, which an in-process run never needs

        flag_blocks.add_signals_on_ray(settings, store, inputs, cand, by_layout, _hidden_sizes(store))
    tests = comparable_pairs(inputs.candidates)
    del cand, by_layout  # inputs holds them; score_pairs frees each as it becomes a row
    rows = score_pairs(inputs, q_level=q_level, known_unrelated=known_unrelated, tests=tests)
    # structural derivatives: layer / expert maps of the flagged pairs whose structure differs
    moe = layer_maps.moe_models(store)
    todo = [
        r for r in rows if (layer_maps.needs_map(r, moe) if map_only is None else pair_key(r) in map_only)
    ]
    structures, maps = layer_maps.map_pairs(con, todo, moe, source, known_maps)
    del todo
    derived = derived_sides(
        maps.select(["a_repo_id", "a_revision", "b_repo_id", "b_revision", "derived"]).to_pylist()
    )
    return judge_pairs(rows, structures, derived, licence_edges.model_licences(store)), maps


def candidates(
    con: duckdb.DuckDBPyConnection,
    store: Store,
    exhaustive_max: int,
    hidden: int | None = None,
    layout: str | None = None,
    extra_pairs: Sequence[PairKey] = (),
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Candidate pairs blocked by hidden size and, for unknown architectures, by layout (optionally one
    block only), plus the given pairs.

    Raises:
        QueryError: a shipped query failed (e.g. the folder is not a store).
    """
    cand = candidate_pairs(con, {"exhaustive_max": exhaustive_max})
    by_layout = fetch_rows(con, "compute_layout_candidate_pairs", {"exhaustive_max": exhaustive_max})
    if hidden is not None or layout is not None:
        cand = [c for c in cand if hidden is not None and c["hidden"] == hidden]
        by_layout = [c for c in by_layout if layout is not None and c["layout"] == layout]
    have = {pair_key(c) for c in cand + by_layout}
    hidden_of = _hidden_sizes(store) if extra_pairs and hidden is None else {}
    extra = [
        {"a_repo_id": k[0], "a_revision": k[1], "b_repo_id": k[2], "b_revision": k[3],
         "hidden": hidden if hidden is not None else hidden_of.get((k[0], k[1])), "layout": layout,
         "via": "requested"}
        for k in extra_pairs if k not in have
    ]  # fmt: skip
    cand += [c for c in extra if c["layout"] is None]
    by_layout += [c for c in extra if c["layout"] is not None]
    return cand, by_layout


def comparable_pairs(cand: Iterable[Mapping[str, Any]]) -> int:
    """Every comparable pair of the candidates' blocks: the false discovery rate is controlled over all of
    them (pairs LSH did not propose count as unflagged)."""
    block_pairs: dict[int | str, int] = {}
    for c in cand:
        block = block_key(c)
        block_pairs[block] = max(block_pairs.get(block, 0), c.get("block_pairs") or 0)
    return sum(block_pairs.values())


def add_signals(
    con: duckdb.DuckDBPyConnection,
    inputs: PairInputs,
    cand: list[dict[str, Any]],
    by_layout: list[dict[str, Any]],
) -> None:
    """Run the signal SQL over these candidates (hidden-size and layout blocks) in batches, into ``inputs``."""
    for start in range(0, len(cand), PAIRS_PER_BATCH):
        use_candidates(con, cand[start : start + PAIRS_PER_BATCH])
        for name in (
            "compute_sketch_scores",
            "compute_dim_scores",
            "compute_token_scores",
            "compute_sorted_scores",
        ):
            inputs.add_signal_rows(fetch_rows(con, name))
        for key, roles in _profiles(fetch_rows(con, "list_std_profiles")).items():
            inputs.profiles.setdefault(key, roles)
    # unknown architectures: the roles-free signals, in the sketch and sorted columns
    for start in range(0, len(by_layout), PAIRS_PER_BATCH):
        use_candidates(con, by_layout[start : start + PAIRS_PER_BATCH])
        inputs.add_signal_rows(fetch_rows(con, "compute_layout_scores"))


def ray_pays(settings: Settings, pairs: int) -> bool:
    """Whether "auto" sends the signal SQL to Ray tasks: always on a cluster (RAY_ADDRESS, as the
    sweep), on this machine only from RAY_MIN_PAIRS candidates, below which Ray's start-up dominates."""
    return settings.ray_address is not None or pairs >= RAY_MIN_PAIRS


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


def _hidden_sizes(store: Store) -> dict[ModelKey, int | None]:
    table = store.dataset("models").to_table(columns=["repo_id", "revision", "hidden"])
    return {(r["repo_id"], r["revision"]): r["hidden"] for r in table.to_pylist()}


def _profiles(rows: list[dict[str, Any]]) -> dict[ModelKey, dict[str, list[float]]]:
    out: dict[ModelKey, dict[str, list[float]]] = {}
    for r in rows:
        out.setdefault((r["repo_id"], r["revision"]), {})[r["role"]] = list(r["stds"])
    return out


def read_known_unrelated(path: Path) -> list[frozenset[str]]:
    """Pairs known to be unrelated, one 'repo_a repo_b' per line (# comments allowed)."""
    out = []
    for line in path.read_text().splitlines():
        parts = line.split("#", 1)[0].split()
        if len(parts) == 2:
            out.append(frozenset(parts))
    return out
