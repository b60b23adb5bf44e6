"""The seed's std-profile correlation: reported next to the decisive signals, never trusted alone."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

# The projections whose per-layer std the original Pangu/Qwen claim compared.
PROFILE_ROLES = ("attn_q", "attn_k", "attn_v", "attn_o")
# A profile shorter than this has no shape to correlate (z-scoring 2 points gives ±1).
MIN_PROFILE_LAYERS = 3


def std_profile_r(
    a: Mapping[str, Sequence[float]], b: Mapping[str, Sequence[float]]
) -> tuple[float | None, int]:
    """Mean over Q/K/V/O of the Pearson of depth-z-scored std profiles; the shorter is interpolated.

    Returns (r, layers of the longer profile); r is None when no role has two usable profiles.
    """
    return std_profile_r_z(zscored(a), zscored(b))


def zscored(profile: Mapping[str, Sequence[float]]) -> dict[str, np.ndarray]:
    """Each usable role's profile z-scored over depth (computed once per model when scoring many pairs)."""
    out = {}
    for role in PROFILE_ROLES:
        values = profile.get(role)
        if values is not None and len(values) >= MIN_PROFILE_LAYERS:
            z = _zscore(np.asarray(values, dtype=np.float64))
            if z is not None:
                out[role] = z
    return out


def std_profile_r_z(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray]) -> tuple[float | None, int]:
    """std_profile_r on profiles already z-scored by ``zscored``."""
    rs: list[float] = []
    depth = 0
    for role in PROFILE_ROLES:
        x, y = a.get(role), b.get(role)
        if x is None or y is None:
            continue
        if len(x) != len(y):
            # Relative depth 0..1 on both sides, so a 3-layer profile maps onto a 12-layer one.
            n = max(len(x), len(y))
            grid = np.linspace(0.0, 1.0, n)
            x = np.interp(grid, np.linspace(0.0, 1.0, len(x)), x)
            y = np.interp(grid, np.linspace(0.0, 1.0, len(y)), y)
        r = pearson(x, y)
        if r is not None:
            rs.append(r)
            depth = max(depth, len(x))
    return (sum(rs) / len(rs) if rs else None), depth


def _zscore(v: np.ndarray) -> np.ndarray | None:
    sd = v.std()
    return None if sd == 0 or not np.isfinite(sd) else (v - v.mean()) / sd


def pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    """Pearson r of two equal-length float vectors; None when either is constant."""
    xc, yc = x - x.mean(), y - y.mean()
    den = float(np.sqrt((xc * xc).sum() * (yc * yc).sum()))
    return None if den == 0 else float((xc * yc).sum() / den)
