"""compressed-tensors, block-FP8 and EXL2-shaped copies of a real checkpoint, laid out as their quantisers write them.

From each format's specification (compressed-tensors' compressors, DeepSeek-V3's FP8 release, the
NVIDIA NVFP4 and OCP MX definitions), numpy + ml_dtypes only:
- ``pack-quantized`` int (W4A16 / W8A16): round-to-nearest per group or channel, symmetric or
  asymmetric; codes shifted to unsigned and packed along the input, zero points packed down the
  output; ``weight_shape`` I64 [2]; ``int-quantized`` W8A8: the int8 codes unpacked;
- ``float-quantized`` FP8 E4M3 per tensor (with a static ``input_scale``), per channel or per
  128x128 block (``weight_scale``), and block FP8 with ``weight_scale_inv`` (quant_method fp8);
- ``nvfp4-pack-quantized``: E2M1 codes two a byte, FP8 scales per 16 inputs over a global scale;
- ``mxfp4-pack-quantized``: E2M1 codes, E8M0 exponents per 32 inputs;
- EXL2: only the tensor names and shapes (the reader refuses the format, never decodes it).
Block Linears are quantised; everything else is stored BF16, as these checkpoints ship.

Each quantiser returns the stored tensors and the dequantised weight a correct reader must give
back: packing here uses explicit bit arrays and argmin over the code table, the reader shifts
and looks codes up, so a round trip checks two independent implementations.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import ml_dtypes
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
from hubscan.testbed.writers.gptq_pack import pack_bits
from hubscan.testbed.writers.safetensors_write import FLOAT_DTYPES, dtype_name, write_safetensors

BF16 = np.dtype(ml_dtypes.bfloat16)
FP8 = np.dtype(ml_dtypes.float8_e4m3fn)
FP8_MAX = 448.0
FP4_MAX = 6.0
# E2M1 codes 0..15: sign bit 3, magnitude index in bits 0-2 (the OCP and NVIDIA definition).
E2M1_VALUES = np.array([0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.0, -0.5, -1, -1.5, -2, -3, -4, -6], np.float32)

Quantised = tuple[dict[str, np.ndarray], np.ndarray]  # (stored tensors by suffix, dequantised weight)


# ---------------------------------------------------------------- compressed-tensors int


def int_quantise(
    w: np.ndarray, bits: int, group_size: int, symmetric: bool, packed: bool = True, act_order: bool = False
) -> Quantised:
    """pack-quantized (``packed``) or int-quantized int8: group_size 0 means one scale per output channel."""
    out, n_in = w.shape
    w = w.astype(np.float32)
    gs = group_size or n_in
    groups = -(-n_in // gs)
    qmin, qmax = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    g = np.arange(n_in) // gs
    if act_order:  # GPTQ actorder "group": inputs grouped by decreasing energy, g_idx stored
        order = np.argsort(-(w.astype(np.float64) ** 2).sum(axis=0), kind="stable")
        g = np.empty(n_in, np.int64)
        g[order] = np.arange(n_in) // gs
    lo = np.stack([w[:, g == k].min(axis=1) for k in range(groups)], axis=1)
    hi = np.stack([w[:, g == k].max(axis=1) for k in range(groups)], axis=1)
    if symmetric:
        scale = (np.maximum(np.abs(lo), np.abs(hi)) / qmax).astype(BF16).astype(np.float32)
        zero = np.zeros_like(scale, dtype=np.int64)
    else:
        lo, hi = np.minimum(lo, 0), np.maximum(hi, 0)
        scale = ((hi - lo) / (qmax - qmin)).astype(BF16).astype(np.float32)
        scale[scale == 0] = 1
        zero = np.clip(np.round(qmin - lo / scale), qmin, qmax).astype(np.int64)
    scale[scale == 0] = 1
    q = np.clip(np.round(w / scale[:, g]) + zero[:, g], qmin, qmax).astype(np.int64)
    deq = scale[:, g] * (q - zero[:, g]).astype(np.float32)
    if not packed:  # int-quantized: the int8 codes and their scales as they are
        stored = {"weight": q.astype(np.int8), "weight_scale": scale.astype(BF16)}
        if not symmetric:
            stored["weight_zero_point"] = zero.astype(np.int8)
        return stored, deq
    k = 32 // bits
    stored = {
        "weight_packed": pack_bits(_pad_cols(q - qmin, k), bits),
        "weight_scale": scale.astype(BF16),
        "weight_shape": np.array([out, n_in], np.int64),
    }
    if act_order:
        stored["weight_g_idx"] = g.astype(np.int32)
    if not symmetric:  # packed down the output axis: pack the transpose's rows, transpose back
        stored["weight_zero_point"] = np.ascontiguousarray(pack_bits(_pad_cols((zero - qmin).T, k), bits).T)
    return stored, deq


def _pad_cols(values: np.ndarray, k: int) -> np.ndarray:
    """Zero columns up to a multiple of k (the packer pads each row's last word)."""
    pad = -values.shape[1] % k
    return np.pad(values, ((0, 0), (0, pad))) if pad else values


# ---------------------------------------------------------------- FP8


def fp8_quantise(w: np.ndarray, granularity: str, block: int = 128) -> Quantised:
    """E4M3 values with an F32 scale per tensor, per output channel or per block x block."""
    w = w.astype(np.float32)
    out, n_in = w.shape
    if granularity == "tensor":
        scale = np.array([np.abs(w).max() / FP8_MAX], np.float32)
        full = np.full_like(w, scale[0])
    elif granularity == "channel":
        scale = (np.abs(w).max(axis=1, keepdims=True) / FP8_MAX).astype(np.float32)
        full = np.broadcast_to(scale, w.shape)
    else:
        rb, cb = -(-out // block), -(-n_in // block)
        scale = np.empty((rb, cb), np.float32)
        for i in range(rb):
            for j in range(cb):
                scale[i, j] = (
                    np.abs(w[i * block : (i + 1) * block, j * block : (j + 1) * block]).max() / FP8_MAX
                )
        full = np.repeat(np.repeat(scale, block, axis=0), block, axis=1)[:out, :n_in]
    full = np.where(full == 0, np.float32(1), full)
    scale = np.where(scale == 0, np.float32(1), scale)
    values = (w / full).astype(FP8)
    return {"weight": values, "weight_scale": scale}, values.astype(np.float32) * full


# ---------------------------------------------------------------- FP4


def _nearest_e2m1(x: np.ndarray) -> np.ndarray:
    """Code of the nearest E2M1 value (argmin over the table: no bit tricks)."""
    d = np.abs(x[..., None] - E2M1_VALUES[None, None, :])
    return np.argmin(d, axis=-1).astype(np.uint8)


def _pack_nibbles(codes: np.ndarray) -> np.ndarray:
    return (codes[:, 0::2] | (codes[:, 1::2] << 4)).astype(np.uint8)


def nvfp4_quantise(w: np.ndarray, group: int = 16) -> Quantised:
    """NVFP4: global scale 448*6/amax, FP8 group scales of amax_g/6 times it, codes of w / (s/global)."""
    w = w.astype(np.float32)
    out, n_in = w.shape
    glob = np.float32(FP8_MAX * FP4_MAX / np.abs(w).max())
    amax = np.abs(w.reshape(out, n_in // group, group)).max(axis=2)
    s8 = np.clip(amax / FP4_MAX * glob, 0, FP8_MAX).astype(FP8)
    eff = s8.astype(np.float32) / glob
    full = np.repeat(eff, group, axis=1)
    codes = _nearest_e2m1(np.where(full > 0, w / np.where(full > 0, full, 1), 0))
    deq = E2M1_VALUES[codes] * full
    return {
        "weight_packed": _pack_nibbles(codes),
        "weight_scale": s8,
        "weight_global_scale": np.array([glob]),
    }, deq


def mxfp4_quantise(w: np.ndarray, group: int = 32) -> Quantised:
    """MXFP4: per group the power of two 2^(floor(log2 amax) - 2), stored as a biased E8M0 exponent."""
    w = w.astype(np.float32)
    out, n_in = w.shape
    amax = np.abs(w.reshape(out, n_in // group, group)).max(axis=2)
    exp = np.floor(np.log2(np.where(amax > 0, amax, 1))).astype(np.int32) - 2
    e8 = np.clip(exp + 127, 0, 254).astype(np.uint8)
    full = np.repeat(np.ldexp(np.float32(1), e8.astype(np.int32) - 127).astype(np.float32), group, axis=1)
    codes = _nearest_e2m1(np.clip(w / full, -FP4_MAX, FP4_MAX))
    return {"weight_packed": _pack_nibbles(codes), "weight_scale": e8}, E2M1_VALUES[codes] * full


# ---------------------------------------------------------------- repos


def is_quantised(name: str, arr: np.ndarray) -> bool:
    """What these quantisers target: the 2-D Linear weights inside the transformer blocks."""
    r = classify(name)
    return r.kind == "weight" and r.layer is not None and arr.ndim == 2 and r.role in ATTN_ROLES | MLP_ROLES


def _ct_config(fmt: str, weights: dict[str, object], activations: dict[str, object] | None = None) -> dict:
    group: dict[str, object] = {"targets": ["Linear"], "weights": weights, "input_activations": activations}
    return {
        "quant_method": "compressed-tensors",
        "format": fmt,
        "quantization_status": "compressed",
        "config_groups": {"group_0": group},
        "ignore": ["lm_head"],
    }


def _int(bits: int, gs: int, sym: bool) -> dict[str, object]:
    strategy = "group" if gs else "channel"
    return {"num_bits": bits, "type": "int", "symmetric": sym, "strategy": strategy, "group_size": gs or None}


# scheme -> (quantiser of one matrix, quantization_config, suffix renames, card tag)
SCHEMES: dict[str, tuple[Callable[[np.ndarray], Quantised], dict, dict[str, str], str]] = {
    "w4a16": (
        lambda w: int_quantise(w, 4, 128, True),
        _ct_config("pack-quantized", _int(4, 128, True)),
        {},
        "4-bit",
    ),
    "w4a16-asym": (
        lambda w: int_quantise(w, 4, 64, False),
        _ct_config("pack-quantized", _int(4, 64, False)),
        {},
        "4-bit",
    ),
    "w8a16": (
        lambda w: int_quantise(w, 8, 0, True),
        _ct_config("pack-quantized", _int(8, 0, True)),
        {},
        "8-bit",
    ),
    "w8a8-int8": (
        lambda w: int_quantise(w, 8, 0, True, packed=False),
        _ct_config(
            "int-quantized",
            _int(8, 0, True),
            {"num_bits": 8, "type": "int", "symmetric": True, "strategy": "token", "dynamic": True},
        ),
        {},
        "int8",
    ),
    "fp8-tensor": (
        lambda w: fp8_quantise(w, "tensor"),
        _ct_config(
            "float-quantized",
            {"num_bits": 8, "type": "float", "symmetric": True, "strategy": "tensor"},
            {"num_bits": 8, "type": "float", "symmetric": True, "strategy": "tensor", "dynamic": False},
        ),
        {},
        "fp8",
    ),
    "fp8-channel": (
        lambda w: fp8_quantise(w, "channel"),
        _ct_config(
            "float-quantized", {"num_bits": 8, "type": "float", "symmetric": True, "strategy": "channel"}
        ),
        {},
        "fp8",
    ),
    "fp8-block": (
        lambda w: fp8_quantise(w, "block"),
        _ct_config(
            "float-quantized",
            {
                "num_bits": 8,
                "type": "float",
                "symmetric": True,
                "strategy": "block",
                "block_structure": [128, 128],
            },
        ),
        {},
        "fp8",
    ),
    "fp8-scale-inv": (
        lambda w: fp8_quantise(w, "block"),
        {
            "quant_method": "fp8",
            "fmt": "e4m3",
            "activation_scheme": "dynamic",
            "weight_block_size": [128, 128],
        },
        {"weight_scale": "weight_scale_inv"},
        "fp8",
    ),
    "nvfp4": (
        nvfp4_quantise,
        _ct_config(
            "nvfp4-pack-quantized",
            {"num_bits": 4, "type": "float", "symmetric": True, "strategy": "tensor_group", "group_size": 16},
        ),
        {},
        "nvfp4",
    ),
    "mxfp4": (
        mxfp4_quantise,
        _ct_config(
            "mxfp4-pack-quantized",
            {"num_bits": 4, "type": "float", "symmetric": True, "strategy": "group", "group_size": 32},
        ),
        {},
        "mxfp4",
    ),
}


def quantised_tensors(
    tensors: dict[str, np.ndarray], scheme: str
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(stored tensors, dequantised block Linears by weight name) of a whole checkpoint."""
    quantise, _, renames, _ = SCHEMES[scheme]
    out: dict[str, np.ndarray] = {}
    dequantised: dict[str, np.ndarray] = {}
    for name, arr in tensors.items():
        if is_quantised(name, arr):
            prefix = name.removesuffix(".weight")
            stored, dequantised[name] = quantise(arr)
            for suffix, value in stored.items():
                out[f"{prefix}.{renames.get(suffix, suffix)}"] = value
            if scheme == "fp8-tensor":  # W8A8 static: the activation scale is calibrated, not the weights'
                out[f"{prefix}.input_scale"] = np.array([0.0125], np.float32)
        elif dtype_name(arr) in FLOAT_DTYPES:
            out[name] = arr.astype(BF16)
        else:
            out[name] = arr
    return out, dequantised


def quantised_repo(src: Path, dst: Path, scheme: str, base_model: str | None = None) -> Path:
    """A repo of ``src`` quantised with ``scheme`` (a key of SCHEMES), config.json declaring it."""
    out, _ = quantised_tensors(load_repo_tensors(src), scheme)
    _, config_quant, _, tag = SCHEMES[scheme]
    body = f"{scheme} quantisation (compressed-tensors / FP8 layout)."
    derive_repo(src, dst, base_model, body, ["safetensors", tag, "compressed-tensors"], RELATION_QUANTIZED)
    config = json.loads((dst / "config.json").read_text())
    config["torch_dtype"] = "bfloat16"
    config["quantization_config"] = config_quant
    cards.write_json(dst / "config.json", config)
    write_safetensors(dst / SINGLE_FILE, out, None, repo_metadata(src))
    return dst


def exl2_repo(src: Path, dst: Path) -> Path:
    """An EXL2-shaped repo: each block Linear as q_weight/q_scale/q_scale_max/q_groups/q_invperm (zeros)."""
    out: dict[str, np.ndarray] = {}
    for name, arr in load_repo_tensors(src).items():
        if is_quantised(name, arr):
            prefix, (n_out, n_in) = name.removesuffix(".weight"), arr.shape
            out[f"{prefix}.q_weight"] = np.zeros((n_in * 4 // 32, n_out), np.int32)
            out[f"{prefix}.q_scale"] = np.zeros((n_in // 32 * 4 // 32, n_out), np.int32)
            out[f"{prefix}.q_scale_max"] = np.ones(n_in // 32, np.float16)
            out[f"{prefix}.q_groups"] = np.zeros(2 * (n_in // 32), np.int16)
            out[f"{prefix}.q_invperm"] = np.arange(n_in, dtype=np.int16)
        elif dtype_name(arr) in FLOAT_DTYPES:
            out[name] = arr.astype(np.float16)
        else:
            out[name] = arr
    derive_repo(src, dst, None, "EXL2 4.0 bpw.", ["safetensors", "exl2"], RELATION_QUANTIZED)
    write_safetensors(dst / SINGLE_FILE, out, None, repo_metadata(src))
    return dst
