"""MLX affine-quantised copies of a real checkpoint, laid out as mlx-lm saves them.

Per group of ``group_size`` consecutive inputs of each row: scale = (max - min) / (2^bits - 1),
bias = min, q = round((w - bias) / scale); the values of a row are written as one little-endian
bit stream into uint32 words (value k at bits [k * bits, (k + 1) * bits), straddling words at
3, 5 and 6 bits); scales and biases are stored in the model's float dtype (F16 here). Every
Linear and Embedding whose row length the group size divides is quantised, as
``mlx.nn.quantize``'s default predicate does; config.json carries ``quantization`` and
``quantization_config`` ({group_size, bits}), as mlx-lm writes them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hubscan.pipeline.roles import MATRIX_ROLES, classify
from hubscan.testbed.demohub import cards
from hubscan.testbed.demohub.variants import (
    RELATION_QUANTIZED,
    SINGLE_FILE,
    derive_repo,
    load_repo_tensors,
    repo_metadata,
)
from hubscan.testbed.writers.safetensors_write import FLOAT_DTYPES, dtype_name, write_safetensors


@dataclass(frozen=True)
class Affine:
    """One quantised matrix: its codes, and F16 scales and biases per (row, group)."""

    q: np.ndarray  # uint8 [out, in]
    scales: np.ndarray  # float16 [out, in / group]
    biases: np.ndarray  # float16 [out, in / group]
    group_size: int

    def dequantised(self) -> np.ndarray:
        """scales * q + biases in float32: what a correct reader must rebuild."""
        s = np.repeat(self.scales.astype(np.float32), self.group_size, axis=1)
        b = np.repeat(self.biases.astype(np.float32), self.group_size, axis=1)
        return s * self.q.astype(np.float32) + b


def quantise(w: np.ndarray, bits: int, group_size: int) -> Affine:
    """Min/max affine quantisation per (row, group), scales and biases rounded to F16 first."""
    out, n_in = w.shape
    g = w.astype(np.float32).reshape(out, n_in // group_size, group_size)
    lo, hi = g.min(axis=2), g.max(axis=2)
    maxq = (1 << bits) - 1
    scales = ((hi - lo) / maxq).astype(np.float16)
    scales[scales == 0] = 1  # a constant group: any scale reproduces it
    biases = lo.astype(np.float16)
    s, b = scales.astype(np.float32)[:, :, None], biases.astype(np.float32)[:, :, None]
    q = np.clip(np.round((g - b) / s), 0, maxq).astype(np.uint8).reshape(out, n_in)
    return Affine(q, scales, biases, group_size)


def pack_rows(q: np.ndarray, bits: int) -> np.ndarray:
    """Each row's values as one little-endian bit stream in uint32 words, built bit by bit."""
    n, count = q.shape
    if (count * bits) % 32:
        raise ValueError(f"{count} values of {bits} bits do not fill whole uint32 words")
    stream = ((q[:, :, None].astype(np.uint32) >> np.arange(bits, dtype=np.uint32)) & 1).astype(np.uint8)
    return np.packbits(stream.reshape(n, -1), axis=1, bitorder="little").view("<u4")


def _is_quantised(name: str, arr: np.ndarray, group_size: int) -> bool:
    r = classify(name)
    return r.kind == "weight" and arr.ndim == 2 and r.role in MATRIX_ROLES and arr.shape[1] % group_size == 0


def quantised_repo(src: Path, dst: Path, bits: int, group_size: int, base_model: str | None = None) -> Path:
    """An MLX repo of ``src`` quantised to ``bits`` with ``group_size`` (the rest F16)."""
    out: dict[str, np.ndarray] = {}
    for name, arr in load_repo_tensors(src).items():
        if _is_quantised(name, arr, group_size):
            prefix = name.removesuffix(".weight")
            a = quantise(arr, bits, group_size)
            out.update(
                {name: pack_rows(a.q, bits), f"{prefix}.scales": a.scales, f"{prefix}.biases": a.biases}
            )
        elif dtype_name(arr) in FLOAT_DTYPES:
            out[name] = arr.astype(np.float16)
        else:
            out[name] = arr
    body = f"MLX affine {bits}-bit, group size {group_size}."
    derive_repo(src, dst, base_model, body, ["mlx", "safetensors"], RELATION_QUANTIZED)
    config = json.loads((dst / "config.json").read_text())
    config["torch_dtype"] = "float16"
    config["quantization"] = config["quantization_config"] = {"group_size": group_size, "bits": bits}
    cards.write_json(dst / "config.json", config)
    write_safetensors(dst / SINGLE_FILE, out, None, {**repo_metadata(src), "format": "mlx"})
    return dst
