"""Whole models' layer-matrix sketches, fetched many models per query, each batch sized by its values.

Two passes of `hubscan flag` need every sampled layer matrix of several models side by side: the
low-rank delta of a flagged pair, and the merge fit of a model against its flagged relatives. Each
fetch is one scan of the tensors it reads (a home, or a block's files), so its cost is the scan, not the
models it asks for: fetching 16 pairs at a time cost a 2,000-model Hub-shaped block 556 scans and 38 s.
Here groups of models (a pair, a model and its relatives) are packed into one fetch until the models'
sketch values reach a budget, learnt from the fetches so far, since a model's size is only known once
read (a Llama-7B's 224 layer sketches are 459k values, a tiny test model's a few thousand).

The values stay float32 arrays straight from Arrow: as Python floats they took ~8x the memory.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from hubscan.pipeline.comparison.candidates import CandidatePair
from hubscan.pipeline.errors import QueryError, one_line
from hubscan.pipeline.keys import ModelKey
from hubscan.pipeline.storage.duckdb import load_sql, run_sql, use_candidates
from hubscan.pipeline.storage.homes import append_by

# float32 sketch values per fetch: ~128 MB as arrays (and once more as the Arrow table they come from).
VALUES_PER_FETCH = 32_000_000
# Models of the first fetch, before any model's size is known: 16 Llama-7Bs are ~30 MB of values.
FIRST_MODELS = 16
# An upper bound on models per fetch whatever their size: the candidates list itself stays small.
MAX_MODELS = 4_096
# Chunk files per run's budget of models (fetch_groups): a run reads its own few chunks plus, for each
# relative an earlier run named, that relative's chunk.
CHUNK_SHARE = 4
# Rows per Arrow batch of the one scan that writes every chunk file (write_chunks), and the column that
# tags each row with its chunk.
CHUNK_BATCH_ROWS = 50_000
CHUNK_COLUMN = "chunk"

# role, layer, expert (-1: none), shape, transposed
Slot = tuple[str, int, int, tuple[int, ...], bool]
G = TypeVar("G", bound=Hashable)


@dataclass(frozen=True)
class Sketch:
    """One layer matrix's sampled values and the rows they were read from (empty when not recorded)."""

    row_idx: tuple[int, ...]
    values: np.ndarray


Sketches = dict[ModelKey, dict[Slot, Sketch]]


@dataclass
class Budget:
    """Models per fetch, learnt from the largest model read so far."""

    models: int = FIRST_MODELS

    def learn(self, sketches: Sketches) -> None:
        largest = max((sum(s.values.size for s in m.values()) for m in sketches.values()), default=0)
        if largest:
            self.models = max(2, min(MAX_MODELS, VALUES_PER_FETCH // largest))


@dataclass(frozen=True)
class Group(Generic[G]):
    """Models read together under one name (a pair's key, a merge candidate)."""

    name: G
    models: frozenset[ModelKey]


def fetch(con: duckdb.DuckDBPyConnection, models: Iterable[ModelKey]) -> Sketches:
    """The layer sketches of the given models (list_layer_sketches.sql over this connection's tensors).

    Raises:
        QueryError: the shipped query failed.
    """
    # each model as a pair with itself: the query lists the models of the candidates
    pairs = [CandidatePair.of((*m, *m), None, "sketches") for m in sorted(set(models))]
    if not pairs:
        return {}
    use_candidates(con, pairs)
    rel = run_sql(con, load_sql("list_layer_sketches"))
    if rel is None:
        raise QueryError(None, None, "list_layer_sketches.sql", "returned no result set")
    try:
        table = rel.to_arrow_table()
    except duckdb.Error as exc:
        raise QueryError(None, None, "list_layer_sketches.sql", one_line(exc)) from None
    return by_model(table)


def by_model(table: pa.Table) -> Sketches:
    """{model: {slot: sketch}} from list_layer_sketches.sql's rows, the values as float32 array views."""
    out: Sketches = {}
    if table.num_rows == 0:
        return out
    sketch = table["sketch"].combine_chunks()
    values = sketch.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    offsets = sketch.offsets.to_numpy()
    offsets = offsets - offsets[0]
    # column by column: a dict per row (to_pylist) was most of the time at 100k models
    names = ("repo_id", "revision", "role", "layer", "expert", "shape", "transposed", "row_idx")
    columns = [table[c].to_pylist() for c in names]
    slots: dict[tuple[object, ...], Slot] = {}  # one tuple per distinct slot, shared by every model
    for i, (repo, revision, role, layer, expert, shape, transposed, row_idx) in enumerate(
        zip(*columns, strict=True)
    ):
        raw = (role, layer, expert, *shape, transposed)
        slot = slots.get(raw)
        if slot is None:
            slot = slots[raw] = (role, int(layer), int(expert), tuple(shape), bool(transposed))
        out.setdefault((repo, revision), {})[slot] = Sketch(
            tuple(row_idx or ()), values[offsets[i] : offsets[i + 1]]
        )
    return out


def run_end(groups: Sequence[Group[G]], start: int, limit: int) -> int:
    """Where the run of groups from ``start`` ends: their models together stay within ``limit`` (a group
    larger than the limit runs alone)."""
    models: set[ModelKey] = set(groups[start].models)
    end = start + 1
    while end < len(groups):
        new = groups[end].models - models
        if len(models) + len(new) > limit:
            break
        models |= new
        end += 1
    return end


def fetch_groups(
    con: duckdb.DuckDBPyConnection, groups: Sequence[Group[G]], budget: Budget | None = None
) -> Iterator[tuple[Group[G], Sketches]]:
    """Each group with its models' sketches, several groups per fetch (groups sharing models should be
    next to each other: they then share a fetch).

    The first run of groups is fetched on its own and teaches the budget the models' size. When two or
    more runs remain, one scan writes every model the runs name, once, to chunk files in the order the
    runs first name them (`write_chunks`), and each run reads its models' rows from the chunks that hold
    them. A fetch per run would scan the whole connection's tensors each time (309 s of the lineage
    pass at 100k Hub-shaped models, a scan per ~4,000 models); a file per run would write a model once
    per run that names it (a family's base is in most runs), which filled the disk at 300k.

    Raises:
        QueryError: the shipped query failed, or the chunk files could not be written.
    """
    if not groups:
        return
    budget = budget or Budget()
    end = run_end(groups, 0, budget.models)
    first = fetch(con, {m for g in groups[:end] for m in g.models})
    budget.learn(first)
    yield from _split(groups[:end], first)
    del first
    runs = plan_runs(groups, end, budget.models)
    if len(runs) == 1:
        start, stop = runs[0]
        yield from _split(groups[start:stop], fetch(con, {m for g in groups[start:stop] for m in g.models}))
        return
    if not runs:
        return
    run_models = [{m for g in groups[start:stop] for m in g.models} for start, stop in runs]
    chunk_of = chunks(run_models, budget.models)
    folder = Path(tempfile.mkdtemp(prefix="hubscan-sketches-"))
    try:
        write_chunks(con, chunk_of, folder)
        for (start, stop), models in zip(runs, run_models, strict=True):
            yield from _split(groups[start:stop], read_chunks(folder, models, chunk_of))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def chunks(runs: Sequence[set[ModelKey]], budget_models: int) -> dict[ModelKey, int]:
    """Each model's chunk: models in the order the runs first name them, CHUNK_SHARE of a run's budget
    per chunk, so a run's own models fill a few chunks and a relative named earlier costs one more."""
    size = max(1, budget_models // CHUNK_SHARE)
    chunk_of: dict[ModelKey, int] = {}
    for members in runs:
        for m in sorted(members - chunk_of.keys()):
            chunk_of[m] = len(chunk_of) // size
    return chunk_of


def read_chunks(folder: Path, models: set[ModelKey], chunk_of: dict[ModelKey, int]) -> Sketches:
    """The sketches of ``models`` from the chunk files that hold them (only their rows are kept)."""
    paths = [folder / _chunk_file(c) for c in sorted({chunk_of[m] for m in models})]
    paths = [p for p in paths if p.is_file()]
    if not paths:
        return {}
    repos = pa.array(sorted({m[0] for m in models}), pa.string())
    table = ds.dataset([str(p) for p in paths], format="parquet").to_table(
        filter=pc.field("repo_id").isin(repos)
    )
    found = by_model(table)
    return {m: found[m] for m in models if m in found}


def plan_runs(groups: Sequence[Group[G]], start: int, limit: int) -> list[tuple[int, int]]:
    """The (start, end) of each run of groups from ``start`` on, each within ``limit`` models."""
    runs = []
    while start < len(groups):
        end = run_end(groups, start, limit)
        runs.append((start, end))
        start = end
    return runs


def _split(groups: Sequence[Group[G]], sketches: Sketches) -> Iterator[tuple[Group[G], Sketches]]:
    for group in groups:
        yield group, {m: sketches.get(m, {}) for m in group.models}


def write_chunks(con: duckdb.DuckDBPyConnection, chunk_of: dict[ModelKey, int], folder: Path) -> None:
    """Every model's sketches (list_layer_sketches.sql) in one scan, to its chunk's file.

    Raises:
        QueryError: the query failed, or a file could not be written.
    """
    use_candidates(con, [CandidatePair.of((*m, *m), None, "sketches") for m in sorted(chunk_of)])
    writers: dict[int, pq.ParquetWriter] = {}
    try:
        rel = run_sql(con, load_sql("list_layer_sketches"))
        if rel is None:
            raise QueryError(None, None, "list_layer_sketches.sql", "returned no result set")
        for batch in rel.to_arrow_reader(CHUNK_BATCH_ROWS):
            keys = zip(batch["repo_id"].to_pylist(), batch["revision"].to_pylist(), strict=True)
            tagged = batch.append_column(CHUNK_COLUMN, pa.array([chunk_of[k] for k in keys], pa.int32()))
            # uncompressed: sampled floats do not compress, and snappy was most of the writing time
            append_by(tagged, CHUNK_COLUMN, writers, lambda c: folder / _chunk_file(c), compression="none")
    except (duckdb.Error, OSError, pa.ArrowException) as exc:
        raise QueryError(
            None, None, "list_layer_sketches.sql", f"writing sketch chunks: {one_line(exc)}"
        ) from None
    finally:
        for writer in writers.values():
            writer.close()


def _chunk_file(chunk: int) -> str:
    return f"{CHUNK_COLUMN}-{chunk}.parquet"
