"""A mapped pair's structure: its layer and expert maps, two-parent stacks, and the rows `layer_maps` stores.

Pure: pipeline/flagging/layer_maps.py fetches the similarity matrices and MLP tensors and writes the rows; the
structure found here enters the pair's verdict (pipeline.comparison.judge) once, with its signals.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hubscan.pipeline.comparison.expert_map import EXPERTS_PERMUTED, UPCYCLED, ExpertMap, Model, expert_map
from hubscan.pipeline.comparison.layer_align import PARTIAL, LayerMap, Similarity, align
from hubscan.pipeline.comparison.stacking import STACKED, Stack, find_stacks, pieces_from_pairs
from hubscan.pipeline.keys import ModelKey, PairKey

# (model a, model b, matched (a_layer, b_layer, r)) of a pair whose layer map is partial.
PartialPair = tuple[ModelKey, ModelKey, list[tuple[int, int, float]]]


@dataclass(frozen=True)
class MapStamp:
    """The run a `layer_maps` row comes from: its command ("flag" or "compare"), when, and which hubscan."""

    source: str
    written_at: datetime
    hubscan_version: str


@dataclass(frozen=True, slots=True, kw_only=True)
class MapRow:
    """One `layer_maps` row (pipeline/storage/schema.py's LAYER_MAPS names its columns and says what each holds):
    a layer, expert or stacked layer of the derived side of a mapped pair, and what it matched."""

    a_repo_id: str
    a_revision: str
    b_repo_id: str
    b_revision: str
    kind: str
    derived: str | None
    a_layer: int | None = None
    a_expert: int | None = None
    b_layer: int | None = None
    b_expert: int | None = None
    slice_lo: int | None = None
    slice_hi: int | None = None
    r: float | None = None
    alt_r: float | None = None
    col_norms_r: float | None = None
    evidence: str | None = None
    log10_p: float | None = None
    matched: bool | None = None
    structure: str | None = None
    summary: str | None = None
    parent_repo_id: str | None = None
    parent_revision: str | None = None
    parent_layer: int | None = None
    source: str | None = None
    written_at: datetime | None = None
    hubscan_version: str | None = None


@dataclass(frozen=True)
class _MapPair:
    """A mapped pair and its run's stamp: what every one of its rows starts with."""

    key: PairKey
    stamp: MapStamp

    def row(self, kind: str, derived: str | None, **values: Any) -> MapRow:
        a_repo, a_rev, b_repo, b_rev = self.key
        s = self.stamp
        return MapRow(a_repo_id=a_repo, a_revision=a_rev, b_repo_id=b_repo, b_revision=b_rev, kind=kind,
                      derived=derived, source=s.source, written_at=s.written_at, hubscan_version=s.hubscan_version,
                      **values)  # fmt: skip


@dataclass(frozen=True)
class PairStructure:
    """What a pair's layer / expert map shows: a structural kind (or None) and its summary."""

    structure: str | None
    summary: str


def map_pairs(
    keys: Iterable[PairKey],
    sims: Mapping[PairKey, Similarity],
    mlps: Mapping[ModelKey, Model],
    depths: Mapping[ModelKey, int],
    stamp: MapStamp,
    known: Iterable[PartialPair] = (),
) -> tuple[dict[PairKey, PairStructure], list[MapRow]]:
    """Each pair's structure, and its `layer_maps` rows (``stamp`` on each).

    ``known``: partial maps of other pairs that may hold a stack's other parent.
    """
    mapped = []
    for key in keys:
        lmap = align(sims[key]) if key in sims else None
        emap = None
        if key[:2] in mlps and key[2:] in mlps:
            layer_pairs = [p for p in lmap.pairs() if None not in p] if lmap and lmap.structure else None
            emap = expert_map(mlps[key[:2]], mlps[key[2:]], layer_pairs)  # type: ignore[arg-type]
        mapped.append((key, lmap, emap, *_structure(lmap, emap)))
    partial = [(k[:2], k[2:], _matched(lmap)) for k, lmap, _, st, _ in mapped if st == PARTIAL and lmap]
    seen = {(a, b) for a, b, _ in partial}
    others = [p for p in known if (p[0], p[1]) not in seen and (p[1], p[0]) not in seen]
    stacks = find_stacks(pieces_from_pairs([*partial, *others]), depths)
    found: dict[PairKey, PairStructure] = {}
    rows: list[MapRow] = []
    for key, lmap, emap, structure, summary in mapped:
        stack = stacks.get((key[:2], key[2:])) or stacks.get((key[2:], key[:2]))
        if structure == PARTIAL and stack is not None:
            structure, summary = STACKED, f"{stack.summary} (this pair: {summary})"
        found[key] = PairStructure(structure, summary)
        pair = _MapPair(key, stamp)
        stack_rows = _stack_rows(pair, stack, summary) if structure == STACKED and stack else []
        rows += stack_rows + _layer_rows(pair, lmap) + _expert_rows(pair, emap)
    return found, rows


def derived_sides(rows: Iterable[Mapping[str, Any]]) -> dict[PairKey, str]:
    """For each mapped pair, the side ("a" or "b") its layer / expert map explains."""
    out: dict[PairKey, str] = {}
    for m in rows:
        if m["derived"] in ("a", "b"):
            out.setdefault((m["a_repo_id"], m["a_revision"], m["b_repo_id"], m["b_revision"]), m["derived"])
    return out


def _matched(lmap: LayerMap) -> list[tuple[int, int, float]]:
    """(a_layer, b_layer, r) of a map's matched entries."""
    return [
        (int(a), int(b), float(m.r or 0.0))
        for m, (a, b) in zip(lmap.matches, lmap.pairs(), strict=True)
        if m.matched and a is not None and b is not None
    ]


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


def _stack_rows(pair: _MapPair, stack: Stack, summary: str) -> list[MapRow]:
    """One row per layer of the stacked model: which parent (this pair's other model or a third) it comes from."""
    key = pair.key
    x_is_a = stack.model == key[:2]
    other = key[2:] if x_is_a else key[:2]
    rows = []
    for layer, parent, parent_layer, r in stack.entries:
        here = parent_layer if parent == other else None
        a, b = (layer, here) if x_is_a else (here, layer)
        rows.append(pair.row("stack", "a" if x_is_a else "b", a_layer=a, b_layer=b, r=r, evidence="sketch",
                             matched=True, structure=STACKED, summary=summary, parent_repo_id=parent[0],
                             parent_revision=parent[1], parent_layer=parent_layer))  # fmt: skip
    return rows


def _layer_rows(pair: _MapPair, lmap: LayerMap | None) -> list[MapRow]:
    if lmap is None:
        return []
    rows = []
    for m, (a, b) in zip(lmap.matches, lmap.pairs(), strict=True):
        rows.append(pair.row("layer", lmap.derived_side, a_layer=a, b_layer=b, r=m.r, col_norms_r=m.col_r,
                             evidence="sketch", log10_p=m.log10_p, matched=m.matched, structure=lmap.structure,
                             summary=lmap.summary))  # fmt: skip
    return rows


def _expert_rows(pair: _MapPair, emap: ExpertMap | None) -> list[MapRow]:
    if emap is None:
        return []
    rows = []
    for m in emap.matches:
        moe = (m.layer, m.expert)
        other = (m.other_layer, m.other_expert)
        a, b = (moe, other) if emap.moe_side == "a" else (other, moe)
        rows.append(pair.row("expert", emap.moe_side, a_layer=a[0], a_expert=a[1], b_layer=b[0], b_expert=b[1],
                             slice_lo=m.slice_lo, slice_hi=m.slice_hi, r=m.r, alt_r=m.alt_r, col_norms_r=m.col_r,
                             evidence=m.evidence, log10_p=m.log10_p, matched=m.matched, structure=emap.structure,
                             summary=emap.summary))  # fmt: skip
    return rows
