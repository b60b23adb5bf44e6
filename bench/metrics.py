"""Ranking metrics the detection benchmarks share: AUROC and the true-positive rate at a false-positive rate."""

from __future__ import annotations

import math
from typing import Any


def auroc(pos: list[float], neg: list[float]) -> float:
    """Probability a positive outscores a negative (ties count half)."""
    if not pos or not neg:
        return math.nan
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def tpr_at_fpr(pos: list[float], neg: list[float], fpr: float = 0.01) -> float:
    """TPR at the lowest threshold whose FPR is at most ``fpr`` (strictly above that many negatives)."""
    allowed = math.floor(fpr * len(neg))
    ranked = sorted(neg, reverse=True)
    threshold = ranked[allowed] if allowed < len(ranked) else -math.inf
    return sum(p > threshold for p in pos) / len(pos) if pos else math.nan


def score_of(row: dict[str, Any], method: str) -> float:
    """A pair's score by one method; a method that gave none ranks below every score."""
    v = row.get(method)
    return -math.inf if v is None else float(v)
