"""The lineage pass of `hubscan flag`: merges among each model's flagged relatives, and star centres.

Runs once the pairs are judged, on the flagged edges only (a bounded number per model, issue 21):

1. Every model with two or more flagged relatives is fitted as a merge of two of them on the stored
   sketches of its layer matrices (pipeline/comparison/merge_fit.py); a second round refits the
   merges found, knowing which relatives are mixtures themselves, so a merge's parents are named
   rather than another merge of the same parents.
2. A merge's edge to each parent says so: verdict `merge`, the fit in the reason, the parent's weight
   and the method in `merge_weight` / `merge_method`, and the merge as the child, unless a declaration
   already orders the edge (declared evidence is stronger than a fit).
3. An edge whose direction nothing ordered takes it from a star's centre: the model most of its
   relatives are each nearest to is their parent.

Nobody supplies candidates: the parents are found among the edges flag already chose.
"""

from __future__ import annotations

import functools
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
from threadpoolctl import threadpool_limits

from hubscan.pipeline.comparison import lineage_dag
from hubscan.pipeline.comparison.direction import (
    CENTRE,
    DECLARED,
    MERGE,
    UNKNOWN,
    Edge,
    direct,
    nearest_counts,
)
from hubscan.pipeline.comparison.judge import ModelLicence
from hubscan.pipeline.comparison.merge_fit import MergeFit, find_merge
from hubscan.pipeline.comparison.verdicts import MERGED
from hubscan.pipeline.flagging.licence_edges import model_licences
from hubscan.pipeline.flagging.signal_sql import DUCKDB_MEMORY_LIMIT
from hubscan.pipeline.keys import ModelKey
from hubscan.pipeline.storage.compact import block_folder, hidden_sizes
from hubscan.pipeline.storage.duckdb import connect
from hubscan.pipeline.storage.layer_sketches import Budget, Group, Sketch, Sketches, Slot, fetch_groups
from hubscan.pipeline.storage.parquet import Store

# The columns the pass may rewrite.
_COLUMNS = ("verdict", "reason", "parent", "parent_how", "parent_evidence", "merge_weight", "merge_method",
            "declared_finding")  # fmt: skip


def annotate(con: duckdb.DuckDBPyConnection, store: Store, table: pa.Table) -> pa.Table:
    """The pairs table with merges (checked against what the merge's card declares) and star-centre
    directions set on its flagged edges."""
    if table.num_rows == 0:
        return table
    edges = flagged_edges(table)
    neighbours: dict[ModelKey, set[ModelKey]] = defaultdict(set)
    for edge in edges.values():
        neighbours[edge.a].add(edge.b)
        neighbours[edge.b].add(edge.a)
    fits = find_merges(con, neighbours, lambda blocks: _block_connection(store, blocks), hidden_sizes(store))
    columns = {c: table[c].to_pylist() for c in _COLUMNS}
    for i, edge in edges.items():
        _set_merge(edge, i, fits, columns)
    _check_declared_merges(edges, fits, model_licences(store), columns)
    _set_centres(edges, columns)
    _break_cycles(edges, columns)
    for name, values in columns.items():
        field = table.schema.field(name)
        table = table.set_column(table.schema.get_field_index(name), field, pa.array(values, field.type))
    return table


def _block_connection(store: Store, blocks: frozenset[str]) -> duckdb.DuckDBPyConnection:
    """A connection over these block folders under flag's DuckDB memory limit (unset, DuckDB grows its
    buffers towards 80 % of RAM: 12 GB while spilling a 300k block's sketches)."""
    con = connect(store, blocks=blocks)
    con.execute(f"SET memory_limit = '{DUCKDB_MEMORY_LIMIT}'")
    return con


@dataclass(frozen=True, slots=True)
class FlaggedEdge:
    """A flagged row of the pairs table as the pass reads it: its two models, verdict and score as judged."""

    a: ModelKey
    b: ModelKey
    verdict: str  # every judged pair has one
    score: float


def flagged_edges(table: pa.Table) -> dict[int, FlaggedEdge]:
    """The flagged rows of a pairs table, by row index; a model's key is one tuple shared by its edges (a
    tuple and two strings per edge end were ~0.3 kB an edge)."""
    columns = [table[c].to_pylist() for c in ("a_repo_id", "a_revision", "b_repo_id", "b_revision", "flagged",
                                              "verdict", "score")]  # fmt: skip
    keys: dict[ModelKey, ModelKey] = {}
    return {
        i: FlaggedEdge(keys.setdefault((ar, av), (ar, av)), keys.setdefault((br, bv), (br, bv)), verdict or "",
                       float(score or 0))
        for i, (ar, av, br, bv, flagged, verdict, score) in enumerate(zip(*columns, strict=True))
        if flagged
    }  # fmt: skip


@threadpool_limits.wrap(limits=1, user_api="blas")  # small products: threads only contend
def find_merges(
    con: duckdb.DuckDBPyConnection,
    neighbours: Mapping[ModelKey, set[ModelKey]],
    connect_blocks: Callable[[frozenset[str]], duckdb.DuckDBPyConnection] | None = None,
    hidden: Mapping[ModelKey, int | None] | None = None,
) -> dict[ModelKey, MergeFit]:
    """Each model's merge fit over its flagged relatives, for those that are merges (two rounds).

    ``connect_blocks``: a connection over the named block folders only, so that each fetch scans the
    blocks its models live in (``hidden``: each model's hidden size) rather than the whole store.
    """
    children = graph_order([m for m, ns in neighbours.items() if len(ns) >= 2], neighbours)
    found: dict[ModelKey, MergeFit] = {}
    sketches_of: dict[ModelKey, Sketches] = {}
    by_blocks: dict[frozenset[str], list[Group[ModelKey]]] = defaultdict(list)
    for child in children:
        models = frozenset({child, *neighbours[child]})
        folders = frozenset(block_folder((hidden or {}).get(m)) for m in models)
        by_blocks[folders if connect_blocks is not None else frozenset()].append(Group(child, models))
    budget = Budget()
    for folders, groups in by_blocks.items():
        block_con = connect_blocks(folders) if connect_blocks is not None else con
        try:
            named = Named(budget)
            for group, sketches in fetch_groups(block_con, groups, budget):
                fit = _fit(group.name, neighbours[group.name], sketches, frozenset(), named)
                if fit is not None:
                    found[group.name] = fit
                    sketches_of[group.name] = sketches
        finally:
            if block_con is not con:
                block_con.close()
    mixtures = frozenset(_name(m) for m in found)
    for child in list(found):  # second round: ties go to parents that are not mixtures themselves
        fit = _fit(child, neighbours[child], sketches_of[child], mixtures)
        if fit is None:
            del found[child]
        else:
            found[child] = fit
    return found


def graph_order(children: Iterable[ModelKey], neighbours: Mapping[ModelKey, set[ModelKey]]) -> list[ModelKey]:
    """The children breadth first through the flagged graph, one family after another: consecutive
    children then share most of their relatives, so a fetch of a budget's models fits more of them
    (in key order, a run's relatives were scattered over the whole block)."""
    wanted = set(children)
    seen: set[ModelKey] = set()
    order: list[ModelKey] = []
    for start in sorted(wanted):
        if start in seen:
            continue
        seen.add(start)
        queue = deque([start])
        while queue:
            model = queue.popleft()
            if model in wanted:
                order.append(model)
            for n in sorted(neighbours.get(model, ())):
                if n not in seen:
                    seen.add(n)
                    queue.append(n)
    return order


@dataclass
class Named:
    """Each model's matrices by name (`_matrices`), kept across the children of one fetch: a base is a
    relative of thousands of them. An entry holds the sketches it was made from; a model fetched again
    comes as new objects, and then the fetch before is over and everything is dropped."""

    budget: Budget
    kept: dict[ModelKey, tuple[Mapping[Slot, Sketch], dict[str, np.ndarray]]] = field(default_factory=dict)

    def of(self, model: ModelKey, sketches: Mapping[Slot, Sketch]) -> dict[str, np.ndarray]:
        entry = self.kept.get(model)
        if entry is not None and entry[0] is sketches:
            return entry[1]
        if entry is not None or len(self.kept) > 2 * self.budget.models:
            self.kept = {}  # a new fetch (or more models than two fetches): the old ones may go
        matrices = _matrices(sketches)
        self.kept[model] = (sketches, matrices)
        return matrices


def _fit(
    child: ModelKey,
    relatives: Iterable[ModelKey],
    sketches: Sketches,
    mixtures: frozenset[str],
    named: Named | None = None,
) -> MergeFit | None:
    """The merge fit of one child, its relatives named "repo@revision" as _name gives them."""

    def matrices(m: ModelKey) -> dict[str, np.ndarray]:
        slots = sketches.get(m, {})
        return _matrices(slots) if named is None else named.of(m, slots)

    return find_merge(matrices(child), {_name(r): matrices(r) for r in relatives}, mixtures)


def _set_merge(
    edge: FlaggedEdge, i: int, fits: Mapping[ModelKey, MergeFit], columns: dict[str, list[Any]]
) -> None:
    """Mark an edge between a merge and one of its parents."""
    a, b = edge.a, edge.b
    for child, parent, parent_side in ((a, b, "b"), (b, a, "a")):
        fit = fits.get(child)
        weight = fit.weight_of(_name(parent)) if fit is not None else None
        if fit is None or weight is None:
            continue
        columns["verdict"][i] = MERGED
        columns["reason"][i] = f"{_describe(fit)}: {fit.evidence}"
        columns["merge_weight"][i] = weight
        columns["merge_method"][i] = fit.method
        if columns["parent_evidence"][i] != DECLARED or columns["parent"][i] not in ("a", "b"):
            columns["parent"][i] = parent_side
            columns["parent_how"][i] = (
                f"{child[0]} is a merge of {parent[0]} ({weight:.2f}) and another model"
            )
            columns["parent_evidence"][i] = MERGE
        return


def _check_declared_merges(
    edges: Mapping[int, FlaggedEdge],
    fits: Mapping[ModelKey, MergeFit],
    licences: Mapping[ModelKey, ModelLicence],
    columns: dict[str, list[Any]],
) -> None:
    """A card that declares a merge (mergekit's base_model list, the Hub's merge relation) against the fit:
    other parents, or no mixture at all, is a finding on the merge's edges."""
    for i, edge in edges.items():
        for child, other in ((edge.a, edge.b), (edge.b, edge.a)):
            declared = _declared_merge(licences.get(child))
            fit = fits.get(child)
            if not declared or (fit is None and other[0] not in declared):
                continue
            if fit is None:
                shown = "no mixture of its flagged relatives"
            else:
                fitted = {p.split("@")[0] for p in fit.parents}
                if fitted == set(declared) or (
                    fit.weight_of(_name(other)) is None and other[0] not in declared
                ):
                    continue
                shown = _describe(fit)
            columns["declared_finding"][i] = (
                f"{child[0]} declares a merge of {' and '.join(declared)}; the weights show {shown}"
            )


def _declared_merge(licence: ModelLicence | None) -> tuple[str, ...]:
    """The parents a model's card declares for a merge (two or more bases, or the Hub's merge relation)."""
    if licence is None:
        return ()
    merge_relation = any(r.startswith("merge:") for r in licence.base_relations)
    return licence.base_models if len(licence.base_models) >= 2 or merge_relation else ()


def _set_centres(flagged: Mapping[int, FlaggedEdge], columns: dict[str, list[Any]]) -> None:
    """Edges still without a direction take it from a star's centre, when one side is one."""
    edges = [Edge(e.a[0], e.b[0], e.verdict, e.score) for e in flagged.values()]
    centres = nearest_counts(edges)
    for i, edge in zip(flagged, edges, strict=True):
        if columns["parent_evidence"][i] not in (UNKNOWN, None):
            continue
        way = direct(edge, {}, centres)
        if way.kind == CENTRE:
            columns["parent"][i] = "a" if way.parent == edge.a else "b"
            columns["parent_how"][i] = way.how
            columns["parent_evidence"][i] = CENTRE


def _break_cycles(flagged: Mapping[int, FlaggedEdge], columns: dict[str, list[Any]]) -> None:
    """Directions from different evidence can close a cycle (a precision order against a star's centre):
    strongest evidence first, an edge that would close one loses its direction, and says why."""
    directed: list[lineage_dag.Link] = []
    index: dict[tuple[str, str], int] = {}
    for i, edge in flagged.items():
        side = columns["parent"][i]
        if side not in ("a", "b"):
            continue
        a, b = edge.a[0], edge.b[0]
        parent, child = (a, b) if side == "a" else (b, a)
        evidence = str(columns["parent_evidence"][i] or "")
        directed.append(lineage_dag.Link(parent, child, "", edge.score, True, evidence))
        index[(parent, child)] = i
    for link in lineage_dag.acyclic(directed):
        if not link.directed:
            i = index[(link.parent, link.child)]
            columns["parent"][i] = None
            columns["parent_how"][i] = (
                f"direction unknown: {columns['parent_how'][i]}, against stronger evidence"
            )
            columns["parent_evidence"][i] = UNKNOWN


def _describe(fit: MergeFit) -> str:
    """The fit in words, parents by repo id only."""
    parts = [f"{p.split('@')[0]} ({w:.2f})" for p, w in zip(fit.parents, fit.weights, strict=True)]
    return f"merge of {' and '.join(parts)}, {fit.method}"


def _name(key: ModelKey) -> str:
    return f"{key[0]}@{key[1]}"


def _matrices(sketches: Mapping[Slot, Sketch]) -> dict[str, np.ndarray]:
    """{role/layer/expert/shape: values} of one model's layer matrices, as the merge fit names them."""
    return {_slot_name(s): v.values for s, v in sketches.items()}


@functools.cache
def _slot_name(slot: Slot) -> str:
    """role/layer/expert/shape: a block's models share their slots, so each is named once."""
    return f"{slot[0]}/{slot[1]}/{slot[2]}/{'x'.join(map(str, slot[3]))}"
