"""Deltas of flagged same-depth pairs: the DuckDB fetch of their sketches and the rows annotated.

Which pairs: flagged, same depth, identity layer map, not byte-identical copies, and not every sampled
matrix bit-identical. A merged LoRA, or training of a few matrices, would otherwise read as a cast (the
untouched matrices carry the median r). The delta itself is pure (pipeline.comparison.low_rank).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import duckdb

from pipeline.comparison.low_rank import MatrixDelta, PairDelta, matrix_delta, pair_delta
from pipeline.comparison.scoring import pair_key
from pipeline.comparison.verdicts import THRESHOLDS
from pipeline.keys import ModelKey
from pipeline.storage.duckdb import fetch_rows, use_candidates

# The column of a working row the verdict reads (pipeline.comparison.verdicts).
COLUMN = "delta"
# Pairs whose sketches are fetched per query: two models' layer sketches are ~1.6 MB per 100 matrices.
PAIRS_PER_BATCH = 500

Units = Callable[[list[dict[str, Any]]], Iterable[tuple[duckdb.DuckDBPyConnection, list[dict[str, Any]]]]]
_Slot = tuple[str, int, int, tuple[int, ...], bool]  # role, layer, expert, shape, transposed


def needs_delta(row: Mapping[str, Any]) -> bool:
    """A flagged pair of same-depth models, layer for layer, whose sampled matrices are not all the same."""
    identical = row.get("sketch_identical")
    return bool(
        row.get("flagged")
        and not row.get("copy_link")
        and row.get("sketch_same") is not None
        and identical is not None
        and identical < THRESHOLDS["exact_identical"].value
        and row.get("a_layers") == row.get("b_layers")
        and row.get("map_is_identity") is not False
    )


def annotate(con: duckdb.DuckDBPyConnection, rows: list[dict[str, Any]], units: Units | None = None) -> None:
    """Set ``row["delta"]`` (a PairDelta) on each pair that needs one.

    ``units``: the pairs cut into groups, each with the connection to query it on (flag's homes).

    Raises:
        QueryError: a shipped query failed.
    """
    todo = [r for r in rows if needs_delta(r)]
    if not todo:
        return
    cand = [{"a_repo_id": r["a_repo_id"], "a_revision": r["a_revision"], "b_repo_id": r["b_repo_id"],
             "b_revision": r["b_revision"], "hidden": r.get("hidden"), "via": r.get("via")} for r in todo]  # fmt: skip
    found: dict[tuple[str, str, str, str], PairDelta] = {}
    for unit_con, part in units(cand) if units is not None else [(con, cand)]:
        for start in range(0, len(part), PAIRS_PER_BATCH):
            batch = part[start : start + PAIRS_PER_BATCH]
            use_candidates(unit_con, batch)
            sketches = _by_model(fetch_rows(unit_con, "list_layer_sketches"))
            for c in batch:
                key = pair_key(c)
                delta = matrix_deltas(sketches.get(key[:2], {}), sketches.get(key[2:], {}))
                if delta is not None:
                    found[key] = delta
    for r in todo:
        if (delta := found.get(pair_key(r))) is not None:
            r[COLUMN] = delta


def matrix_deltas(a: Mapping[_Slot, dict[str, Any]], b: Mapping[_Slot, dict[str, Any]]) -> PairDelta | None:
    """The delta of two models' same-index matrices read on the same rows, or None when none were."""
    deltas: list[MatrixDelta] = []
    for slot, ra in a.items():
        rb = b.get(slot)
        if rb is None or list(ra["row_idx"]) != list(rb["row_idx"]):
            continue
        d = matrix_delta(slot[0], ra["sketch"], rb["sketch"], len(ra["row_idx"]))
        if d is not None:
            deltas.append(d)
    return pair_delta(deltas)


def _by_model(rows: Iterable[dict[str, Any]]) -> dict[ModelKey, dict[_Slot, dict[str, Any]]]:
    out: dict[ModelKey, dict[_Slot, dict[str, Any]]] = {}
    for r in rows:
        slot = (r["role"], int(r["layer"]), int(r["expert"]), tuple(r["shape"]), bool(r["transposed"]))
        out.setdefault((r["repo_id"], r["revision"]), {})[slot] = r
    return out
