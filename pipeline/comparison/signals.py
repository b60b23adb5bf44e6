"""The pair signals: names, which ones decide a flag, and the columns each one fills in ``pairs``.

Why several: on real weights the per-layer std profile rates an unrelated same-shape pair
(all-MiniLM-L6 vs e5-small, 0.944) above a related one (vs paraphrase-L3, 0.832), so it is
reported but never decides. Element-aligned sketches expose copies and fine-tunes; per-hidden-
dimension statistics and token-aligned embedding rows expose cousins whose matrices are at chance.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Signal:
    """One pair signal: a Pearson-like value, higher meaning more related."""

    name: str
    decisive: bool  # enters the combined p-value; False = shown with its background only
    chance_prior: bool  # unrelated models sit at chance (their hidden bases are arbitrary)
    what: str
    n_counts: str  # what the signal's ``_n`` column counts


SIGNAL_TABLE: tuple[Signal, ...] = (
    Signal(
        "std_profile", False, False, "per-layer std of Q/K/V/O, z-scored over depth, interpolated", "layers"
    ),
    Signal("sketch", True, True, "element-aligned sampled values, best layer match, median", "tensor pairs"),
    Signal("gain", True, True, "embedding LayerNorm gain per hidden dimension", "dimensions"),
    Signal("dim_std", True, True, "word-embedding std per hidden dimension (sampled rows)", "dimensions"),
    Signal("col_norms", True, True, "input-column norms of q/k/v/up/gate, best layer pair", "roles"),
    Signal("tokens", True, True, "embedding rows aligned by token string", "shared tokens"),
    # Survives permuted hidden units, neurons and heads, and rescaled Q/K, V/O: a sorted vector
    # keeps its shape. Decisive: unrelated same-shape pairs sit far below even the same-
    # distribution null it is tested against (README, "Re-parameterised copies").
    Signal("sorted", True, True, "whole 1-D tensors and embedding dim-std, sorted", "vectors"),
)
SIGNALS: tuple[str, ...] = tuple(s.name for s in SIGNAL_TABLE)
DECISIVE: tuple[str, ...] = tuple(s.name for s in SIGNAL_TABLE if s.decisive)


def signal_columns(name: str) -> tuple[str, str, str, str, str]:
    """The five ``pairs`` columns of one signal: value, n, background low/high (5–95 %), p-value."""
    return (name, f"{name}_n", f"{name}_bg_lo", f"{name}_bg_hi", f"{name}_p")
