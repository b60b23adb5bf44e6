"""GPTQ- and AWQ-packed copies of a real checkpoint, written as the quantisers lay them out.

The Linear weights of the transformer blocks are quantised by round-to-nearest per group
(asymmetric, the range stretched to include 0 as GPTQ's quantiser does), optionally in
act-order: input channels sorted by decreasing energy (a stand-in for GPTQ's Hessian
diagonal, which needs calibration data) are grouped consecutively, so ``g_idx`` is not
monotone. Everything else is stored F16, as GPTQ and AWQ checkpoints ship it.

The packer writes bits as a little-endian bit stream built from an explicit bit array; the
reader (pipeline/readers/packed_int.py) unpacks with shifts, so a round-trip test checks two
independent implementations against each other.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hubscan.pipeline.roles import ATTN_ROLES, MLP_ROLES, classify
from hubscan.testbed.demohub import cards
from hubscan.testbed.demohub.variants import (
    RELATION_QUANTIZED,
    SINGLE_FILE,
    derive_repo,
    load_repo_tensors,
    repo_metadata,
)
from hubscan.testbed.writers.safetensors_write import FLOAT_DTYPES, dtype_name, write_safetensors

AWQ_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)


@dataclass(frozen=True)
class Quantised:
    """One Linear after round-to-nearest: ints, zero points, F16 scales and each input's group."""

    q: np.ndarray  # uint8 [out, in]
    zeros: np.ndarray  # int64 [groups, out]
    scales: np.ndarray  # float16 [groups, out]
    g_idx: np.ndarray  # int32 [in]
    bits: int

    def dequantised(self) -> np.ndarray:
        """scale * (q - zero) in float32: what a correct reader must reproduce bit for bit."""
        s = self.scales.astype(np.float32)[self.g_idx].T
        z = self.zeros.astype(np.float32)[self.g_idx].T
        return s * (self.q.astype(np.float32) - z)


def rtn_quantise(
    w: np.ndarray, bits: int, group_size: int, act_order: bool = False, min_zero: int = 0
) -> Quantised:
    """Round-to-nearest per (group, output); ``min_zero`` 1 keeps GPTQ v1's zero-minus-one >= 0."""
    out, n_in = w.shape
    w = w.astype(np.float32)
    maxq = (1 << bits) - 1
    order = (
        np.argsort(-(w.astype(np.float64) ** 2).sum(axis=0), kind="stable") if act_order else np.arange(n_in)
    )
    g_idx = np.empty(n_in, dtype=np.int32)
    g_idx[order] = np.arange(n_in) // group_size
    groups = int(g_idx.max()) + 1
    scales = np.empty((groups, out), dtype=np.float16)
    zeros = np.empty((groups, out), dtype=np.int64)
    for g in range(groups):
        cols = w[:, g_idx == g]
        lo, hi = np.minimum(cols.min(axis=1), 0), np.maximum(cols.max(axis=1), 0)
        scale = ((hi - lo) / maxq).astype(np.float16)
        scale[scale == 0] = 1  # an all-zero row: any scale reproduces it
        scales[g] = scale
        zeros[g] = np.clip(np.round(-lo / scale.astype(np.float32)), min_zero, maxq)
    s = scales.astype(np.float32)[g_idx].T
    q = np.clip(np.round(w / s) + zeros[g_idx].T, 0, maxq).astype(np.uint8)
    return Quantised(q, zeros, scales, g_idx, bits)


def pack_bits(values: np.ndarray, bits: int) -> np.ndarray:
    """Pack each row of small ints into int32 words as one little-endian bit stream."""
    n, count = values.shape
    if (count * bits) % 32:
        raise ValueError(f"{count} values of {bits} bits do not fill whole 32-bit words")
    v = values.astype(np.uint32)
    stream = ((v[:, :, None] >> np.arange(bits, dtype=np.uint32)) & 1).astype(np.uint8).reshape(n, -1)
    return np.packbits(stream, axis=1, bitorder="little").view("<u4").view("<i4")


def gptq_tensors(prefix: str, qz: Quantised, zero_offset: int = 1) -> dict[str, np.ndarray]:
    """AutoGPTQ's layout: qweight [in*bits/32, out], qzeros [groups, out*bits/32] (v1: zero - 1)."""
    mask = (1 << qz.bits) - 1
    return {
        f"{prefix}.qweight": np.ascontiguousarray(pack_bits(qz.q, qz.bits).T),
        f"{prefix}.qzeros": pack_bits((qz.zeros - zero_offset) & mask, qz.bits),
        f"{prefix}.scales": qz.scales,
        f"{prefix}.g_idx": qz.g_idx,
    }


def awq_tensors(prefix: str, qz: Quantised) -> dict[str, np.ndarray]:
    """AutoAWQ's GEMM layout: qweight [in, out/8] with the outputs of a word interleaved."""
    if qz.bits != 4:
        raise ValueError("AWQ GEMM packs 4-bit values only")
    if not np.array_equal(qz.g_idx, np.sort(qz.g_idx)):
        raise ValueError("AWQ has no g_idx: groups must be consecutive inputs")

    def interleave(a: np.ndarray) -> np.ndarray:  # column 8j+i holds output 8j+ORDER[i]
        n, m = a.shape
        return a.reshape(n, m // 8, 8)[:, :, list(AWQ_ORDER)].reshape(n, m)

    return {
        f"{prefix}.qweight": pack_bits(interleave(qz.q.T), 4),
        f"{prefix}.qzeros": pack_bits(interleave(qz.zeros), 4),
        f"{prefix}.scales": qz.scales,
    }


def _is_block_linear(name: str, arr: np.ndarray) -> bool:
    """The weights GPTQ/AWQ quantise: 2-D Linear weights inside the transformer blocks."""
    r = classify(name)
    return r.kind == "weight" and r.layer is not None and arr.ndim == 2 and r.role in ATTN_ROLES | MLP_ROLES


def quantised_repo(
    src: Path,
    dst: Path,
    scheme: str,
    bits: int,
    group_size: int,
    act_order: bool = False,
    base_model: str | None = None,
    declare_config: bool = True,
) -> Path:
    """A GPTQ or AWQ repo of ``src``; ``declare_config`` writes quantization_config to config.json."""
    out: dict[str, np.ndarray] = {}
    for name, arr in load_repo_tensors(src).items():
        if _is_block_linear(name, arr):
            prefix = name.removesuffix(".weight")
            if scheme == "GPTQ":
                out.update(gptq_tensors(prefix, rtn_quantise(arr, bits, group_size, act_order, min_zero=1)))
            else:
                out.update(awq_tensors(prefix, rtn_quantise(arr, bits, group_size)))
        elif dtype_name(arr) in FLOAT_DTYPES:
            out[name] = arr.astype(np.float16)
        else:
            out[name] = arr
    tag = "gptq" if scheme == "GPTQ" else "awq"
    body = f"{scheme} {bits}-bit, group size {group_size}{', act-order' if act_order else ''}."
    derive_repo(src, dst, base_model, body, ["safetensors", tag, "4-bit"], RELATION_QUANTIZED)
    config = json.loads((dst / "config.json").read_text())
    config["torch_dtype"] = "float16"
    if declare_config:
        config["quantization_config"] = {
            "quant_method": tag,
            "bits": bits,
            "group_size": group_size,
            **(
                {"desc_act": act_order, "sym": False, "checkpoint_format": "gptq"} if scheme == "GPTQ" else {}
            ),
            **({"version": "gemm", "zero_point": True} if scheme == "AWQ" else {}),
        }
    else:
        config.pop("quantization_config", None)
    cards.write_json(dst / "config.json", config)
    write_safetensors(dst / SINGLE_FILE, out, None, repo_metadata(src))
    return dst
