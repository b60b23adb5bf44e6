"""Layer maps: which layer of one model each layer of the other was copied or trained from.

Input is the layer-similarity matrix of a pair (queries/compute_layer_similarity.sql): per
(a_layer, b_layer) the median element-aligned r over same-role, same-shape matrices, and the
median input-column-norm r. A cell is a match only when its element-aligned r is beyond chance
for the number of cells searched (pipeline.comparison.chance) and above ``MIN_LAYER_R``: the
per-dimension col-norm r is reported beside it but never matches a layer alone, because
cousins share it without sharing layers (all-MiniLM-L6 vs paraphrase-L3 reach 0.44 on cells
whose matrices are at chance, on layers that are not the same original layer).

The derived side is the one whose layers are explained: the shallower one when the deeper has
layers it lacks (pruning), the deeper one when every layer of both is matched (up-scaling).
Its map is then explained by the simplest structure that keeps every match:
strictly increasing (identical or pruned) < one-to-one (re-ordered) < repeats (up-scaled).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from hubscan.pipeline.comparison import chance
from hubscan.pipeline.keys import PairKey

# Family-wise chance level of one cell being called a match among all cells of the matrix.
CELL_ALPHA = 1e-3
# Floor on a matched cell's r: trained-on layers keep r >= 0.5 (verdicts' fine_tune_min), chance
# cells on the testbed stay within 0.04, so 0.2 keeps margin on both sides of the calibrated cut.
MIN_LAYER_R = 0.2
# Fisher z of a bit-identical cell is capped here so one exact copy does not outweigh the rest.
MAX_CELL_Z = 8.0

IDENTICAL = "identical depth map"
PRUNED = "pruned"
UPSCALED = "up-scaled"
REORDERED = "re-ordered"
PARTIAL = "partial"
STRUCTURES = (IDENTICAL, PRUNED, UPSCALED, REORDERED, PARTIAL)


@dataclass(frozen=True)
class Similarity:
    """A pair's layer-similarity matrices, rows = A's layers, columns = B's."""

    r: np.ndarray  # element-aligned median r (NaN where no shared shape)
    roles: np.ndarray
    n: np.ndarray
    col_r: np.ndarray  # input-column-norm median r (NaN where none)


@dataclass(frozen=True)
class LayerMatch:
    """One layer of the derived model and the layer of the other it comes from (None: no match)."""

    derived: int
    source: int | None
    r: float | None
    col_r: float | None
    log10_p: float | None  # chance-level tail of the cell, before multiplicity
    matched: bool


@dataclass(frozen=True)
class LayerMap:
    """A pair's layer map: which side is derived, each of its layers, and the structure it shows."""

    derived_side: str  # "a" or "b"
    matches: tuple[LayerMatch, ...]
    structure: str | None  # one of STRUCTURES; None when no layer matched
    summary: str

    def pairs(self) -> list[tuple[int | None, int | None]]:
        """(a_layer, b_layer) of each entry, in the derived model's layer order."""
        out: list[tuple[int | None, int | None]] = []
        for m in self.matches:
            out.append((m.derived, m.source) if self.derived_side == "a" else (m.source, m.derived))
        return out


def similarity_matrices(rows: Iterable[Mapping[str, Any]]) -> dict[PairKey, Similarity]:
    """compute_layer_similarity.sql rows grouped into one Similarity per pair."""
    grouped: dict[PairKey, list[Mapping[str, Any]]] = {}
    for r in rows:
        grouped.setdefault((r["a_repo_id"], r["a_revision"], r["b_repo_id"], r["b_revision"]), []).append(r)
    out = {}
    for key, cells in grouped.items():
        la = 1 + max(c["a_layer"] for c in cells)
        lb = 1 + max(c["b_layer"] for c in cells)
        mats = {k: np.full((la, lb), np.nan) for k in ("r", "roles", "n", "col_r")}
        for c in cells:
            i, j = c["a_layer"], c["b_layer"]
            for k, col in (
                ("r", "sketch_r"),
                ("roles", "sketch_roles"),
                ("n", "sketch_len"),
                ("col_r", "col_norms_r"),
            ):
                if c.get(col) is not None:
                    mats[k][i, j] = float(c[col])
        out[key] = Similarity(mats["r"], mats["roles"], mats["n"], mats["col_r"])
    return out


def cell_log_p(r: float, n: float, roles: float) -> float:
    """Chance-level log tail of a cell: median over ``roles`` Pearsons of ``n`` aligned values."""
    return chance.prior_log_p("sketch", r, n, 1, max(1, int(roles)), 1)


def matched_cells(sim: Similarity) -> tuple[np.ndarray, np.ndarray]:
    """(boolean match matrix, log10 chance tail per cell)."""
    cells = int(np.isfinite(sim.r).sum()) or 1
    cut = math.log(CELL_ALPHA / cells)
    log_p = np.full(sim.r.shape, np.nan)
    ok = np.zeros(sim.r.shape, dtype=bool)
    for i, j in zip(*np.nonzero(np.isfinite(sim.r)), strict=True):
        lp = cell_log_p(float(sim.r[i, j]), float(sim.n[i, j]), float(sim.roles[i, j]))
        log_p[i, j] = lp / math.log(10.0)
        ok[i, j] = lp < cut and sim.r[i, j] >= MIN_LAYER_R
    return ok, log_p


def align(sim: Similarity) -> LayerMap:
    """The layer map a pair's similarity supports, with its structure and a one-line summary."""
    ok, log_p = matched_cells(sim)
    cover_a = float(ok.any(axis=1).mean()) if ok.size else 0.0
    cover_b = float(ok.any(axis=0).mean()) if ok.size else 0.0
    la, lb = ok.shape
    # The derived side is fully explained; on a tie the deeper one (it repeats the other's layers).
    if cover_a > cover_b or (cover_a == cover_b and la > lb):
        side, t = "a", lambda m: m
    else:
        side, t = "b", lambda m: m.T
    okd, r, col, lp = t(ok), t(sim.r), t(sim.col_r), t(log_p)
    weight = np.where(
        okd, np.clip(np.arctanh(np.clip(np.nan_to_num(r), -0.999999, 0.999999)), 0, MAX_CELL_Z), 0.0
    )
    mapping, structure = _explain(okd, weight)
    matches = []
    for d in range(okd.shape[0]):
        s = mapping.get(d)
        if s is None:  # report the best cell anyway, unmatched
            best = int(np.nanargmax(np.nan_to_num(r[d], nan=-2.0))) if okd.shape[1] else None
            matches.append(LayerMatch(d, None, _f(r[d, best]) if best is not None else None,
                                      _f(col[d, best]) if best is not None else None, None, False))  # fmt: skip
        else:
            matches.append(LayerMatch(d, s, _f(r[d, s]), _f(col[d, s]), _f(lp[d, s]), True))
    n_src = okd.shape[1]
    return LayerMap(side, tuple(matches), structure, _summary(side, structure, matches, n_src))


def _explain(ok: np.ndarray, weight: np.ndarray) -> tuple[dict[int, int], str | None]:
    """derived layer -> source layer, by the simplest structure that keeps every matched layer."""
    free = {d: int(np.argmax(weight[d])) for d in range(ok.shape[0]) if ok[d].any()}
    if not free:
        return {}, None
    mono = _monotone(ok, weight)
    if len(mono) == len(free):
        mapping = mono
    else:
        rows, cols = linear_sum_assignment(-weight)
        inj = {int(d): int(s) for d, s in zip(rows, cols, strict=True) if ok[d, s]}
        mapping = inj if len(inj) == len(free) else free
    src = [mapping[d] for d in sorted(mapping)]
    if len(mapping) < ok.shape[0]:
        return mapping, PARTIAL
    if len(set(src)) < len(src):
        return mapping, UPSCALED
    if any(b <= a for a, b in pairwise(src)):
        return mapping, REORDERED
    if ok.shape[0] == ok.shape[1] and src == list(range(ok.shape[0])):
        return mapping, IDENTICAL
    return mapping, PRUNED


def _monotone(ok: np.ndarray, weight: np.ndarray) -> dict[int, int]:
    """Heaviest strictly increasing partial matching (dynamic programming; skips allowed on both sides)."""
    nd, ns = ok.shape
    f = np.zeros((nd + 1, ns + 1))
    for i in range(1, nd + 1):
        for j in range(1, ns + 1):
            take = f[i - 1, j - 1] + weight[i - 1, j - 1] if ok[i - 1, j - 1] else -np.inf
            f[i, j] = max(f[i - 1, j], f[i, j - 1], take)
    out: dict[int, int] = {}
    i, j = nd, ns
    while i > 0 and j > 0:
        if ok[i - 1, j - 1] and f[i, j] == f[i - 1, j - 1] + weight[i - 1, j - 1]:
            out[i - 1] = j - 1
            i, j = i - 1, j - 1
        elif f[i, j] == f[i - 1, j]:
            i -= 1
        else:
            j -= 1
    return out


def runs(src: list[int]) -> list[tuple[int, int]]:
    """Maximal runs of consecutive source layers: [0,1,2,3,2,3,4,5] -> [(0, 3), (2, 5)]."""
    out: list[tuple[int, int]] = []
    for s in src:
        if out and s == out[-1][1] + 1:
            out[-1] = (out[-1][0], s)
        else:
            out.append((s, s))
    return out


def _summary(side: str, structure: str | None, matches: list[LayerMatch], n_src: int) -> str:
    d, s = side.upper(), "B" if side == "a" else "A"
    if structure is None:
        return "no layer pair beyond chance: no layer map"
    src = [m.source for m in matches if m.source is not None]
    if structure == IDENTICAL:
        return f"every layer of {d} at the same index of {s}"
    if structure == PRUNED:
        return f"pruned: {d} keeps {s} layers {_list(src)} ({len(src)} of {n_src})"
    if structure == UPSCALED:
        parts = " + ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in runs(src))
        rep = sorted({x for x in src if src.count(x) > 1})
        return f"up-scaled: {d} = {s} layers {parts} ({len(src)} from {n_src}; repeated {_list(rep)})"
    if structure == REORDERED:
        moved = [
            f"{m.derived}<-{m.source}" for m in matches if m.source is not None and m.source != m.derived
        ]
        return f"re-ordered: {d}.layer <- {s}.layer {', '.join(moved)}"
    return f"partial: {len(src)} of {len(matches)} layers of {d} matched in {s} ({_list(src)})"


def _list(xs: list[int]) -> str:
    return ",".join(str(x) for x in xs)


def _f(v: Any) -> float | None:
    return None if v is None or not math.isfinite(float(v)) else float(v)
