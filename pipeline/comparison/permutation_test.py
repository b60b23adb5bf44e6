"""Recover a hidden permutation between two models from their MLP input matrices, and test it.

A copier can permute hidden units and each layer's neurons without changing the function, which
sends every position-aligned signal to chance. The MLP up matrix W [neurons, hidden] of a layer
carries both permutations: W_b = R W_a C. Its columns are hidden units; sorting a column over the
neuron axis removes R, so hidden units are matched by their sorted columns (Hungarian assignment,
as in the independence tests of Zhu et al. 2025). Given C, neurons are matched by row correlation
on half of the hidden units, and the other half tests the match: for a copy every held-out row
correlation is ~1, for independent models they sit near 0.

Matching on column shape leaks a little structure into the held-out half (unrelated pairs gave
median row r up to 0.018 at matched layers, and 0.008 at mismatched ones). So the null is
calibrated on decoys from the same pair: layer i of A against a different layer of B, which no
copy relation aligns. The layers' recovered hidden permutations must also agree with each other,
since one permutation of the residual stream serves every layer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from hubscan.pipeline.comparison.chance import log_sf

# The null's scale is never below this: 2x the spread of median row r over the 18 unrelated and
# decoy layer pairs of all-MiniLM-L6 vs e5-small and the permuted copies (sd 0.005, range -0.003..0.018).
NULL_SD_FLOOR = 0.01
# Layers tested per pair (first, middle, last of the shallower model): each costs one whole matrix.
MAX_LAYERS = 3
# Rows and hidden units below these give no usable test.
MIN_ROWS = 16
MIN_HIDDEN = 8


@dataclass(frozen=True)
class PermutationTest:
    """The recovered permutation and its test."""

    layers: list[tuple[int, int]]  # (a_layer, b_layer) tested
    layer_r: list[float]  # per tested layer, median held-out row correlation after recovery
    decoy_r: list[float]  # the same at mismatched layers (the null's location)
    statistic: float  # median of layer_r
    log10_p: float  # against N(decoy location, max(decoy sd, NULL_SD_FLOOR))
    hidden_map: list[int]  # a's hidden unit j is b's unit hidden_map[j] (consensus over layers)
    consistency: float  # fraction of (layer, unit) whose own recovery agrees with the consensus
    identity: float  # fraction of units mapped to themselves (1.0: not permuted)

    @property
    def p(self) -> float:
        """p-value, floored at the smallest normal double."""
        return max(1e-300, 10.0**self.log10_p)

    def summary(self) -> str:
        """One line for `hubscan compare`."""
        layers = ", ".join(f"{a}->{b} r={r:.3f}" for (a, b), r in zip(self.layers, self.layer_r, strict=True))
        decoys = ", ".join(f"{r:.3f}" for r in self.decoy_r) or "none"
        p = f"p {self.p:.1e}" if self.log10_p > -300 else f"p < 1e-300 (log10 p = {self.log10_p:.0f})"
        return (
            f"permutation test: held-out r {self.statistic:.3f} (decoys {decoys}), {p}; "
            f"hidden permutation consistent across layers {self.consistency:.3f}, identity {self.identity:.3f}; "
            f"layers {layers}"
        )


def as_neurons_by_hidden(values: np.ndarray, transposed: bool) -> np.ndarray:
    """An MLP up/gate matrix as [neurons, hidden] in float64, whatever its storage layout."""
    m = np.asarray(values, dtype=np.float64)
    return m.T if transposed else m


def _double_centre(x: np.ndarray) -> np.ndarray:
    """Remove row and column means: shared offsets would otherwise correlate any two matrices."""
    return x - x.mean(0, keepdims=True) - x.mean(1, keepdims=True) + x.mean()


def _unit_rows(x: np.ndarray) -> np.ndarray:
    c = x - x.mean(1, keepdims=True)
    return c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-30)


def match_hidden(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """b's hidden unit for each of a's, by sorted columns (blind to any neuron order)."""
    sa, sb = np.sort(a, axis=0), np.sort(b, axis=0)
    cost = (sa * sa).sum(0)[:, None] + (sb * sb).sum(0)[None, :] - 2.0 * sa.T @ sb
    _, cols = linear_sum_assignment(cost)
    return np.asarray(cols)


def recover_layer(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(hidden map, neuron map, held-out row r) of one [neurons, hidden] matrix pair of equal shape.

    Neurons are matched on a's even hidden units and tested on the odd ones; the hidden map
    returned is then refined by column correlation over the matched neurons (not used by the test).
    """
    hidden = match_hidden(a, b)
    train = np.arange(a.shape[1]) % 2 == 0
    da, db = _double_centre(a), _double_centre(b[:, hidden])
    _, neurons = linear_sum_assignment(-(_unit_rows(da[:, train]) @ _unit_rows(db[:, train]).T))
    held_out = np.sum(_unit_rows(da[:, ~train]) * _unit_rows(db[neurons][:, ~train]), axis=1)
    # refine: with neurons aligned, columns correlate directly
    rows_b = b[neurons]
    _, refined = linear_sum_assignment(
        -(_unit_rows(_double_centre(a).T) @ _unit_rows(_double_centre(rows_b).T).T)
    )
    return np.asarray(refined), np.asarray(neurons), held_out


def permutation_test(
    mats_a: Sequence[np.ndarray], mats_b: Sequence[np.ndarray], layers: Sequence[tuple[int, int]]
) -> PermutationTest:
    """Recover and test the hidden permutation on paired [neurons, hidden] matrices (one per layer).

    Raises:
        ValueError: shapes differ or are too small (the caller turns it into a one-line error).
    """
    if not mats_a or len(mats_a) != len(mats_b):
        raise ValueError("permutation test needs one matrix of each model per tested layer")
    for a, b in zip(mats_a, mats_b, strict=True):
        if a.shape != b.shape or a.shape[0] < MIN_ROWS or a.shape[1] < MIN_HIDDEN:
            raise ValueError(f"MLP matrices {a.shape} and {b.shape} cannot be matched")
    maps, layer_r = [], []
    for a, b in zip(mats_a, mats_b, strict=True):
        hidden, _, r = recover_layer(a, b)
        maps.append(hidden)
        layer_r.append(float(np.median(r)))
    k = len(mats_a)
    # decoys: a's layer i against b's layer i+1 (cyclic), which no copy relation aligns
    decoy_r = (
        [float(np.median(recover_layer(mats_a[i], mats_b[(i + 1) % k])[2])) for i in range(k)]
        if k > 1
        else []
    )
    stacked = np.stack(maps)
    consensus = np.array([np.bincount(stacked[:, j]).argmax() for j in range(stacked.shape[1])])
    statistic = float(np.median(layer_r))
    loc = max(0.0, float(np.mean(decoy_r))) if decoy_r else 0.0
    sd = max(NULL_SD_FLOOR, float(np.std(decoy_r, ddof=1)) if len(decoy_r) > 1 else 0.0)
    log10_p = log_sf((statistic - loc) / sd) / math.log(10.0)
    return PermutationTest(
        layers=list(layers),
        layer_r=layer_r,
        decoy_r=decoy_r,
        statistic=statistic,
        log10_p=log10_p,
        hidden_map=consensus.tolist(),
        consistency=float(np.mean(stacked == consensus[None, :])),
        identity=float(np.mean(consensus == np.arange(len(consensus)))),
    )


def pick_layers(
    a_layers: Sequence[int], b_layers: Sequence[int], most: int = MAX_LAYERS
) -> list[tuple[int, int]]:
    """Up to ``most`` layers of the shallower model spread over depth, each with its relative-depth peer."""
    a, b = sorted(a_layers), sorted(b_layers)
    if not a or not b:
        return []
    flip = len(a) > len(b)
    short, deep = (b, a) if flip else (a, b)
    idx = sorted({round(i * (len(short) - 1) / max(1, most - 1)) for i in range(most)})
    pairs = []
    for i in idx:
        j = round(i * (len(deep) - 1) / max(1, len(short) - 1))
        pairs.append((deep[j], short[i]) if flip else (short[i], deep[j]))
    return pairs
