"""Is a model a weight-space merge of two of its relatives, with which weights, by which method?

Works on element-aligned sampled values (the stored sketches: the same positions of every
same-shape tensor), keyed by tensor, so it needs no new reads. Three tests, in order:

1. Sparse task vectors (TIES, DARE): with their common base b among the relatives, the child's
   departure d = child - b is exactly zero on most sampled positions (the trimmed or dropped
   entries) while each parent's task vector p - b is dense. Where one parent alone kept an entry,
   d is that parent's task vector at one fixed scale: 1 for TIES, 1 / density for DARE. The
   parents are the pair whose exact matches cover most of d's support (a linear combination of
   other relatives matches nowhere exactly), and the scale names the method.
2. Dense mixtures: the child is a combination s_p * p + s_q * q of two relatives that leaves
   far less unexplained than the best single relative does (MAX_RESIDUAL_SHARE). A sibling
   fine-tune is not one: the midpoint of two siblings is nearer the base, which leaves 3/4 of a
   sibling's departure (the base, when stored, explains it alone).
3. Linear or SLERP: a linear merge's coefficients sum to 1 in every tensor; SLERP's sum to
   (sin((1-t)W) + sin(tW)) / sin(W) for the angle W between the parents' tensors. Both are fitted
   per tensor; SLERP is named when it fits clearly better and the angle makes the two differ.

Weights are the fitted coefficients normalised to sum 1 (SLERP: 1 - t and t).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np

# A dense merge leaves at most this share of the best single relative's residual; a sibling
# fine-tune against two other siblings leaves 3/4 of it, a linear merge rounding error only.
MAX_RESIDUAL_SHARE = 0.2
# A parent weighs at least this much (normalised): less is a rounding of the other parent alone.
MIN_WEIGHT = 0.05
# Sampled positions of the child equal to the base for a sparse task-vector merge: TIES at
# density 0.5 of two parents leaves ~25 % untouched, DARE at 0.5 about as many; a fine-tune 0 %.
MIN_UNTOUCHED = 0.2
# ... and a parent's own task vector is dense (few entries equal to the base).
MAX_PARENT_UNTOUCHED = 0.05
# The parents' task vectors, each at its own fixed scale, give at least this share of the child's
# departure exactly (TIES at density 0.2: ~90 %; any linear combination of other relatives: ~0) ...
MIN_EXACT_SHARE = 0.5
# ... and each parent at least this share on its own.
MIN_PARENT_EXACT = 0.05
# Ratios d / tau within this relative width count as one scale (float32 rounding is ~1e-6).
SCALE_BIN = 1e-3
# A parent's fixed scale: TIES keeps entries at size (1), DARE rescales by 1 / density (> 1.5).
DARE_RATIO = 1.5
# DARE of two parents at density p leaves about (1 - p)^2 of the entries untouched (sign election
# drops a few more); further off than this, the density read from the scale does not fit.
MAX_DENSITY_MISMATCH = 0.15
# SLERP is named when its per-tensor fit errs at most this share of linear's ...
SLERP_ERROR_SHARE = 0.25
# ... and the angles make the coefficient sums differ from 1 by more than rounding.
MIN_SLERP_EXCESS = 1e-4
# mergekit interpolates linearly above this |cosine| between the tensors.
SLERP_DOT_THRESHOLD = 0.9995
# Seen from a DARE merge, two parents' task vectors share the merge's rescaled entries (correlation
# ~0.9); seen from their true base they are independent fine-tunes (~0). Wrong way round when
# the base side is more correlated than the child side by more than this.
MIN_BASE_CORR_GAP = 0.2
# Two-parent fits whose residuals are within this factor of the best are equally good.
TIE_FACTOR = 1.02
# Two-relative fits solved in one numpy pass; a child with more pairs (a base with thousands of
# relatives) is solved a row of pairs at a time, so its arrays stay small.
PAIRS_AT_ONCE = 200_000
# Tensors with fewer aligned values than this say nothing about a merge.
MIN_VALUES = 16

Aligned = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class MergeFit:
    """A child explained as a merge of ``parents`` with ``weights`` (summing to 1) by ``method``."""

    parents: tuple[str, ...]
    weights: tuple[float, ...]
    method: str  # linear | slerp | ties | dare
    base: str | None  # the common base of the task vectors (ties, dare)
    unexplained: float  # residual left, as a share of the best single relative's
    evidence: str  # one line: how the method was told

    def describe(self) -> str:
        """``merge of A (0.80) and B (0.20), linear``."""
        parts = [f"{p} ({w:.2f})" for p, w in zip(self.parents, self.weights, strict=True)]
        return f"merge of {' and '.join(parts)}, {self.method}"

    def weight_of(self, parent: str) -> float | None:
        """The weight of one parent, None if it is not a parent."""
        return dict(zip(self.parents, self.weights, strict=True)).get(parent)


def find_merge(
    child: Aligned, relatives: Mapping[str, Aligned], merges: frozenset[str] = frozenset()
) -> MergeFit | None:
    """The merge that explains ``child`` from two of ``relatives``, or None if none does.

    ``merges`` names relatives already found to be merges themselves: another mixture of the same
    parents fits a child as well as the parents do (0.6 a + 0.4 (a + b) / 2 is 0.8 a + 0.2 b), so
    on a tie the parents that are not mixtures are named, and a mixture is no single-parent baseline.
    """
    keys = _shared_keys(child, relatives)
    if not keys or len(relatives) < 2:
        return None
    c = _stack(child, keys)
    rel = {name: _stack(values, keys) for name, values in sorted(relatives.items())}
    return _sparse_merge(c, rel) or _dense_merge(c, rel, child, relatives, keys, merges)


def _shared_keys(child: Aligned, relatives: Mapping[str, Aligned]) -> list[str]:
    """Tensors every model has with the same number of aligned values (enough of them)."""
    keys = []
    for key, values in child.items():
        n = len(values)
        if n >= MIN_VALUES and all(len(r.get(key, ())) == n for r in relatives.values()):
            keys.append(key)
    return sorted(keys)


def _stack(values: Aligned, keys: Sequence[str]) -> np.ndarray:
    """The aligned values of ``keys``, concatenated in float64."""
    return np.concatenate([values[k] for k in keys]).astype(np.float64)


def _sparse_merge(c: np.ndarray, rel: Mapping[str, np.ndarray]) -> MergeFit | None:
    """TIES / DARE: the child equals its base on many positions; try the likeliest bases first."""
    untouched = {name: float(np.mean(c == r)) for name, r in rel.items()}
    for base in sorted(untouched, key=lambda n: (-untouched[n], n)):
        if untouched[base] < MIN_UNTOUCHED:
            return None
        fit = _sparse_fit(c, rel, base, untouched[base])
        if fit is not None:
            return fit
    return None


def _sparse_fit(c: np.ndarray, rel: Mapping[str, np.ndarray], base: str, untouched: float) -> MergeFit | None:
    """Two parents whose task vectors, each at one fixed scale, give the child's departure exactly.

    Where one parent alone kept an entry, TIES writes its task vector as it is (scale 1) and DARE
    rescaled by 1 / density; the parents are the pair whose exact matches cover most of the support.
    """
    d = c - rel[base]
    support = d != 0
    if support.mean() < 0.01:
        return None
    ds = d[support]
    taus = {n: (r - rel[base])[support] for n, r in rel.items() if n != base}
    dense = {n: t for n, t in taus.items() if np.mean(t == 0) <= MAX_PARENT_UNTOUCHED}
    matches = {n: _exact_matches(ds, t) for n, t in dense.items()}
    best: tuple[float, str, str] | None = None
    for p, q in combinations(sorted(matches), 2):
        covered = float(np.mean(matches[p][1] | matches[q][1]))
        if min(matches[p][1].mean(), matches[q][1].mean()) >= MIN_PARENT_EXACT and (
            best is None or covered > best[0]
        ):
            best = (covered, p, q)
    if best is None or best[0] < MIN_EXACT_SHARE:
        return None
    covered, p, q = best
    (scale_p, exact_p), (scale_q, exact_q) = matches[p], matches[q]
    method, density = ("ties", None) if max(scale_p, scale_q) < DARE_RATIO else ("dare", 1 / scale_p)
    if density is not None and abs((1 - density) ** 2 - untouched) > MAX_DENSITY_MISMATCH:
        return None  # a base and its DARE merge seen the wrong way round: the density does not fit
    if _corr(rel[p] - rel[base], rel[q] - rel[base]) > _corr(rel[p] - c, rel[q] - c) + MIN_BASE_CORR_GAP:
        return None  # the parents' task vectors are independent from their base, not from its merge
    weights = _sparse_weights(ds, dense[p], dense[q], scale_p, scale_q, ~(exact_p | exact_q))
    evidence = (
        f"{untouched:.0%} of sampled values equal to {base}; {covered:.0%} of the rest are one parent's "
        f"task vector x{scale_p:.3g} / x{scale_q:.3g} ({'rescaled: DARE' if method == 'dare' else 'as is: TIES'})"
    )
    return MergeFit((p, q), weights, method, base, 1 - covered, evidence)


def _exact_matches(d: np.ndarray, tau: np.ndarray) -> tuple[float, np.ndarray]:
    """(scale, mask): the one scale at which ``tau`` equals ``d`` on the most entries, and those entries."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(tau != 0, d / tau, 0.0)
    usable = ratio > 0
    if not usable.any():
        return 1.0, np.zeros(len(d), dtype=bool)
    bins = np.round(np.log(ratio[usable]) / SCALE_BIN).astype(np.int64)
    values, counts = np.unique(bins, return_counts=True)
    mode = values[np.argmax(counts)]
    mask = np.zeros(len(d), dtype=bool)
    mask[np.flatnonzero(usable)[bins == mode]] = True
    return float(np.median(ratio[mask])), mask


def _sparse_weights(
    d: np.ndarray, tau_p: np.ndarray, tau_q: np.ndarray, scale_p: float, scale_q: float, both: np.ndarray
) -> tuple[float, float]:
    """Weights: from the scales when they differ (unnormalised merges), else from entries both parents kept."""
    if abs(scale_p - scale_q) > 0.01 * max(scale_p, scale_q) or both.sum() < MIN_VALUES:
        return scale_p / (scale_p + scale_q), scale_q / (scale_p + scale_q)
    coef, _ = _lstsq(d[both] / scale_p, [tau_p[both], tau_q[both]])
    coef = np.clip(coef, 0.0, None)
    total = float(coef.sum())
    return (0.5, 0.5) if total <= 0 else (float(coef[0]) / total, float(coef[1]) / total)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation; 0 for a constant side."""
    a, b = a - a.mean(), b - b.mean()
    den = float(np.sqrt(np.dot(a, a) * np.dot(b, b)))
    return float(np.dot(a, b)) / den if den > 0 else 0.0


def _dense_merge(
    c: np.ndarray,
    rel: Mapping[str, np.ndarray],
    child: Aligned,
    relatives: Mapping[str, Aligned],
    keys: list[str],
    merges: frozenset[str],
) -> MergeFit | None:
    """Linear / SLERP: the best two-relative fit against the best one-relative fit."""
    names = sorted(rel)
    # Every fit of c on one or two relatives, from their dot products: one pass over the values instead
    # of a least-squares solve per pair (45 of them for 10 relatives). The chosen fits are solved again
    # exactly below; a residual this close to 0 (noise floor) only ranks, never decides.
    x = np.stack([rel[n] for n in names])
    gram, proj, cc = x @ x.T, x @ c, float(np.dot(c, c))
    floor = 1e-12 * cc
    plain = [i for i, n in enumerate(names) if n not in merges] or list(range(len(names)))
    best_single = min(plain, key=lambda i: cc - proj[i] ** 2 / gram[i, i] if gram[i, i] > 0 else cc)
    single = _residual(c, [x[best_single]])
    if single <= floor:  # a copy of one relative
        return None
    first, second, residual, mixed = _pair_fits(gram, proj, cc)
    lowest = float(residual.min())
    # among fits as good as the best (other mixtures of the same parents fit as well), the one with
    # fewest known mixtures among its parents, then one that is a mixture at all (both weights positive)
    near = np.flatnonzero(residual <= TIE_FACTOR * lowest + floor).tolist()
    best = min(
        near,
        key=lambda k: (
            (names[first[k]] in merges) + (names[second[k]] in merges),
            not mixed[k],
            residual[k],
        ),
    )
    p, q = names[first[best]], names[second[best]]
    coef, res = _lstsq(c, [rel[p], rel[q]])
    share = res / single
    if share > MAX_RESIDUAL_SHARE or coef.sum() <= 0:
        return None
    weights = coef / coef.sum()
    if weights.min() < MIN_WEIGHT:
        return None
    return _linear_or_slerp(child, relatives[p], relatives[q], keys, (p, q), weights, share)


def _pair_fits(
    gram: np.ndarray, proj: np.ndarray, cc: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every two-relative fit of c at once, in combinations order: (first, second, residual sum of
    squares, whether both weigh at least MIN_WEIGHT), from the Gram matrix and projections.

    A base with thousands of flagged relatives has millions of pairs: one 2x2 solve each in Python was
    most of the lineage pass. Each row of pairs (i, every j > i) is solved in numpy as LAPACK's LU with
    partial pivoting solves it, so a singular pair (the same values twice) is told apart the same way.
    """
    k = len(proj)
    diag = np.diag(gram)
    if k * (k - 1) // 2 <= PAIRS_AT_ONCE:  # most children have a few relatives: all pairs in one go
        first, second = np.triu_indices(k, 1)
        residual, mixed = _row_fits(
            diag[first], diag[second], gram[first, second], proj[first], proj[second], cc
        )
        return first, second, residual, mixed
    firsts, seconds, residuals, mixes = [], [], [], []
    for i in range(k - 1):
        j = np.arange(i + 1, k)
        residual, mixed = _row_fits(diag[i], diag[j], gram[i, j], proj[i], proj[j], cc)
        firsts.append(np.full(j.size, i))
        seconds.append(j)
        residuals.append(residual)
        mixes.append(mixed)
    return np.concatenate(firsts), np.concatenate(seconds), np.concatenate(residuals), np.concatenate(mixes)


def _row_fits(
    gii: np.ndarray | float,
    gjj: np.ndarray,
    gij: np.ndarray,
    pi: np.ndarray | float,
    pj: np.ndarray,
    cc: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The fits of c on relatives i and j, element by element: [[gii, gij], [gij, gjj]] x = [pi, pj]."""
    with np.errstate(divide="ignore", invalid="ignore"):
        swap = np.abs(gij) > np.abs(gii)  # the pivot LU picks: the larger of the first column
        piv = np.where(swap, gij, gii)
        low = np.where(swap, gii, gij) / piv
        u22 = np.where(swap, gij - low * gjj, gjj - low * gij)
        y2 = np.where(swap, pi - low * pj, pj - low * pi)
        xj = y2 / u22
        xi = np.where(swap, (pj - gjj * xj) / gij, (pi - gij * xj) / gii)
        singular = (piv == 0) | (u22 == 0)
        total = xi + xj
        mixed = ~singular & (total > 0) & (np.minimum(xi, xj) / total >= MIN_WEIGHT)
        alone = np.where(gii > 0, cc - pi**2 / gii, cc)  # the same values twice: one relative's fit
        residual = np.where(singular, alone, cc - (xi * pi + xj * pj))
    return residual, mixed


def _residual(c: np.ndarray, columns: Sequence[np.ndarray]) -> float:
    """Sum of squares left by the least-squares fit of c on ``columns``."""
    return _lstsq(c, columns)[1]


def _lstsq(c: np.ndarray, columns: Sequence[np.ndarray]) -> tuple[np.ndarray, float]:
    """(coefficients, residual sum of squares) of c on ``columns``, no intercept."""
    x = np.stack(columns, axis=1)
    coef, *_ = np.linalg.lstsq(x, c, rcond=None)
    return coef, float(np.sum((c - x @ coef) ** 2))


def _linear_or_slerp(
    child: Aligned,
    p: Aligned,
    q: Aligned,
    keys: list[str],
    names: tuple[str, str],
    weights: np.ndarray,
    share: float,
) -> MergeFit:
    """Name the interpolation from the per-tensor coefficient sums; weights from the fit."""
    err_linear = err_slerp = excess = 0.0
    ts: list[float] = []
    for key in keys:
        c_k, p_k, q_k = (np.asarray(m[key], dtype=np.float64) for m in (child, p, q))
        (s_p, s_q), _ = _lstsq(c_k, [p_k, q_k])
        angle = _angle(p_k, q_k)
        t = _slerp_t(s_p, s_q, angle)
        predicted = _slerp_sum(t, angle)
        n = len(c_k)
        err_linear += n * (s_p + s_q - 1.0) ** 2
        err_slerp += n * (s_p + s_q - predicted) ** 2
        excess = max(excess, predicted - 1.0)
        if angle > 0:
            ts.append(t)
    if ts and excess > MIN_SLERP_EXCESS and err_slerp <= SLERP_ERROR_SHARE * err_linear:
        t = float(np.median(ts))
        evidence = (
            f"coefficient sums follow SLERP's angles (error {err_slerp:.2g} vs linear {err_linear:.2g})"
        )
        return MergeFit(names, (1 - t, t), "slerp", None, share, evidence)
    evidence = f"the two leave {share:.1%} of the nearest relative's residual; coefficient sums 1 (linear)"
    return MergeFit(names, (float(weights[0]), float(weights[1])), "linear", None, share, evidence)


def _angle(a: np.ndarray, b: np.ndarray) -> float:
    """Angle between two tensors' sampled values; 0 where SLERP would interpolate linearly."""
    den = float(np.linalg.norm(a) * np.linalg.norm(b))
    cos = float(np.dot(a, b)) / den if den > 0 else 1.0
    return 0.0 if abs(cos) > SLERP_DOT_THRESHOLD else float(np.arccos(np.clip(cos, -1.0, 1.0)))


def _slerp_sum(t: float, angle: float) -> float:
    """s_p + s_q of a SLERP at t over ``angle`` (1 for a linear interpolation)."""
    if angle == 0:
        return 1.0
    return float((np.sin((1 - t) * angle) + np.sin(t * angle)) / np.sin(angle))


def _slerp_t(s_p: float, s_q: float, angle: float) -> float:
    """The t whose SLERP coefficients have the ratio s_q / s_p (bisection; linear when angle is 0)."""
    total = s_p + s_q
    if total <= 0:
        return 0.5
    if angle == 0:
        return float(np.clip(s_q / total, 0.0, 1.0))
    lo, hi = 0.0, 1.0
    target = s_q / total
    for _ in range(60):  # the share sin(t W) / (sin((1-t) W) + sin(t W)) rises with t
        mid = (lo + hi) / 2
        a, b = np.sin((1 - mid) * angle), np.sin(mid * angle)
        if b / (a + b) < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2
