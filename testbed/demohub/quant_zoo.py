"""A zoo of quantised copies: all-MiniLM-L6-v2 and an unrelated model of exactly its shape, each
written in every quantised layout hubscan reads (GPTQ, AWQ, MLX affine, bitsandbytes 4- and 8-bit).

The unrelated model is multilingual-e5-small (a different pre-training from a different corpus)
cut to MiniLM's shape: every second block (12 → 6) and the first 30,522 rows of its word
embeddings, so every tensor of one has a same-named, same-shaped tensor in the other. Two
copies quantised the same way share every code table and layout constant and nothing else:
the negatives the rule "constants are never evidence" is tested on.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from hubscan.testbed.demohub import cards
from hubscan.testbed.demohub.realmodels import build_repo_e5_small, build_repo_minilm_l6, fetch_real_model
from hubscan.testbed.demohub.structural import relayer
from hubscan.testbed.demohub.variants import SINGLE_FILE, load_repo_tensors, repo_metadata
from hubscan.testbed.writers import bnb_write, gptq_pack, mlx_write
from hubscan.testbed.writers.safetensors_write import write_safetensors

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
OTHER = "demohub/e5-small-6L-minilm-shape"
MINILM_VOCAB = 30522
# Layout name → writer(src, dst); the dtype each rebuilt weight reports is in DTYPES.
LAYOUTS: dict[str, Callable[[Path, Path], Path]] = {
    "gptq-int4-g128": lambda s, d: gptq_pack.quantised_repo(s, d, "GPTQ", 4, 128, act_order=True),
    "awq-int4-g64": lambda s, d: gptq_pack.quantised_repo(s, d, "AWQ", 4, 64),
    "mlx-int4-g64": lambda s, d: mlx_write.quantised_repo(s, d, 4, 64),
    "mlx-int3-g32": lambda s, d: mlx_write.quantised_repo(s, d, 3, 32),
    "mlx-int8-g128": lambda s, d: mlx_write.quantised_repo(s, d, 8, 128),
    "bnb-nf4-dq": lambda s, d: bnb_write.quantised_repo(s, d, "nf4-dq"),
    "bnb-nf4": lambda s, d: bnb_write.quantised_repo(s, d, "nf4"),
    "bnb-fp4": lambda s, d: bnb_write.quantised_repo(s, d, "fp4"),
    "bnb-int8": lambda s, d: bnb_write.quantised_repo(s, d, "int8"),
}
DTYPES = {
    "gptq-int4-g128": "GPTQ-int4-g128",
    "awq-int4-g64": "AWQ-int4-g64",
    "mlx-int4-g64": "MLX-int4-g64",
    "mlx-int3-g32": "MLX-int3-g32",
    "mlx-int8-g128": "MLX-int8-g128",
    "bnb-nf4-dq": "NF4-dq",
    "bnb-nf4": "NF4",
    "bnb-fp4": "FP4",
    "bnb-int8": "INT8-bnb",
}


def base_repos(root: Path, cache: Path, scratch: Path) -> tuple[Path, Path]:
    """(all-MiniLM-L6-v2, the unrelated e5 of its shape) under ``root``, built once; the whole
    e5 it is cut from goes to ``scratch``, outside the hub folder."""
    minilm, other = minilm_repo(root, cache), root / OTHER
    if not (other / SINGLE_FILE).exists():
        full = scratch / "multilingual-e5-small"
        if not (full / SINGLE_FILE).exists():
            build_repo_e5_small(fetch_real_model(cache, "e5-small"), full)
        relayer(full, other, range(0, 12, 2), "A 6-layer multilingual text encoder.", None, "F32")
        _cut_vocab(other, MINILM_VOCAB)
    return minilm, other


def minilm_repo(root: Path, cache: Path) -> Path:
    """all-MiniLM-L6-v2 under ``root``, built once."""
    minilm = root / MINILM
    if not (minilm / SINGLE_FILE).exists():
        build_repo_minilm_l6(fetch_real_model(cache, "minilm-l6"), minilm)
    return minilm


def quantised(root: Path, src: Path, layout: str) -> Path:
    """``src`` written in ``layout`` as ``demohub/<name>-<layout>``, built once."""
    dst = root / "demohub" / f"{src.name}-{layout}"
    if not (dst / SINGLE_FILE).exists():
        LAYOUTS[layout](src, dst)
    return dst


def _cut_vocab(repo: Path, rows: int) -> None:
    """Keep the first ``rows`` rows of every vocabulary-sized tensor (config's vocab_size follows)."""
    config = json.loads((repo / "config.json").read_text())
    vocab = int(config["vocab_size"])
    tensors = {
        n: (a[:rows] if a.ndim == 2 and a.shape[0] == vocab else a)
        for n, a in load_repo_tensors(repo).items()
    }
    tensors = {n: np.ascontiguousarray(a) for n, a in tensors.items()}
    write_safetensors(repo / SINGLE_FILE, tensors, None, repo_metadata(repo))
    config["vocab_size"] = rows
    cards.write_json(repo / "config.json", config)
