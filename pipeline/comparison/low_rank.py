"""What the delta between two same-layout related models is on the sampled rows: which matrices it
moved, by how much, and whether it is low-rank (a merged LoRA).

A LoRA merge adds ``scale * B @ A`` (rank r) to each targeted matrix and leaves every other one
untouched. On k sampled rows x c seeded columns of a targeted matrix the delta then has numerical
rank <= min(r, k, c), while a full fine-tune or a cast moves every value by something full-rank
(training updates, rounding noise). The sketches of same-shape tensors are element-aligned (same
rows, same columns), so the delta is ``b.sketch - a.sketch`` reshaped to its rows.

Which matrices moved matters too: a cast or quantisation moves every matrix, training only those it
trained. A pair's median r is carried by its untouched matrices, so it cannot tell them apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

# Singular values below this fraction of the largest are rounding, not a direction of the delta.
# An F32 merge rounds to ~6e-8 of a weight, ~1e-5 of a 4 % delta's top singular value; a delta in
# BF16 storage carries ~0.1 of its size as noise and reads full-rank (it is then a "fine-tune").
REL_TOL = 1e-3
# A delta is low-rank when its rank is at most this share of the rank the sample can show (16 rows
# read per matrix by default: a rank-8 LoRA shows as 8 of 16, any full-rank change as 16).
MAX_RANK_SHARE = 0.5
# Share of the moved matrices whose delta must be low-rank: a merge moves only its targets, each by
# a low-rank delta; one full-rank matrix among them means someone trained it fully.
MIN_LOW_RANK_SHARE = 0.9
# The fewest sampled rows and columns a rank can be read from.
MIN_SIDE = 4


@dataclass(frozen=True)
class MatrixDelta:
    """One same-index matrix pair's delta on the sampled rows."""

    role: str
    moved: bool  # False when the sampled values are the same
    rank: int | None  # numerical rank of the delta; None when not moved or too small to tell
    full: int  # the largest rank the sample could show: min(rows, columns)
    dev: float  # 1 - Pearson r of the two sketches (0 when not moved)


@dataclass(frozen=True)
class PairDelta:
    """What the deltas of a pair's same-index matrices show together."""

    matrices: int
    moved: int
    modules: tuple[str, ...]  # roles of the moved matrices
    dev: float  # median 1 - r of the moved matrices
    rank: int | None  # median rank of the moved matrices when (nearly) all are low-rank, else None

    @property
    def partial(self) -> bool:
        """Some same-index matrices moved and the others kept every sampled value."""
        return 0 < self.moved < self.matrices

    def low_rank_reason(self) -> str:
        """The reason of a low-rank verdict: rank, modules, and how many matrices moved."""
        return (
            f"low-rank fine-tune (rank ≈ {self.rank}) of {', '.join(self.modules)}: {self.moved} of "
            f"{self.matrices} same-index matrices moved by deltas of median rank {self.rank} on the sampled "
            "rows, the rest unchanged (a merged LoRA)"
        )

    def partial_reason(self) -> str:
        """The reason of a partial fine-tune: which matrices moved, by a full-rank change."""
        return (
            f"{self.moved} of {self.matrices} same-index matrices moved ({', '.join(self.modules)}; "
            f"1 - r = {self.dev:.1e}, full-rank), the rest bit-identical: training touched them only "
            "(a cast or quantisation moves every matrix)"
        )


def matrix_delta(
    role: str, a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, rows: int
) -> MatrixDelta | None:
    """The delta of two aligned sketches of ``rows`` sampled rows each, or None when they cannot be reshaped."""
    va, vb = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if va.shape != vb.shape or rows < 1 or va.size % rows:
        return None
    delta = (vb - va).reshape(rows, va.size // rows)
    full = min(delta.shape)
    if not delta.any():
        return MatrixDelta(role, False, None, full, 0.0)
    dev = 1.0 - _pearson(va, vb)
    if full < MIN_SIDE:
        return MatrixDelta(role, True, None, full, dev)
    s = np.linalg.svd(delta, compute_uv=False)
    return MatrixDelta(role, True, int(np.count_nonzero(s > REL_TOL * s[0])), full, dev)


def pair_delta(deltas: Iterable[MatrixDelta]) -> PairDelta | None:
    """The pair's delta over its same-index matrices; None when no matrix could be compared."""
    every = list(deltas)
    if not every:
        return None
    moved = [d for d in every if d.moved]
    low = [d for d in moved if d.rank is not None and d.rank <= MAX_RANK_SHARE * d.full]
    is_low = bool(moved) and len(low) >= MIN_LOW_RANK_SHARE * len(moved)
    return PairDelta(
        matrices=len(every),
        moved=len(moved),
        modules=tuple(sorted({d.role for d in moved})),
        dev=float(np.median([d.dev for d in moved])) if moved else 0.0,
        rank=int(np.median([d.rank for d in low])) if is_low else None,
    )


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r; 0 when either side is constant (no evidence of agreement)."""
    ca, cb = a - a.mean(), b - b.mean()
    norm = float(np.linalg.norm(ca) * np.linalg.norm(cb))
    return float(ca @ cb) / norm if norm > 0 else 0.0
