"""`hubscan flag` past one machine: the signal SQL of each comparability block as Ray tasks.

The driver computes the candidate pairs (compute_*candidate_pairs.sql) and cuts them into batches,
one block per batch and a large block into several; each Ray task opens its own DuckDB over its
block's compacted files plus the loose files, runs the signal SQL on its batch, and returns the
signal rows. The driver then calibrates and controls the false discovery rate over all of them with
`score_pairs`, exactly as the in-process run does, so both write the same pairs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import ray

from jobs.flag import add_signals, flag_connection
from jobs.sweep import ray_init
from pipeline.comparison.layout import block_key
from pipeline.comparison.scoring import PairInputs
from pipeline.config import Settings
from pipeline.errors import HubscanError
from pipeline.keys import ModelKey
from pipeline.storage.parquet import Store
from pipeline.storage.remote import storage_env

# Pairs per task: ~15 s of signal SQL at the ~1.5 ms a pair of bench/flag_ray.py's 10k-model store, long
# enough to hide a task's start and its views, short enough that one large block spreads over nodes.
PAIRS_PER_TASK = 10_000
# One core per task, and DuckDB told so: two tasks each running DuckDB's default thread count on a
# 2-core node would fight over the cores.
TASK_CPUS = 1
# Ray schedules a task only where this much memory is free: DuckDB's own limit (flag.DUCKDB_MEMORY_LIMIT,
# 2 GB) plus the task's signal rows in Python.
TASK_MEMORY_BYTES = 3 * 1024**3


@dataclass(frozen=True)
class Batch:
    """Candidate pairs of one comparability block that one task scores."""

    blocks: frozenset[str]  # compacted block folders its models live in (block-<hidden>)
    by_hidden: list[dict[str, Any]] = field(default_factory=list)
    by_layout: list[dict[str, Any]] = field(default_factory=list)


def add_signals_on_ray(
    settings: Settings,
    store: Store,
    inputs: PairInputs,
    cand: list[dict[str, Any]],
    by_layout: list[dict[str, Any]],
    hidden_of: dict[ModelKey, int | None],
) -> None:
    """Score the signals of every batch as a Ray task (local Ray, or RAY_ADDRESS), into ``inputs``."""
    ray_init(settings)
    env = storage_env()
    task = _signals_task.options(runtime_env=None if store.local or not env else {"env_vars": env})
    refs = [
        task.remote(store.location, batch) for batch in batches(cand, by_layout, hidden_of, PAIRS_PER_TASK)
    ]
    # in submission order, so the rows arrive in the same order whatever finished first
    for part in _results(refs):
        inputs.add_signals_of(part)


def _results(refs: list[ray.ObjectRef]) -> list[PairInputs]:
    """The tasks' rows; a task's HubscanError re-raised as itself, so the CLI prints its one line.

    Raises:
        HubscanError: the first failed task's own error (e.g. QueryError on an unreadable part).
    """
    try:
        return list(ray.get(refs))
    except ray.exceptions.RayTaskError as exc:
        # Ray wraps it in a multi-line RayTaskError carrying the remote traceback; the error is its cause
        if isinstance(exc.cause, HubscanError):
            raise exc.cause from None
        raise


def batches(
    cand: list[dict[str, Any]],
    by_layout: list[dict[str, Any]],
    hidden_of: dict[ModelKey, int | None],
    size: int,
) -> Iterator[Batch]:
    """The candidates cut into per-block batches of at most ``size`` pairs."""
    for rows, layout in ((cand, False), (by_layout, True)):
        by_block: dict[int | str, list[dict[str, Any]]] = {}
        for row in rows:
            by_block.setdefault(block_key(row), []).append(row)
        for members in by_block.values():
            for start in range(0, len(members), size):
                chunk = members[start : start + size]
                blocks = _folders(chunk, hidden_of)
                yield Batch(blocks, by_layout=chunk) if layout else Batch(blocks, by_hidden=chunk)


def _folders(chunk: list[dict[str, Any]], hidden_of: dict[ModelKey, int | None]) -> frozenset[str]:
    """The compacted folders (storage/compact.py names them block-<hidden>) the models of a batch live in."""
    keys = [(r["a_repo_id"], r["a_revision"]) for r in chunk] + [
        (r["b_repo_id"], r["b_revision"]) for r in chunk
    ]
    return frozenset(_folder(hidden_of.get(k)) for k in keys)


def _folder(hidden: int | None) -> str:
    return f"block-{hidden if hidden is not None else 'none'}"


@ray.remote(num_cpus=TASK_CPUS, memory=TASK_MEMORY_BYTES)
def _signals_task(store_uri: str, batch: Batch) -> PairInputs:
    """One batch's signal rows, from a DuckDB over its block's files only."""
    con = flag_connection(Store(store_uri), blocks=batch.blocks)
    con.execute(f"SET threads = {TASK_CPUS}")
    out = PairInputs(candidates=[])
    add_signals(con, out, batch.by_hidden, batch.by_layout)
    con.close()
    return out
