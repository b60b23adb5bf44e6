"""Deltas of flagged same-depth pairs: the DuckDB fetch of their sketches and the rows annotated.

Which pairs: flagged, same depth, identity layer map, not byte-identical copies, not every sampled
matrix bit-identical, and either some matrices bit-identical (a merged LoRA, or training of a few
matrices, would read as a cast: the untouched matrices carry the median r) or both sides stored in one
dtype (a LoRA merged into every Linear moves all matrices, but a cast changes the dtype). Quantised
copies of a base, the most common flagged pairs, are not read again. The delta itself is pure
(pipeline.comparison.low_rank).
"""

from __future__ import annotations

from collections.abc import Mapping

import duckdb
from threadpoolctl import threadpool_limits

from hubscan.pipeline.comparison.low_rank import MatrixDelta, PairDelta, matrix_delta, pair_delta
from hubscan.pipeline.comparison.verdicts import THRESHOLDS
from hubscan.pipeline.comparison.working_row import WorkingRow
from hubscan.pipeline.flagging.signal_sql import Units
from hubscan.pipeline.storage.layer_sketches import Budget, Group, Sketch, Slot, fetch_groups


def needs_delta(row: WorkingRow) -> bool:
    """A flagged pair of same-depth models, layer for layer, whose sampled matrices are not all the same and
    either partly the same or stored in one dtype."""
    identical = row.sketch_identical
    if identical is None or identical >= THRESHOLDS["exact_identical"].value:
        return False
    aligned = (
        row.flagged
        and not row.copy_link
        and row.sketch_same is not None
        and row.a_layers == row.b_layers
        and row.map_is_identity is not False
    )
    one_dtype = row.a_dtype is not None and row.a_dtype == row.b_dtype
    return bool(aligned and (identical > 0 or one_dtype))


@threadpool_limits.wrap(limits=1, user_api="blas")  # small products: threads only contend
def annotate(con: duckdb.DuckDBPyConnection, rows: list[WorkingRow], units: Units | None = None) -> None:
    """Set ``row.delta`` (a PairDelta, read by the verdict) on each pair that needs one.

    ``units``: the pairs cut into groups, each with the connection to query it on (flag's homes).

    Raises:
        QueryError: a shipped query failed.
    """
    todo = [r for r in rows if needs_delta(r)]
    if not todo:
        return
    cand = sorted((r.pair for r in todo), key=lambda c: c.key)  # pairs of one model together: fewer per fetch
    found: dict[tuple[str, str, str, str], PairDelta] = {}
    budget = Budget()
    for unit_con, part in units(cand) if units is not None else [(con, cand)]:
        groups = [Group(c.key, frozenset({c.a, c.b})) for c in part]
        for group, sketches in fetch_groups(unit_con, groups, budget):
            key = group.name
            delta = matrix_deltas(sketches.get(key[:2], {}), sketches.get(key[2:], {}))
            if delta is not None:
                found[key] = delta
    for r in todo:
        if (delta := found.get(r.key)) is not None:
            r.delta = delta


def matrix_deltas(a: Mapping[Slot, Sketch], b: Mapping[Slot, Sketch]) -> PairDelta | None:
    """The delta of two models' same-index matrices read on the same rows, or None when none were."""
    deltas: list[MatrixDelta] = []
    for slot, ra in a.items():
        rb = b.get(slot)
        if rb is None or not ra.row_idx or ra.row_idx != rb.row_idx:
            continue
        d = matrix_delta(slot[0], ra.values, rb.values, len(ra.row_idx))
        if d is not None:
            deltas.append(d)
    return pair_delta(deltas)
