"""Stacks of two parents (frankenmerges): a model whose layers two other models' partial maps explain together.

A passthrough merge takes layers 0-3 of A and layers 6-9 of B. Against each parent alone the layer
map is `partial`: A explains X's first layers, B its last. When two partial maps of the same model
X cover every layer of X between them, and each explains layers the other does not, X is reported
`stacked` with the combined map (`X.layer 0-3 <- A.layer 0-3; X.layer 4-7 <- B.layer 6-9`).

Only maps already beyond chance layer by layer (pipeline.comparison.layer_align) are combined, so a
stack needs no threshold of its own; what it adds is the requirement that the union be complete.
When several models explain the same part (copies of one parent), the one giving the fewest runs,
then the highest r, then the fewest unused layers of its own, is named.

Limits: exactly two parents; a stack of two fine-tunes of one base, whose layers all match both
parents, is seen as a map against each (up-scaled or identical), not as a stack; and a model whose
layers were donated to two different stacks can itself look stacked from them (the store has no
dates to say which came first).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import combinations

from hubscan.pipeline.keys import ModelKey

STACKED = "stacked"


@dataclass(frozen=True)
class Piece:
    """One partial map seen from model X: which of X's layers another model explains."""

    other: ModelKey
    layers: Mapping[int, tuple[int, float]]  # X layer -> (the other model's layer, r)


@dataclass(frozen=True)
class Stack:
    """A model explained as layers of two parents, in its own layer order."""

    model: ModelKey
    entries: tuple[tuple[int, ModelKey, int, float], ...]  # (X layer, parent, parent layer, r)
    summary: str

    @property
    def parents(self) -> tuple[ModelKey, ...]:
        """The parents in the order their layers first appear."""
        return tuple(dict.fromkeys(e[1] for e in self.entries))


def pieces_from_pairs(
    pairs: Iterable[tuple[ModelKey, ModelKey, Iterable[tuple[int, int, float]]]],
) -> dict[ModelKey, list[Piece]]:
    """Model -> its pieces, from partial pairs' matched (a_layer, b_layer, r) entries, seen from both sides."""
    out: dict[ModelKey, list[Piece]] = {}
    for a, b, matched in pairs:
        entries = list(matched)
        for x, other, flip in ((a, b, False), (b, a, True)):
            layers: dict[int, tuple[int, float]] = {}
            for la, lb, r in entries:
                mine, theirs = (lb, la) if flip else (la, lb)
                if mine not in layers or r > layers[mine][1]:
                    layers[mine] = (theirs, r)
            if layers:
                out.setdefault(x, []).append(Piece(other, layers))
    return out


def find_stacks(
    pieces: Mapping[ModelKey, list[Piece]], depths: Mapping[ModelKey, int]
) -> dict[tuple[ModelKey, ModelKey], Stack]:
    """(X, P) -> X's stack naming P as a parent, for every model X two of whose pieces explain all its layers."""
    out: dict[tuple[ModelKey, ModelKey], Stack] = {}
    for x, mine in pieces.items():
        depth = depths.get(x)
        if not depth or len(mine) < 2:
            continue
        ranked: list[
            tuple[tuple[int, float, int, str], Piece, Piece, list[tuple[int, ModelKey, int, float]]]
        ] = []
        for p, q in combinations(mine, 2):
            entries = _combine(p, q, depth)
            if entries is not None:
                ranked.append((_rank(entries, depths), p, q, entries))
        ranked.sort(key=lambda t: t[0])
        for _, p, q, entries in ranked:
            for parent in (p.other, q.other):
                out.setdefault((x, parent), Stack(x, tuple(entries), _summary(x, entries)))
    return out


def _combine(p: Piece, q: Piece, depth: int) -> list[tuple[int, ModelKey, int, float]] | None:
    """Each X layer from P or Q (the higher r where both match); None unless the two explain all and each adds."""
    if set(p.layers) | set(q.layers) != set(range(depth)):
        return None
    if not set(p.layers) - set(q.layers) or not set(q.layers) - set(p.layers):
        return None
    entries = []
    for layer in range(depth):
        got = [(piece.layers[layer][1], piece) for piece in (p, q) if layer in piece.layers]
        r, piece = max(got, key=lambda g: g[0])
        entries.append((layer, piece.other, piece.layers[layer][0], r))
    return entries


def _rank(
    entries: list[tuple[int, ModelKey, int, float]], depths: Mapping[ModelKey, int]
) -> tuple[int, float, int, str]:
    """Fewest runs, highest total r, fewest unused parent layers, then names (deterministic)."""
    parents = list(dict.fromkeys(e[1] for e in entries))
    unused = sum(depths.get(p, 0) - len({e[2] for e in entries if e[1] == p}) for p in parents)
    return len(_runs(entries)), -round(sum(e[3] for e in entries), 4), unused, "|".join(p[0] for p in parents)


def _runs(entries: list[tuple[int, ModelKey, int, float]]) -> list[tuple[ModelKey, int, int, int, int]]:
    """(parent, X first, X last, parent first, parent last) of each run of consecutive layers from one parent."""
    out: list[tuple[ModelKey, int, int, int, int]] = []
    for layer, parent, src, _ in entries:
        if out and out[-1][0] == parent and out[-1][2] == layer - 1 and out[-1][4] == src - 1:
            out[-1] = (parent, out[-1][1], layer, out[-1][3], src)
        else:
            out.append((parent, layer, layer, src, src))
    return out


def _span(lo: int, hi: int) -> str:
    return f"{lo}-{hi}" if hi != lo else f"{lo}"


def _summary(x: ModelKey, entries: list[tuple[int, ModelKey, int, float]]) -> str:
    parts = [
        f"{x[0]}.layer {_span(lo, hi)} <- {p[0]}.layer {_span(slo, shi)}"
        for p, lo, hi, slo, shi in _runs(entries)
    ]
    return f"{STACKED} from two parents: " + "; ".join(parts)
