"""Layer and expert maps of flagged (or requested) pairs: the DuckDB side of layer_align and expert_map.

Two partial maps of one model that explain all its layers between them make it a two-parent stack
(pipeline.comparison.stacking). Only pairs that need one are mapped, because the layer-similarity query compares every layer with
every layer on all sampled values: flagged pairs whose depths differ, whose best layer matches are
not the identity, or where either model has routed experts; `hubscan compare` maps its pair always.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

import duckdb
import pyarrow as pa

from pipeline import __version__
from pipeline.comparison.expert_map import (
    EXPERTS_PERMUTED,
    UPCYCLED,
    ExpertMap,
    Model,
    expert_map,
    models_from_rows,
)
from pipeline.comparison.layer_align import PARTIAL, LayerMap, Similarity, align, similarity_matrices
from pipeline.comparison.scoring import pair_key
from pipeline.comparison.stacking import STACKED, Stack, find_stacks, pieces_from_pairs
from pipeline.comparison.verdicts import refine_structural
from pipeline.errors import QueryError
from pipeline.keys import ModelKey, PairKey
from pipeline.storage.duckdb import fetch_rows, use_candidates
from pipeline.storage.parquet import Store
from pipeline.storage.schema import LAYER_MAPS

FLAG_FILE = "layer_maps/layer_maps.parquet"
# Pairs mapped per query: the layer-similarity query compares every layer with every layer, and the ~100k
# flagged pairs of a 100k-model synthetic hub at once ran out of flag's 2 GB DuckDB limit.
PAIRS_PER_BATCH = 10_000
# (model a, model b, matched (a_layer, b_layer, r)) of a pair whose layer map is partial.
PartialPair = tuple[ModelKey, ModelKey, list[tuple[int, int, float]]]


def moe_models(store: Store) -> set[tuple[str, str]]:
    """(repo_id, revision) of every stored model with routed experts."""
    table = store.dataset("models").to_table(columns=["repo_id", "revision", "experts"])
    return {(r["repo_id"], r["revision"]) for r in table.to_pylist() if (r["experts"] or 0) > 0}


def needs_map(row: dict[str, Any], moe: set[tuple[str, str]]) -> bool:
    """A flagged pair whose layer structure or MLP structure differs (or may)."""
    if not row.get("flagged") or row.get("copy_link"):
        return False
    k = pair_key(row)
    return (
        row.get("a_layers") != row.get("b_layers")
        or row.get("map_is_identity") is False
        or k[:2] in moe
        or k[2:] in moe
    )


def attach_maps(
    con: duckdb.DuckDBPyConnection,
    rows: Iterable[dict[str, Any]],
    moe: set[tuple[str, str]],
    source: str,
    known: Iterable[PartialPair] = (),
) -> pa.Table:
    """Map the given pairs, set their ``structure`` (and structural verdict), and return layer_maps rows.

    ``known``: partial maps of other pairs (from the store) that may hold a stack's other parent.

    Raises:
        QueryError: a shipped query failed.
    """
    todo = list(rows)
    if not todo:
        return LAYER_MAPS.empty_table()
    cand = [{"a_repo_id": r["a_repo_id"], "a_revision": r["a_revision"], "b_repo_id": r["b_repo_id"],
             "b_revision": r["b_revision"], "hidden": r.get("hidden"), "via": r.get("via")} for r in todo]  # fmt: skip
    any_moe = any(pair_key(r)[:2] in moe or pair_key(r)[2:] in moe for r in todo)
    sims: dict[PairKey, Similarity] = {}
    mlps: dict[ModelKey, Model] = {}
    for start in range(0, len(cand), PAIRS_PER_BATCH):
        # each pair's matrix comes from its own tensors, so batches give the maps one query gives
        use_candidates(con, cand[start : start + PAIRS_PER_BATCH])
        sims.update(similarity_matrices(fetch_rows(con, "compute_layer_similarity")))
        if any_moe:
            mlps.update(models_from_rows(fetch_rows(con, "list_mlp_tensors")))
    mapped = []
    for row in todo:
        key = pair_key(row)
        lmap = align(sims[key]) if key in sims else None
        emap = None
        if key[:2] in mlps and key[2:] in mlps:
            layer_pairs = [p for p in lmap.pairs() if None not in p] if lmap and lmap.structure else None
            emap = expert_map(mlps[key[:2]], mlps[key[2:]], layer_pairs)  # type: ignore[arg-type]
        mapped.append((row, key, lmap, emap, *_structure(lmap, emap)))
    partial = [(k[:2], k[2:], _matched(lmap)) for _, k, lmap, _, st, _ in mapped if st == PARTIAL and lmap]
    seen = {(a, b) for a, b, _ in partial}
    others = [p for p in known if (p[0], p[1]) not in seen and (p[1], p[0]) not in seen]
    stacks = find_stacks(pieces_from_pairs([*partial, *others]), _depths(con))
    out: list[dict[str, Any]] = []
    stamp = {"source": source, "written_at": datetime.now(timezone.utc), "hubscan_version": __version__}
    for row, key, lmap, emap, structure, summary in mapped:
        stack = stacks.get((key[:2], key[2:])) or stacks.get((key[2:], key[:2]))
        if structure == PARTIAL and stack is not None:
            structure, summary = STACKED, f"{stack.summary} (this pair: {summary})"
        row["structure"] = structure
        row["verdict"], row["reason"] = refine_structural(row, structure, summary)
        base = {"a_repo_id": key[0], "a_revision": key[1], "b_repo_id": key[2], "b_revision": key[3], **stamp}
        stack_rows = _stack_rows(base, stack, summary) if structure == STACKED and stack else []
        out += stack_rows + _layer_rows(base, lmap) + _expert_rows(base, emap)
    return pa.Table.from_pylist(out, LAYER_MAPS)


def known_partial_maps(con: duckdb.DuckDBPyConnection, models: Iterable[ModelKey]) -> list[PartialPair]:
    """Stored partial maps (newest write per pair) involving any of ``models``: where a stack's other parent shows.

    Raises:
        QueryError: the layer_maps view cannot be read.
    """
    wanted = set(models)
    try:
        got = con.sql(
            "WITH m AS (SELECT *, max(written_at) OVER (PARTITION BY a_repo_id, a_revision, b_repo_id, b_revision)"
            " AS newest FROM layer_maps WHERE kind = 'layer') "
            "SELECT a_repo_id, a_revision, b_repo_id, b_revision, a_layer, b_layer, r FROM m "
            "WHERE written_at = newest AND matched AND structure = $partial ORDER BY ALL",
            params={"partial": PARTIAL},
        ).fetchall()
    except duckdb.Error as exc:
        raise QueryError("layer_maps", None, None, f"stored maps unreadable: {exc}") from None
    pairs: dict[tuple[ModelKey, ModelKey], list[tuple[int, int, float]]] = {}
    for ar, av, br, bv, la, lb, r in got:
        if (ar, av) in wanted or (br, bv) in wanted:
            pairs.setdefault(((ar, av), (br, bv)), []).append((int(la), int(lb), float(r)))
    return [(a, b, entries) for (a, b), entries in pairs.items()]


def _matched(lmap: LayerMap) -> list[tuple[int, int, float]]:
    """(a_layer, b_layer, r) of a map's matched entries."""
    return [
        (int(a), int(b), float(m.r or 0.0))
        for m, (a, b) in zip(lmap.matches, lmap.pairs(), strict=True)
        if m.matched and a is not None and b is not None
    ]


def _depths(con: duckdb.DuckDBPyConnection) -> dict[ModelKey, int]:
    rows = con.sql("SELECT repo_id, revision, layers FROM models WHERE layers IS NOT NULL").fetchall()
    return {(r[0], r[1]): int(r[2]) for r in rows}


def _stack_rows(base: dict[str, Any], stack: Stack, summary: str) -> list[dict[str, Any]]:
    """One row per layer of the stacked model: which parent (this pair's other model or a third) it comes from."""
    x_is_a = stack.model == (base["a_repo_id"], base["a_revision"])
    other = (base["b_repo_id"], base["b_revision"]) if x_is_a else (base["a_repo_id"], base["a_revision"])
    rows = []
    for layer, parent, parent_layer, r in stack.entries:
        here = parent_layer if parent == other else None
        a, b = (layer, here) if x_is_a else (here, layer)
        rows.append({**base, "kind": "stack", "derived": "a" if x_is_a else "b", "a_layer": a, "b_layer": b,
                     "r": r, "evidence": "sketch", "matched": True, "structure": STACKED, "summary": summary,
                     "parent_repo_id": parent[0], "parent_revision": parent[1], "parent_layer": parent_layer})  # fmt: skip
    return rows


def compare_file(key: PairKey) -> str:
    """The layer_maps file `hubscan compare` replaces for one pair."""
    return f"layer_maps/compare-{hashlib.sha1('|'.join(key).encode()).hexdigest()[:16]}.parquet"


def _structure(lmap: LayerMap | None, emap: ExpertMap | None) -> tuple[str | None, str]:
    layer_text = lmap.summary if lmap else "no shared layer shapes"
    if emap is not None and emap.structure in (UPCYCLED, EXPERTS_PERMUTED):
        return emap.structure, f"{emap.summary}; attention layers: {layer_text}"
    if emap is not None and emap.structure is None:
        # MLPs of different structure that no expert match explains: only the layers are shared
        return PARTIAL, f"{PARTIAL}: MLP structures differ and {emap.summary}; layers: {layer_text}"
    if lmap is None:
        return None, layer_text
    return lmap.structure, layer_text


def _layer_rows(base: dict[str, Any], lmap: LayerMap | None) -> list[dict[str, Any]]:
    if lmap is None:
        return []
    rows = []
    for m, (a, b) in zip(lmap.matches, lmap.pairs(), strict=True):
        rows.append({**base, "kind": "layer", "derived": lmap.derived_side, "a_layer": a, "b_layer": b,
                     "r": m.r, "col_norms_r": m.col_r, "evidence": "sketch", "log10_p": m.log10_p,
                     "matched": m.matched, "structure": lmap.structure, "summary": lmap.summary})  # fmt: skip
    return rows


def _expert_rows(base: dict[str, Any], emap: ExpertMap | None) -> list[dict[str, Any]]:
    if emap is None:
        return []
    rows = []
    for m in emap.matches:
        moe = {"layer": m.layer, "expert": m.expert}
        other = {"layer": m.other_layer, "expert": m.other_expert}
        a, b = (moe, other) if emap.moe_side == "a" else (other, moe)
        rows.append({**base, "kind": "expert", "derived": emap.moe_side, "a_layer": a["layer"],
                     "a_expert": a["expert"], "b_layer": b["layer"], "b_expert": b["expert"],
                     "slice_lo": m.slice_lo, "slice_hi": m.slice_hi, "r": m.r, "alt_r": m.alt_r,
                     "col_norms_r": m.col_r, "evidence": m.evidence, "log10_p": m.log10_p, "matched": m.matched,
                     "structure": emap.structure, "summary": emap.summary})  # fmt: skip
    return rows
