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

from collections.abc import Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import duckdb
import numpy as np
import pyarrow as pa

from hubscan.pipeline.comparison.candidates import CandidatePair
from hubscan.pipeline.errors import QueryError, one_line
from hubscan.pipeline.keys import ModelKey
from hubscan.pipeline.storage.duckdb import fetch_table, load_sql, run_sql, use_candidates
from hubscan.pipeline.storage.sketch_spill import Sketch, SketchSpill, Slot, slot_of

# float32 sketch values per fetch: ~128 MB as arrays (and once more as the Arrow table they come from).
VALUES_PER_FETCH = 32_000_000
# Models of the first fetch, before any model's size is known: 16 Llama-7Bs are ~30 MB of values.
FIRST_MODELS = 16
# An upper bound on models per fetch whatever their size: the candidates list itself stays small.
MAX_MODELS = 4_096
# Rows per Arrow batch of the one scan that writes the spill of every later run (spill_sketches).
SPILL_BATCH_ROWS = 50_000

G = TypeVar("G", bound=Hashable)
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
    if not _name_models(con, models):
        return {}
    return by_model(fetch_table(con, "list_layer_sketches"))


def _name_models(con: duckdb.DuckDBPyConnection, models: Iterable[ModelKey]) -> int:
    """Point the connection's candidates at these models, each as a pair with itself (list_layer_sketches.sql
    lists the models of the candidates); how many there are."""
    pairs = [CandidatePair.of((*m, *m), None, "sketches") for m in sorted(set(models))]
    if pairs:
        use_candidates(con, pairs)
    return len(pairs)


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
            slot = slots[raw] = slot_of(role, layer, expert, shape, transposed)
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
    more runs remain, one scan writes every model the runs name, once, to a spill (storage/sketch_spill.py),
    and each run reads from it the models the run before did not hold. A fetch per run would scan the
    whole connection's tensors each time (309 s of the lineage pass at 100k Hub-shaped models, a scan
    per ~4,000 models).

    Raises:
        QueryError: the shipped query failed, or the spill could not be written or read.
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
    spill = spill_sketches(con, set().union(*run_models))
    try:
        held: Sketches = {}
        for (start, stop), models in zip(runs, run_models, strict=True):
            # consecutive runs share relatives (a base, a hub): those are kept, not read again
            sketches = {m: held[m] for m in models if m in held}
            sketches.update(spill.read(models - sketches.keys()))
            held = sketches
            yield from _split(groups[start:stop], sketches)
    finally:
        spill.close()


def spill_sketches(con: duckdb.DuckDBPyConnection, models: set[ModelKey]) -> SketchSpill:
    """Every given model's sketches (list_layer_sketches.sql) in one scan, to a spill.

    Raises:
        QueryError: the query failed, or the spill could not be written.
    """
    _name_models(con, models)
    rel = run_sql(con, load_sql("list_layer_sketches"))
    if rel is None:
        raise QueryError(None, None, "list_layer_sketches.sql", "returned no result set")
    try:
        reader = rel.to_arrow_reader(SPILL_BATCH_ROWS)
    except duckdb.Error as exc:
        raise QueryError(None, None, "list_layer_sketches.sql", one_line(exc)) from None
    return SketchSpill.write(reader, models)


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
