"""Lineage edges: which pairs of a large block are scored, so flag's work grows with models, not with the
square of a family.

On the Hub a popular base collects thousands of derivatives; every pair of such a family is related, and
scoring them all is m^2 / 2 pairs for a family of m. A family is known once its members are linked, so
each model is scored against a bounded set of candidates instead: its nearest relatives by the screening
signature (compute_lineage_pairs.sql: the ``per_model`` strongest screened LSH pairs of each model), plus
the strongest spanning forest of the screened pairs (here), so that no component the screen connected is
cut apart when a sub-family holds more than ``per_model`` members closer to each other than to the rest.
The block's random background sample is scored beside them (compute_background_pairs.sql).

Which hypotheses the false discovery rate is controlled over: "a and b are unrelated", one for every
pair of the block (m = n (n - 1) / 2, ``block_pairs``), as before. A scored edge carries its calibrated
p-value; a pair not chosen carries p = 1. For an unrelated pair p' = p when chosen and 1 otherwise, so
p' >= p whatever chose it, and P(p' <= t) <= P(p <= t) <= t: each p' is a valid p-value without any
assumption about how the edges were picked. Benjamini-Hochberg over all m then bounds the expected share
of unrelated pairs among the flagged ones, which are all scored edges (an unchosen pair is never flagged),
under the same dependence caveat as before (PRDS; the Cauchy combination is valid under dependence within
a pair, not across pairs). Counting every pair of the block is conservative next to counting only the
scored edges (the threshold tightens with log m): related pairs score far beyond it, and a smaller m would
need an argument that selection leaves p uniform, which it does not (the screen keeps pairs whose
per-dimension signals, gain and dim_std, are already high).

What selection does do: a pair's p-value is computed against the block's null, fitted on the random
background sample only (MIN_UNSELECTED), never on the chosen edges, so the null does not depend on the
choice. In a block where one family holds most models, most random pairs are related; they are left out of
the fit by their own signals (any decisive chance z beyond RELATED_Z), so the null is learned from the
random pairs that look unrelated (pipeline/comparison/calibrate.py; tests/test_families_scale.py measures
it on a block where 85 % of the models are one family).

What selection costs: a related pair that is neither among its models' nearest nor on the forest is not
scored, so it is not flagged, although its models land in one family through their own edges. Recall is
then a property of families (membership), not of every pair: `hubscan compare A B` scores any other pair.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from hubscan.pipeline.keys import ModelKey


@dataclass(frozen=True, slots=True)
class LineageEdge:
    """A candidate edge between two models of one block, undirected for now (issue 22 adds a direction and
    merge weights as fields)."""

    a: ModelKey
    b: ModelKey
    hidden: int
    screen_z: float  # Fisher z of the screening signature's Pearson: how near the two are before scoring


def spanning_forest(edges: Iterable[LineageEdge]) -> list[LineageEdge]:
    """The maximum spanning forest by ``screen_z`` (Kruskal): the strongest edges that keep every connected
    component of ``edges`` connected, ties broken by key so a run is deterministic."""
    parent: dict[ModelKey, ModelKey] = {}

    def root(x: ModelKey) -> ModelKey:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]  # path halving keeps the trees shallow
            x = parent[x]
        return x

    kept = []
    for edge in sorted(edges, key=lambda e: (-e.screen_z, e.a, e.b)):
        ra, rb = root(edge.a), root(edge.b)
        if ra != rb:
            parent[ra] = rb
            kept.append(edge)
    return kept
