"""Attention spectra: evidence that survives hidden-unit and head permutations and Q/K, V/O rescaling.

A head's attention score is x^T W_Q^hT W_K^h y and its output is W_O^h W_V^h x. The singular
values of these two d_model x d_model forms are unchanged by any orthogonal change of the hidden
basis (permutations included), by any re-ordering of dimensions inside a head, and by Q*c with
K/c or V*c with O/c; permuting heads only re-orders the per-head spectra. So heads are matched
between two models by spectrum distance (Hungarian assignment) and the matched spectra correlated.

Log spectra of every trained head look alike (a few large values, a long tail), so even unrelated
layers reach Fisher z ~ 1 after the matching picks the closest heads (all-MiniLM-L6 vs e5-small, 72
layer pairs: QK 1.07 +- 0.18, OV 1.34 +- 0.26, max 2.0). The null is therefore located, as in the
permutation test, by decoys from the same pair: every tested layer of A against the tested layers
of B it is not paired with. The per-layer mean spectrum is removed first, so what is correlated is
how heads differ from each other, not the shape every head shares.

Not invariant: a pre-norm model's per-dimension norm gain rescaled by s with the next matrices'
input columns divided by s (function unchanged) turns W_Q^T W_K into D W_Q^T W_K D, D = diag(1/s),
whose singular values change (bench/detection.py --spectra measures by how much).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from hubscan.pipeline.comparison.chance import log_sf

# Singular values kept per head: all of a 32-wide head, the leading half of a 64-wide one; the tail
# of a wider head is dominated by training noise.
TOP_K = 32
# Fisher z of a matched correlation is capped here (r = 0.999999): exact copies give r = 1.
MAX_Z = 7.25
# The null's sd is never below this: the sd of the head-matched z over the 72 unrelated layer pairs
# of all-MiniLM-L6 vs multilingual-e5-small (QK and OV averaged; 0.17) rounded up.
NULL_SD_FLOOR = 0.2
# Tested layer pairs needed: the decoys (mismatched pairs) locate the null.
MIN_LAYERS = 2
# Singular values below this fraction of a head's largest are floored before the log (rank < d_head).
REL_FLOOR = 1e-9


@dataclass(frozen=True)
class HeadSpectra:
    """Per-head log singular values of one layer: rows are query heads."""

    qk: np.ndarray  # [heads, k] log singular values of W_Q^hT W_K^g(h)
    ov: np.ndarray  # [heads, k] log singular values of W_O^h W_V^g(h)


@dataclass(frozen=True)
class SpectraTest:
    """Head-matched spectra of the tested layers and their test against decoys."""

    layers: list[tuple[int, int]]  # (a_layer, b_layer) tested
    layer_r: list[float]  # per tested layer, matched-spectrum Pearson (QK and OV z averaged, back to r)
    qk_r: list[float]
    ov_r: list[float]
    decoy_r: list[float]  # the same at mismatched layers
    statistic: float  # median of the layers' z
    log10_p: float  # against N(decoy mean z, max(decoy sd, NULL_SD_FLOOR))
    head_maps: list[list[int]]  # per tested layer: a's head h is b's head head_maps[i][h] (by QK)
    heads: int
    kv_heads: int

    @property
    def p(self) -> float:
        """p-value, floored at the smallest normal double."""
        return max(1e-300, 10.0**self.log10_p)

    def summary(self) -> str:
        """One line for `hubscan compare`."""
        layers = ", ".join(
            f"{a}->{b} r={r:.4f} (QK {q:.3f}, OV {o:.3f})"
            for (a, b), r, q, o in zip(self.layers, self.layer_r, self.qk_r, self.ov_r, strict=True)
        )
        decoys = ", ".join(f"{r:.3f}" for r in self.decoy_r) or "none"
        p = f"p {self.p:.1e}" if self.log10_p > -300 else f"p < 1e-300 (log10 p = {self.log10_p:.0f})"
        gqa = f", GQA {self.heads}/{self.kv_heads}" if self.kv_heads != self.heads else ""
        return (
            f"attention spectra (W_Q.W_K^T, W_V.W_O per head, heads matched{gqa}): "
            f"r {math.tanh(self.statistic):.4f} (decoys {decoys}), {p}; layers {layers}"
        )


def _pair_singular_values(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Singular values of left^T @ right for two [d_head, d_model] blocks, via d_head x d_head QRs."""
    _, r1 = np.linalg.qr(left.T)
    _, r2 = np.linalg.qr(right.T)
    return np.linalg.svd(r1 @ r2.T, compute_uv=False)


def _log(s: np.ndarray, k: int) -> np.ndarray:
    s = s[:k]
    return np.log(np.maximum(s, max(float(s[0]), 1e-300) * REL_FLOOR))


def head_spectra(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, o: np.ndarray, heads: int, kv_heads: int, top_k: int = TOP_K
) -> HeadSpectra:
    """Per-query-head spectra of one layer; matrices as [out, in] (o is [d_model, heads * d_head]).

    With grouped-query attention (kv_heads < heads) query head h reads K/V head h // (heads / kv_heads).

    Raises:
        ValueError: shapes do not fit the head counts (the caller names model and file).
    """
    if heads <= 0 or kv_heads <= 0 or heads % kv_heads:
        raise ValueError(f"head counts {heads}/{kv_heads} do not group")
    dh = q.shape[0] // heads
    want = {"q": (heads * dh, q.shape[1]), "k": (kv_heads * dh, q.shape[1]), "v": (kv_heads * dh, q.shape[1]),
            "o": (q.shape[1], heads * dh)}  # fmt: skip
    for name, m in (("q", q), ("k", k), ("v", v), ("o", o)):
        if dh == 0 or m.shape != want[name]:
            raise ValueError(
                f"attn {name} shape {m.shape} does not fit {heads}/{kv_heads} heads of width {dh}"
            )
    q, k, v, o = (np.asarray(m, dtype=np.float64) for m in (q, k, v, o))
    group = heads // kv_heads
    kk = min(top_k, dh)
    qk, ov = [], []
    for h in range(heads):
        g = h // group
        rows, kv_rows = slice(h * dh, (h + 1) * dh), slice(g * dh, (g + 1) * dh)
        qk.append(_log(_pair_singular_values(q[rows], k[kv_rows]), kk))
        ov.append(_log(_pair_singular_values(o[:, rows].T, v[kv_rows]), kk))
    return HeadSpectra(np.stack(qk), np.stack(ov))


def matched_z(a: np.ndarray, b: np.ndarray) -> tuple[float, np.ndarray]:
    """(Fisher z of the head-matched correlation, b's head for each of a's) for two [heads, k] spectra."""
    ca, cb = a - a.mean(0), b - b.mean(0)
    cost = ((ca[:, None, :] - cb[None, :, :]) ** 2).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    x, y = ca[rows].ravel(), cb[cols].ravel()
    x, y = x - x.mean(), y - y.mean()
    denom = float(np.linalg.norm(x) * np.linalg.norm(y))
    r = float(x @ y) / denom if denom > 0 else 0.0
    return float(min(MAX_Z, np.arctanh(np.clip(r, -0.999999, 0.999999)))), np.asarray(cols)


def layer_z(a: HeadSpectra, b: HeadSpectra) -> tuple[float, float, float, np.ndarray]:
    """(mean z, QK z, OV z, head map by QK) of one layer pair."""
    if a.qk.shape != b.qk.shape:
        raise ValueError(f"head spectra {a.qk.shape} and {b.qk.shape} differ in heads or width")
    zq, heads = matched_z(a.qk, b.qk)
    zo, _ = matched_z(a.ov, b.ov)
    return (zq + zo) / 2.0, zq, zo, heads


def spectra_test(
    spectra_a: Sequence[HeadSpectra], spectra_b: Sequence[HeadSpectra], layers: Sequence[tuple[int, int]],
    heads: int, kv_heads: int,
) -> SpectraTest:  # fmt: skip
    """Match heads on each tested layer pair and test the matched spectra against mismatched-layer decoys.

    Raises:
        ValueError: fewer than MIN_LAYERS layer pairs, or spectra of different shape.
    """
    if len(spectra_a) < MIN_LAYERS or len(spectra_a) != len(spectra_b) or len(layers) != len(spectra_a):
        raise ValueError(
            f"the spectra test needs {MIN_LAYERS}+ layer pairs (the null comes from mismatched ones)"
        )
    got = [layer_z(a, b) for a, b in zip(spectra_a, spectra_b, strict=True)]
    n = len(spectra_a)
    decoys = [layer_z(spectra_a[i], spectra_b[j])[0] for i in range(n) for j in range(n) if i != j]
    statistic = float(np.median([g[0] for g in got]))
    loc = float(np.mean(decoys)) if decoys else 0.0
    sd = max(NULL_SD_FLOOR, float(np.std(decoys, ddof=1)) if len(decoys) > 1 else 0.0)
    log10_p = log_sf((statistic - loc) / sd) / math.log(10.0)
    return SpectraTest(
        layers=list(layers),
        layer_r=[math.tanh(g[0]) for g in got],
        qk_r=[math.tanh(g[1]) for g in got],
        ov_r=[math.tanh(g[2]) for g in got],
        decoy_r=[math.tanh(z) for z in decoys],
        statistic=statistic,
        log10_p=log10_p,
        head_maps=[g[3].tolist() for g in got],
        heads=heads,
        kv_heads=kv_heads,
    )
