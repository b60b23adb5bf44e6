"""Lineage edges: which pairs of a large block are scored, so flag's work grows with models, not with the
square of a family.

On the Hub a popular base collects thousands of derivatives; every pair of such a family is related, and
scoring them all is m^2 / 2 pairs for a family of m. A family is known once its members are linked, so
each model is scored against a bounded set of candidates instead: its nearest relatives by the screening
signature (compute_lineage_pairs.sql: the ``per_model`` strongest screened LSH pairs of each model), plus
the strongest spanning forest of the screened pairs (`Forest`, fed by storage/duckdb.py's
add_spanning_forest), so that no component the screen connected is cut apart when a sub-family holds
more than ``per_model`` members closer to each other than to the rest.
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

import numpy as np


class Forest:
    """Kruskal's maximum spanning forest over integer model ids, fed edges strongest first in batches.

    A block's screened pairs are ~200 per model (20M at 100k models): as Python records they took
    ~12 GB, so the edges stream from DuckDB already sorted and only a parent array of the models is held.
    Each batch first drops, in numpy, the edges whose ends are already joined (most of them once a
    family is linked); only the rest go through a small union-find in Python.
    """

    def __init__(self, models: int) -> None:
        self.parent = np.arange(models, dtype=np.int64)

    def add(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """The positions in this batch of the edges the forest keeps (edges come strongest first)."""
        roots = self._roots()
        ra, rb = roots[a], roots[b]
        joined: dict[int, int] = {}  # root -> the root it was joined under in this batch

        def find(x: int) -> int:
            while x in joined:
                x = joined[x]
            return x

        kept = []
        for i in np.flatnonzero(ra != rb).tolist():
            x, y = find(int(ra[i])), find(int(rb[i]))
            if x != y:
                joined[x] = y
                kept.append(i)
        for x in joined:
            self.parent[x] = find(x)
        return np.array(kept, np.int64)

    def _roots(self) -> np.ndarray:
        """Every model's root, the parent array compressed in place by pointer jumping."""
        while True:
            jumped = self.parent[self.parent]
            if np.array_equal(jumped, self.parent):
                return self.parent
            self.parent = jumped
