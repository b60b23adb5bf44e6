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
from hubscan.pipeline.storage.duckdb import load_sql, run_sql, use_candidates

# float32 sketch values per fetch: ~128 MB as arrays (and once more as the Arrow table they come from).
VALUES_PER_FETCH = 32_000_000
# Models of the first fetch, before any model's size is known: 16 Llama-7Bs are ~30 MB of values.
FIRST_MODELS = 16
# An upper bound on models per fetch whatever their size: the candidates list itself stays small.
MAX_MODELS = 4_096

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
    meta = table.select(["repo_id", "revision", "role", "layer", "expert", "shape", "transposed", "row_idx"])
    for i, r in enumerate(meta.to_pylist()):
        slot = (r["role"], int(r["layer"]), int(r["expert"]), tuple(r["shape"]), bool(r["transposed"]))
        kept = Sketch(tuple(r["row_idx"] or ()), values[offsets[i] : offsets[i + 1]])
        out.setdefault((r["repo_id"], r["revision"]), {})[slot] = kept
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

    Raises:
        QueryError: the shipped query failed.
    """
    budget = budget or Budget()
    start = 0
    while start < len(groups):
        end = run_end(groups, start, budget.models)
        sketches = fetch(con, {m for g in groups[start:end] for m in g.models})
        budget.learn(sketches)
        for group in groups[start:end]:
            yield group, {m: sketches.get(m, {}) for m in group.models}
        start = end
        del sketches
