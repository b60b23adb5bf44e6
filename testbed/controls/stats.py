"""Statistics of a control checkpoint that show it was trained, and exact drift between two of them.

Pure numpy on the tensors as written. At BERT's init every LayerNorm gain is exactly 1, every
per-dimension std of the word embeddings is 0.02 up to sampling noise (spread ~1/sqrt(2*rows)),
and every matrix is Gaussian (excess kurtosis 0); training moves all three.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

EMBED = "bert.embeddings.word_embeddings.weight"
EMBED_NORM = "bert.embeddings.LayerNorm.weight"


def excess_kurtosis(x: np.ndarray) -> float:
    """Fourth standardised moment minus 3 (0 for a Gaussian)."""
    x = x.astype(np.float64).ravel()
    z = (x - x.mean()) / x.std()
    return float((z**4).mean() - 3.0)


def trained_stats(state: Mapping[str, np.ndarray]) -> dict[str, float]:
    """The figures that are flat at init: gain spread, embedding dim-std spread, matrix kurtosis."""
    gains = [v for k, v in state.items() if k.endswith("LayerNorm.weight")]
    dim_std = state[EMBED].astype(np.float64).std(axis=0)
    matrices = [v for k, v in state.items() if v.ndim == 2 and k.startswith("bert.encoder.")]
    kurt = [excess_kurtosis(m) for m in matrices]
    return {
        "embed_gain_sd": float(state[EMBED_NORM].std()),
        "gain_abs_dev_mean": float(np.mean([np.abs(g - 1.0).mean() for g in gains])),
        "embed_dim_std_cv": float(dim_std.std() / dim_std.mean()),
        "embed_dim_std_mean": float(dim_std.mean()),
        "matrix_kurtosis_median": float(np.median(kurt)),
        "matrix_kurtosis_max": float(np.max(kurt)),
    }


def init_dim_std_cv(rows: int) -> float:
    """Spread (sd / mean) of per-dimension std that sampling alone gives a Gaussian table of ``rows`` rows."""
    return 1.0 / np.sqrt(2.0 * rows)


def weight_drift(base: Mapping[str, np.ndarray], other: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Exact (all values) Pearson r and relative change of every same-named encoder matrix, summarised."""
    rs, rel = [], []
    for k, a in base.items():
        if a.ndim != 2 or not k.startswith("bert.encoder.") or k not in other:
            continue
        x, y = a.astype(np.float64).ravel(), other[k].astype(np.float64).ravel()
        rs.append(float(np.corrcoef(x, y)[0, 1]))
        rel.append(float(np.linalg.norm(y - x) / np.linalg.norm(x)))
    return {
        "matrix_r_median": float(np.median(rs)),
        "matrix_r_min": float(np.min(rs)),
        "rel_change_median": float(np.median(rel)),
    }
