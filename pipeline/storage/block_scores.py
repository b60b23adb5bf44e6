"""Score the candidate pairs of a store in this process: candidates → signals (SQL) → score_pairs.

The pieces `hubscan flag` runs (jobs/flag.py, which adds Ray batches and the write) and `hubscan
compare` composes to score one pair exactly as flag would: with the other candidates of its
comparability block, so its backgrounds and q-value are the block's.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any

import duckdb

from pipeline.comparison.layout import block_key
from pipeline.comparison.scoring import DEFAULT_Q, ModelInfo, PairInputs, score_pairs
from pipeline.keys import ModelKey, PairKey
from pipeline.storage.duckdb import connect, fetch_rows, use_candidates
from pipeline.storage.parquet import Store

# Blocks up to this many models are scored pair by pair; larger ones through LSH buckets. 1000
# synthetic models in one block (500k pairs) took 179 s and 5.7 GB exhaustively, 3.8 s through LSH
# with the same flags; 300 (45k pairs) take ~15 s (bench/detection.py).
EXHAUSTIVE_MAX = 300
# DuckDB otherwise grows its buffers towards 80 % of RAM although it can spill: 30k synthetic pairs
# peaked at 4.2 GB unbounded and 2.2 GB under this limit, in the same 14 s.
DUCKDB_MEMORY_LIMIT = "2GB"
# Pairs scored per batch of SQL: the sketch query holds ~40 rows per pair in materialized CTEs,
# which do not spill; 255k pairs at once ran out of 2 GB, batches of 40k stay under it.
PAIRS_PER_BATCH = 40_000
# The signal files run per batch of hidden-size candidates, in this order (a later file's values win).
SIGNAL_QUERIES = (
    "compute_sketch_scores",
    "compute_dim_scores",
    "compute_token_scores",
    "compute_sorted_scores",
)


def scoring_connection(store: Store, blocks: Collection[str] | None = None) -> duckdb.DuckDBPyConnection:
    """A connection over the store's views (compacted files of ``blocks`` only, when given) with the
    memory limit pair scoring runs under."""
    con = connect(store, blocks=blocks)
    con.execute(f"SET memory_limit = '{DUCKDB_MEMORY_LIMIT}'")
    # The compute_*.sql files are written candidates-first, the order that scales. DuckDB's join
    # ordering misestimates list-heavy CTEs and joined model x model tensors before the candidates:
    # 70 s instead of 1.6 s for 30k pairs of 1000 synthetic models.
    con.execute("SET disabled_optimizers = 'join_order'")
    return con


def block_candidates(
    con: duckdb.DuckDBPyConnection,
    store: Store,
    exhaustive_max: int = EXHAUSTIVE_MAX,
    hidden: int | None = None,
    layout: str | None = None,
    extra_pairs: Sequence[PairKey] = (),
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Candidate pairs by hidden size and by unknown layout (optionally one block), plus given pairs."""
    cand = fetch_rows(con, "compute_candidate_pairs", {"exhaustive_max": exhaustive_max})
    by_layout = fetch_rows(con, "compute_layout_candidate_pairs", {"exhaustive_max": exhaustive_max})
    if hidden is not None or layout is not None:
        cand = [c for c in cand if hidden is not None and c["hidden"] == hidden]
        by_layout = [c for c in by_layout if layout is not None and c["layout"] == layout]
    have = {(c["a_repo_id"], c["a_revision"], c["b_repo_id"], c["b_revision"]) for c in cand + by_layout}
    hidden_of = hidden_sizes(store) if extra_pairs and hidden is None else {}
    extra = [
        {"a_repo_id": k[0], "a_revision": k[1], "b_repo_id": k[2], "b_revision": k[3],
         "hidden": hidden if hidden is not None else hidden_of.get((k[0], k[1])), "layout": layout,
         "via": "requested"}
        for k in extra_pairs if k not in have
    ]  # fmt: skip
    return cand + [c for c in extra if c["layout"] is None], by_layout + [
        c for c in extra if c["layout"] is not None
    ]


def add_signals(
    con: duckdb.DuckDBPyConnection,
    inputs: PairInputs,
    cand: list[dict[str, Any]],
    by_layout: list[dict[str, Any]],
) -> None:
    """Run the signal SQL over these candidates (hidden-size and layout blocks) in batches, into ``inputs``."""
    for start in range(0, len(cand), PAIRS_PER_BATCH):
        use_candidates(con, cand[start : start + PAIRS_PER_BATCH])
        for name in SIGNAL_QUERIES:
            inputs.add_signal_rows(fetch_rows(con, name))
        batch: dict[ModelKey, dict[str, list[float]]] = {}
        for r in fetch_rows(con, "list_std_profiles"):
            batch.setdefault((r["repo_id"], r["revision"]), {})[r["role"]] = list(r["stds"])
        for key, roles in batch.items():
            inputs.profiles.setdefault(key, roles)
    # unknown architectures: the roles-free signals, in the sketch and sorted columns
    for start in range(0, len(by_layout), PAIRS_PER_BATCH):
        use_candidates(con, by_layout[start : start + PAIRS_PER_BATCH])
        inputs.add_signal_rows(fetch_rows(con, "compute_layout_scores"))


def tests_of(candidates: Iterable[dict[str, Any]]) -> int:
    """Every comparable pair of the candidates' blocks: the false discovery rate's number of tests
    (pairs LSH did not propose count as unflagged)."""
    block_pairs: dict[Any, int] = {}
    for c in candidates:
        block = block_key(c)
        block_pairs[block] = max(block_pairs.get(block, 0), c.get("block_pairs") or 0)
    return sum(block_pairs.values())


def score_block(
    con: duckdb.DuckDBPyConnection,
    store: Store,
    q_level: float = DEFAULT_Q,
    hidden: int | None = None,
    layout: str | None = None,
    extra_pairs: Sequence[PairKey] = (),
    exhaustive_max: int = EXHAUSTIVE_MAX,
) -> list[dict[str, Any]]:
    """Scored rows of one block's candidates (a hidden size or an unknown architecture's layout) and the
    given pairs, in this process."""
    cand, by_layout = block_candidates(con, store, exhaustive_max, hidden, layout, extra_pairs)
    inputs = PairInputs(candidates=cand + by_layout, models=model_infos(store))
    add_signals(con, inputs, cand, by_layout)
    tests = tests_of(inputs.candidates)
    del cand, by_layout  # inputs holds them; score_pairs frees each as it becomes a row
    return score_pairs(inputs, q_level=q_level, tests=tests)


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


def hidden_sizes(store: Store) -> dict[ModelKey, int | None]:
    """The hidden size of every committed model (None where unknown)."""
    table = store.dataset("models").to_table(columns=["repo_id", "revision", "hidden"])
    return {(r["repo_id"], r["revision"]): r["hidden"] for r in table.to_pylist()}
