"""Attention spectra on real weights: invariant to what a copier may do, and where they stop being so.

SmolLM2-135M (a real Llama checkpoint, GQA 9 query / 3 KV heads, pre-norm) from the testbed; the
re-parameterisations are applied here with numpy, and checked to keep the function where it matters.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from hubscan.pipeline.comparison import spectra as sp
from hubscan.testbed.demohub.variants import load_repo_tensors

SMOL_4L = "demohub/SmolLM2-135M-4L"
HEADS, KV, DH = 9, 3, 64


@pytest.fixture(scope="module")
def layers(testbed):
    if not (testbed / SMOL_4L).is_dir():
        pytest.skip(f"{SMOL_4L} not in this testbed")
    t = load_repo_tensors(testbed / SMOL_4L)
    out = []
    for i in range(4):
        p = f"model.layers.{i}."
        q, k, v, o = (t[f"{p}self_attn.{n}_proj.weight"].astype(np.float64) for n in "qkvo")
        out.append({"q": q, "k": k, "v": v, "o": o, "g": t[f"{p}input_layernorm.weight"].astype(np.float64)})
    return out


def _reparameterise(layer: dict, seed: int) -> tuple[dict, np.ndarray]:
    """Permute hidden units, KV groups, query heads within their group and in-head dims; rescale Q/K, V/O."""
    rng = np.random.default_rng(seed)
    hidden = rng.permutation(layer["q"].shape[1])
    groups = rng.permutation(KV)
    q_heads = np.concatenate([g * (HEADS // KV) + rng.permutation(HEADS // KV) for g in groups])
    # Q and K share in-head orders only per group: K's order is drawn per KV head and each query head of the
    # group uses the same one, so Q^h's rows follow K^g's.
    k_rows = [g * DH + rng.permutation(DH) for g in groups]
    q_rows = np.concatenate([h * DH + (k_rows[list(groups).index(h // 3)] - (h // 3) * DH) for h in q_heads])
    v_rows = np.concatenate([g * DH + rng.permutation(DH) for g in groups])
    c, c2 = 3.0, 0.25
    q = layer["q"][q_rows][:, hidden] * c
    k = layer["k"][np.concatenate(k_rows)][:, hidden] / c
    v = layer["v"][v_rows][:, hidden] * c2
    # O's input columns follow each query head's V group: head h of the copy reads V group groups[h//3]
    o_cols = np.concatenate([v_rows[list(groups).index(h // 3) * DH : (list(groups).index(h // 3) + 1) * DH]
                             - (h // 3) * DH + h * DH for h in q_heads])  # fmt: skip
    o = layer["o"][hidden][:, o_cols] / c2
    return {"q": q, "k": k, "v": v, "o": o}, hidden


def _attention(m: dict, x: np.ndarray) -> np.ndarray:
    """Grouped-query attention output of one layer (no RoPE: the bilinear forms are what is tested)."""
    outs = []
    for h in range(HEADS):
        g = h // (HEADS // KV)
        q = x @ m["q"][h * DH : (h + 1) * DH].T
        k = x @ m["k"][g * DH : (g + 1) * DH].T
        v = x @ m["v"][g * DH : (g + 1) * DH].T
        a = np.exp(q @ k.T / 8.0 - (q @ k.T / 8.0).max(1, keepdims=True))
        outs.append((a / a.sum(1, keepdims=True)) @ v)
    return np.concatenate(outs, axis=1) @ m["o"].T


def _spectra(m: dict) -> sp.HeadSpectra:
    return sp.head_spectra(m["q"], m["k"], m["v"], m["o"], HEADS, KV)


def test_the_reparameterisation_keeps_the_function(layers):
    # guards the test itself: a wrong group bookkeeping would not be function-preserving
    x = np.random.default_rng(0).standard_normal((5, 576))
    m, (r, hidden) = layers[1], _reparameterise(layers[1], seed=1)
    assert np.allclose(_attention(m, x)[:, hidden], _attention(r, x[:, hidden]), atol=1e-9)


def test_spectra_are_invariant_to_permutations_of_hidden_units_and_grouped_heads_and_to_rescaling(layers):
    base = [_spectra(m) for m in layers]
    copy = [_spectra(_reparameterise(m, seed=i)[0]) for i, m in enumerate(layers)]
    # per-head spectra are the same set, in another order
    for a, b in zip(base, copy, strict=True):
        assert np.allclose(np.sort(a.qk, axis=0), np.sort(b.qk, axis=0), atol=1e-8)
        assert np.allclose(np.sort(a.ov, axis=0), np.sort(b.ov, axis=0), atol=1e-8)
    test = sp.spectra_test(base, copy, [(i, i) for i in range(4)], HEADS, KV)
    assert test.statistic == sp.MAX_Z and test.log10_p < -50
    assert max(test.decoy_r) < 0.9  # other layers of the same model do not look like copies


def test_a_pre_norm_gain_rescale_moves_the_spectra(layers):
    """RMSNorm gain g*s with Q/K/V input columns /s computes the same function; the spectra move."""
    s = np.exp(np.random.default_rng(2).standard_normal(576))
    x = np.random.default_rng(3).standard_normal((4, 576))
    n = x / np.sqrt((x * x).mean(1, keepdims=True))
    m = layers[2]
    assert np.allclose((n * m["g"]) @ m["q"].T, (n * m["g"] * s) @ (m["q"] / s).T)
    base = [_spectra(m) for m in layers]
    moved = [_spectra({**m, "q": m["q"] / s, "k": m["k"] / s, "v": m["v"] / s}) for m in layers]
    assert np.abs(base[2].qk - moved[2].qk).max() > 0.1  # not invariant
    test = sp.spectra_test(base, moved, [(i, i) for i in range(4)], HEADS, KV)
    assert 0.9 < math.tanh(test.statistic) < 0.995


def test_grouped_heads_must_be_declared(layers):
    m = layers[0]
    with pytest.raises(ValueError, match="does not fit 9/9 heads"):
        sp.head_spectra(m["q"], m["k"], m["v"], m["o"], HEADS, HEADS)


def test_one_layer_gives_no_null(layers):
    one = [_spectra(layers[0])]
    with pytest.raises(ValueError, match="2\\+ layer pairs"):
        sp.spectra_test(one, one, [(0, 0)], HEADS, KV)
