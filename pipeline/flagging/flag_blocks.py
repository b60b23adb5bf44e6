"""`hubscan flag` past one machine: the signal SQL of each unit of candidate pairs as Ray tasks.

The driver computes the candidate pairs (compute_*candidate_pairs.sql), writes their homes
(pipeline/storage/homes.py) and cuts each unit into batches; each Ray task opens its own DuckDB whose
`tensors` are its unit's home only, runs the signal SQL on its batch, and returns its pairs' working rows. An
object store gets no homes: its batches are cut per comparability block and read that block's compacted
files plus the loose files. The driver calibrates and controls the false discovery rate over every
batch exactly as the in-process run does (pipeline/flagging/flag_rows.py), so both write the same pairs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import ray

from hubscan.pipeline.comparison.candidates import CandidatePair
from hubscan.pipeline.comparison.scoring import BatchSignals
from hubscan.pipeline.config import Settings
from hubscan.pipeline.errors import HubscanError
from hubscan.pipeline.flagging.signal_sql import batch_signals, flag_connection
from hubscan.pipeline.keys import ModelKey
from hubscan.pipeline.runtime.ray_session import ray_init
from hubscan.pipeline.storage.compact import block_folder
from hubscan.pipeline.storage.homes import Homes, read_homes
from hubscan.pipeline.storage.parquet import Store
from hubscan.pipeline.storage.remote import storage_env

# Pairs per task: ~15 s of signal SQL at the ~1.5 ms a pair of bench/flag_ray.py's 10k-model store, long
# enough to hide a task's start and its views, short enough that one large block spreads over nodes.
PAIRS_PER_TASK = 10_000
# One core per task, and DuckDB told so: two tasks each running DuckDB's default thread count on a
# 2-core node would fight over the cores.
TASK_CPUS = 1
# Ray schedules a task only where this much memory is free: DuckDB's own limit (signal_sql.DUCKDB_MEMORY_LIMIT,
# 2 GB) plus the task's working rows in Python.
TASK_MEMORY_BYTES = 3 * 1024**3


@dataclass(frozen=True)
class Batch:
    """Candidate pairs of one comparability block that one task scores."""

    blocks: frozenset[str]  # compacted block folders its models live in (block-<hidden>)
    by_hidden: list[CandidatePair] = field(default_factory=list)
    by_layout: list[CandidatePair] = field(default_factory=list)
    files: tuple[str, ...] = ()  # its unit's homes (storage/homes.py), read instead of the store's tensors
    home_store: str | None = (
        None  # the empty store a homes batch opens instead of the store (Homes.empty_store)
    )


def signals_on_ray(
    settings: Settings,
    store: Store,
    cand: list[CandidatePair],
    by_layout: list[CandidatePair],
    hidden_of: dict[ModelKey, int | None],
    homes: Homes | None = None,
) -> Iterator[tuple[int, BatchSignals]]:
    """(unit, working rows) of every batch, scored as Ray tasks (local Ray, or RAY_ADDRESS).

    With ``homes`` a batch is a unit's pairs (or a slice of them) and its task reads that unit's homes;
    without, every batch is one unit. Results come in submission order (a unit's batches together),
    each fetched only when the driver takes it.
    """
    ray_init(settings)
    env = storage_env()
    task = _signals_task.options(runtime_env=None if store.local or not env else {"env_vars": env})
    todo = (
        [(0, b) for b in batches(cand, by_layout, hidden_of, PAIRS_PER_TASK)]
        if homes is None
        else list(home_batches(cand, by_layout, hidden_of, PAIRS_PER_TASK, homes))
    )
    refs = [task.remote(store.location, batch) for _, batch in todo]
    for (unit, _), ref in zip(todo, refs, strict=True):
        yield unit, _result(ref)


def _result(ref: ray.ObjectRef) -> BatchSignals:
    """A task's working rows; its HubscanError re-raised as itself, so the CLI prints its one line.

    Raises:
        HubscanError: the task's own error (e.g. QueryError on an unreadable part).
    """
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        # Ray wraps it in a multi-line RayTaskError carrying the remote traceback; the error is its cause
        if isinstance(exc.cause, HubscanError):
            raise exc.cause from None
        raise


def batches(
    cand: list[CandidatePair],
    by_layout: list[CandidatePair],
    hidden_of: dict[ModelKey, int | None],
    size: int,
) -> Iterator[Batch]:
    """The candidates cut into per-block batches of at most ``size`` pairs."""
    for rows, layout in ((cand, False), (by_layout, True)):
        by_block: dict[int | str, list[CandidatePair]] = {}
        for pair in rows:
            by_block.setdefault(pair.block, []).append(pair)
        for members in by_block.values():
            for start in range(0, len(members), size):
                chunk = members[start : start + size]
                blocks = _folders(chunk, hidden_of)
                yield Batch(blocks, by_layout=chunk) if layout else Batch(blocks, by_hidden=chunk)


def home_batches(
    cand: list[CandidatePair],
    by_layout: list[CandidatePair],
    hidden_of: dict[ModelKey, int | None],
    size: int,
    homes: Homes,
) -> Iterator[tuple[int, Batch]]:
    """(unit, batch): the candidates cut unit by unit into batches of at most ``size`` pairs, each naming
    its unit's homes."""
    unit = 0
    for rows, layout in ((cand, False), (by_layout, True)):
        for home_unit in homes.units(rows):
            files = tuple(homes.files(home_unit))
            empty = homes.empty_store.location
            for start in range(0, len(home_unit.pairs), size):
                chunk = home_unit.pairs[start : start + size]
                blocks = _folders(chunk, hidden_of)
                yield (
                    unit,
                    (
                        Batch(blocks, by_layout=chunk, files=files, home_store=empty)
                        if layout
                        else Batch(blocks, by_hidden=chunk, files=files, home_store=empty)
                    ),
                )
            unit += 1


def _folders(chunk: list[CandidatePair], hidden_of: dict[ModelKey, int | None]) -> frozenset[str]:
    """The compacted folders (storage/compact.py names them block-<hidden>) the models of a batch live in."""
    keys = [p.a for p in chunk] + [p.b for p in chunk]
    return frozenset(block_folder(hidden_of.get(k)) for k in keys)


@ray.remote(num_cpus=TASK_CPUS, memory=TASK_MEMORY_BYTES)
def _signals_task(store_uri: str, batch: Batch) -> BatchSignals:
    """One batch's working rows, from a DuckDB over its unit's home (or, with no homes, its block's files)."""
    if batch.home_store is not None:
        con = flag_connection(Store(batch.home_store))
        read_homes(con, batch.files)
    else:
        con = flag_connection(Store(store_uri), blocks=batch.blocks)
    con.execute(f"SET threads = {TASK_CPUS}")
    out = batch_signals(con, batch.by_layout or batch.by_hidden, layout=bool(batch.by_layout))
    con.close()
    return out
