"""Weight-space merges as mergekit defines them (linear, SLERP, task arithmetic, TIES, DARE), in numpy.

Written from the methods' published definitions (Wortsman et al. 2022 model soups; Ilharco et al.
2023 task arithmetic; Yadav et al. 2023 TIES; Yu et al. 2024 DARE) and mergekit's documented
options, so the testbed holds merges made the way people make them on the Hub:

- linear: sum of w_i * theta_i over sum of w_i (mergekit normalises the weights by default);
- SLERP: spherical interpolation per tensor between two models, the angle taken between the
  normalised flattened tensors, falling back to linear when they are nearly parallel;
- task arithmetic: base + sum of w_i * (theta_i - base);
- TIES: task vectors trimmed to their largest ``density`` share by magnitude, a sign elected per
  element from the weighted sum, then the weighted mean of the agreeing task vectors;
- DARE: task vectors kept at random with probability ``density`` and rescaled by 1 / density,
  then summed (dare_linear) or put through TIES' sign election (dare_ties).

Only float matrices and vectors of equal shape are merged; everything else (integer buffers) is
taken from the first model, as mergekit does for tensors it cannot merge.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence

import numpy as np

# mergekit's SLERP falls back to linear interpolation above this |cosine| (nearly parallel tensors).
SLERP_DOT_THRESHOLD = 0.9995
METHODS = ("linear", "slerp", "task_arithmetic", "ties", "dare_ties", "dare_linear")


def merge_tensors(
    models: Sequence[Mapping[str, np.ndarray]],
    method: str,
    weights: Sequence[float],
    base: Mapping[str, np.ndarray] | None = None,
    density: float = 1.0,
    t: float = 0.5,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Merge ``models`` tensor by tensor (float32 out; the caller casts). ``base`` for task-vector methods."""
    if method not in METHODS:
        raise ValueError(f"unknown merge method {method!r}; known: {', '.join(METHODS)}")
    if method in ("task_arithmetic", "ties", "dare_ties", "dare_linear") and base is None:
        raise ValueError(f"{method} needs a base model")
    out: dict[str, np.ndarray] = {}
    for name, first in models[0].items():
        arrays = [m.get(name, first) for m in models]
        if any(name not in m for m in models) or not _mergeable(
            arrays, base[name] if base is not None else None
        ):
            out[name] = first
            continue
        values = [a.astype(np.float32) for a in arrays]
        if method == "linear":
            out[name] = linear(values, weights)
        elif method == "slerp":
            out[name] = slerp(values[0], values[1], t)
        else:
            assert base is not None
            rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
            out[name] = task_vector_merge(
                values, base[name].astype(np.float32), method, weights, density, rng
            )
    return out


def _mergeable(arrays: Sequence[np.ndarray], base: np.ndarray | None) -> bool:
    """Float tensors of one shape in every model (and the base)."""
    shapes = {a.shape for a in arrays} | ({base.shape} if base is not None else set())
    return (
        len(shapes) == 1 and all(np.issubdtype(a.dtype, np.floating) for a in arrays) and arrays[0].size > 1
    )


def linear(values: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """Weighted mean (weights normalised to sum 1)."""
    w = np.asarray(weights, dtype=np.float64)
    total = sum(float(wi) * v.astype(np.float64) for wi, v in zip(w, values, strict=True))
    return (total / w.sum()).astype(np.float32)


def slerp(v0: np.ndarray, v1: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation from v0 (t = 0) to v1 (t = 1) along the angle of the normalised tensors."""
    a, b = v0.astype(np.float64).ravel(), v1.astype(np.float64).ravel()
    norms = float(np.linalg.norm(a) * np.linalg.norm(b))
    dot = float(np.dot(a, b)) / norms if norms > 0 else 1.0  # a zero tensor: interpolate linearly
    if abs(dot) > SLERP_DOT_THRESHOLD:
        return ((1 - t) * a + t * b).reshape(v0.shape).astype(np.float32)
    theta = np.arccos(dot)
    s0 = np.sin((1 - t) * theta) / np.sin(theta)
    s1 = np.sin(t * theta) / np.sin(theta)
    return (s0 * a + s1 * b).reshape(v0.shape).astype(np.float32)


def task_vector_merge(
    values: Sequence[np.ndarray],
    base: np.ndarray,
    method: str,
    weights: Sequence[float],
    density: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """base + the merged task vectors by ``method`` (task_arithmetic, ties, dare_ties, dare_linear)."""
    base64 = base.astype(np.float64)
    taus = [v.astype(np.float64) - base64 for v in values]
    if method == "ties":
        taus = [_trim(tau, density) for tau in taus]
    elif method.startswith("dare"):
        taus = [_drop_and_rescale(tau, density, rng) for tau in taus]
    w = [float(x) for x in weights]
    if method in ("task_arithmetic", "dare_linear"):
        merged = sum(wi * tau for wi, tau in zip(w, taus, strict=True))
    else:
        merged = _elect_and_mean(taus, w)
    return (base64 + merged).astype(np.float32)


def _trim(tau: np.ndarray, density: float) -> np.ndarray:
    """Keep the ``density`` share of entries largest in magnitude, zero the rest."""
    k = round(density * tau.size)
    if k >= tau.size:
        return tau
    out = np.zeros_like(tau)
    if k > 0:
        flat = np.abs(tau).ravel()
        keep = np.argpartition(flat, tau.size - k)[tau.size - k :]
        out.ravel()[keep] = tau.ravel()[keep]
    return out


def _drop_and_rescale(tau: np.ndarray, density: float, rng: np.random.Generator) -> np.ndarray:
    """Keep each entry with probability ``density``, rescaled by 1 / density (DARE)."""
    keep = rng.random(tau.shape) < density
    return np.where(keep, tau / density, 0.0)


def _elect_and_mean(taus: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """TIES' merge: the sign of the weighted sum wins; agreeing entries are averaged by weight."""
    weighted = [w * tau for w, tau in zip(weights, taus, strict=True)]
    sign = np.sign(sum(weighted))
    agree = [(np.sign(tau) == sign) & (tau != 0) for tau in taus]
    num = sum(np.where(a, wt, 0.0) for a, wt in zip(agree, weighted, strict=True))
    den = sum(np.where(a, w, 0.0) for a, w in zip(agree, weights, strict=True))
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
