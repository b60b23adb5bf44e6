"""bitsandbytes 4-bit (NF4/FP4, with or without double quantisation) and 8-bit copies of a real checkpoint.

Written from the format as bitsandbytes serialises it (``QuantState.as_dict(packed=True)`` and
``Linear8bitLt``'s state dict), numpy only:
- 4-bit: each Linear's elements, row-major, in blocks of 64 scaled by their absmax and rounded
  to the nearest of 16 code levels; two codes a byte, the first in the high nibble, stored
  U8 [n/2, 1]; ``absmax`` F32 per block, or with double quantisation its mean subtracted
  (``nested_offset``) and the rest coded in 8 bits against bitsandbytes' dynamic map in blocks
  of 256 (``nested_absmax``, ``nested_quant_map``); the state as UTF-8 JSON in a U8 tensor.
- 8-bit: int8 rows scaled by each row's absmax (``SCB``) and a ``weight_format`` flag (0, row-major).
The Linears of the transformer blocks (and the pooler) are quantised, everything else is F16,
as "-bnb-4bit" uploads ship it.
"""

from __future__ import annotations

import json
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

BLOCKSIZE = 64
NESTED_BLOCKSIZE = 256
# The NF4 levels of QLoRA (Dettmers et al. 2023, appendix E): quantiles of N(0, 1) scaled to [-1, 1].
NF4 = (
    -1.0,
    -0.6961928009986877,
    -0.5250730514526367,
    -0.39491748809814453,
    -0.28444138169288635,
    -0.18477343022823334,
    -0.09105003625154495,
    0.0,
    0.07958029955625534,
    0.16093020141124725,
    0.24611230194568634,
    0.33791524171829224,
    0.44070982933044434,
    0.5626170039176941,
    0.7229568362236023,
    1.0,
)
# bitsandbytes' FP4 (1 sign, 2 exponent, 1 mantissa bit) levels, divided by their maximum 12.
FP4 = tuple(v / 12 for v in (0, 0.0625, 8, 12, 4, 6, 2, 3)) + tuple(
    -v / 12 for v in (0, 0.0625, 8, 12, 4, 6, 2, 3)
)


def dynamic_map() -> np.ndarray:
    """bitsandbytes' signed 8-bit dynamic code: 7 decades of evenly spaced fractions, plus 0 and 1."""
    values: list[float] = []
    for i in range(7):
        edges = np.linspace(0.1, 1, 2**i + 1)
        means = (edges[:-1] + edges[1:]) / 2
        values += (10.0 ** (i - 6) * means).tolist() + (-(10.0 ** (i - 6)) * means).tolist()
    values += [0.0, 1.0]
    return np.sort(np.array(values, dtype=np.float32))


def nearest(code: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Index of the nearest code level for each value (code sorted or not)."""
    order = np.argsort(code)
    s = code[order]
    i = np.clip(np.searchsorted(s, x), 1, len(s) - 1)
    left = np.abs(x - s[i - 1]) <= np.abs(s[i] - x)
    return order[np.where(left, i - 1, i)].astype(np.uint8)


def blockwise(x: np.ndarray, code: np.ndarray, blocksize: int) -> tuple[np.ndarray, np.ndarray]:
    """(codes, absmax): each block of ``x`` scaled by its absmax, rounded to the nearest level."""
    n = x.size
    pad = np.zeros(-(-n // blocksize) * blocksize, dtype=np.float32)
    pad[:n] = x
    blocks = pad.reshape(-1, blocksize)
    absmax = np.abs(blocks).max(axis=1).astype(np.float32)
    scaled = blocks / np.where(absmax == 0, 1, absmax)[:, None]
    return nearest(code, scaled.reshape(-1))[:n], absmax


def four_bit_tensors(prefix: str, w: np.ndarray, quant_type: str, double: bool) -> dict[str, np.ndarray]:
    """The state-dict entries of one 4-bit Linear ``<prefix>.weight`` of original weight ``w``."""
    code = np.array(NF4 if quant_type == "nf4" else FP4, dtype=np.float32)
    q, absmax = blockwise(w.astype(np.float32).reshape(-1), code, BLOCKSIZE)
    if q.size % 2:
        q = np.append(q, np.uint8(0))
    name = f"{prefix}.weight"
    out = {name: ((q[0::2] << 4) | q[1::2]).astype(np.uint8).reshape(-1, 1), f"{name}.quant_map": code}
    state: dict[str, object] = {"quant_type": quant_type, "blocksize": BLOCKSIZE, "dtype": "float16"}
    state["shape"] = list(w.shape)
    if double:
        offset = float(absmax.mean())
        nested = dynamic_map()
        codes, outer = blockwise(absmax - offset, nested, NESTED_BLOCKSIZE)
        out[f"{name}.absmax"] = codes
        out[f"{name}.nested_absmax"] = outer
        out[f"{name}.nested_quant_map"] = nested
        state.update(nested_blocksize=NESTED_BLOCKSIZE, nested_dtype="float32", nested_offset=offset)
    else:
        out[f"{name}.absmax"] = absmax
    out[f"{name}.quant_state.bitsandbytes__{quant_type}"] = np.frombuffer(
        json.dumps(state).encode(), np.uint8
    )
    return out


def dequantise_four_bit(parts: dict[str, np.ndarray], prefix: str) -> np.ndarray:
    """What a correct reader must rebuild from ``four_bit_tensors`` (computed here by other means)."""
    name = f"{prefix}.weight"
    key = next(k for k in parts if k.startswith(f"{name}.quant_state."))
    state = json.loads(parts[key].tobytes())
    packed = parts[name].reshape(-1)
    q = np.empty(packed.size * 2, dtype=np.uint8)
    q[0::2], q[1::2] = packed // 16, packed % 16
    n = int(np.prod(state["shape"]))
    absmax = parts[f"{name}.absmax"]
    if "nested_offset" in state:
        outer = np.repeat(parts[f"{name}.nested_absmax"], NESTED_BLOCKSIZE)[: absmax.size]
        absmax = parts[f"{name}.nested_quant_map"][absmax] * outer + np.float32(state["nested_offset"])
    scale = np.repeat(absmax.astype(np.float32), state["blocksize"])[:n]
    return (parts[f"{name}.quant_map"][q[:n]] * scale).reshape(state["shape"])


def eight_bit_tensors(prefix: str, w: np.ndarray) -> dict[str, np.ndarray]:
    """LLM.int8's row-wise absmax quantisation: weight I8, SCB F32 [out], weight_format U8."""
    w = w.astype(np.float32)
    scb = np.abs(w).max(axis=1).astype(np.float32)
    q = np.round(w * (127 / np.where(scb == 0, 1, scb))[:, None]).clip(-127, 127).astype(np.int8)
    return {f"{prefix}.weight": q, f"{prefix}.SCB": scb, f"{prefix}.weight_format": np.zeros((), np.uint8)}


def _is_linear(name: str, arr: np.ndarray) -> bool:
    """The weights bitsandbytes replaces: every nn.Linear's (blocks and pooler), never the embeddings."""
    r = classify(name)
    return r.kind == "weight" and arr.ndim == 2 and (r.role in ATTN_ROLES | MLP_ROLES or r.role == "pooler")


def quantised_repo(src: Path, dst: Path, mode: str, base_model: str | None = None) -> Path:
    """A bitsandbytes repo of ``src``: ``mode`` is "nf4", "nf4-dq", "fp4", "fp4-dq" or "int8"."""
    out: dict[str, np.ndarray] = {}
    for name, arr in load_repo_tensors(src).items():
        if _is_linear(name, arr):
            prefix = name.removesuffix(".weight")
            if mode == "int8":
                out.update(eight_bit_tensors(prefix, arr))
            else:
                out.update(four_bit_tensors(prefix, arr, mode[:3], mode.endswith("-dq")))
        elif dtype_name(arr) in FLOAT_DTYPES:
            out[name] = arr.astype(np.float16)
        else:
            out[name] = arr
    body = f"bitsandbytes {mode} quantisation."
    derive_repo(src, dst, base_model, body, ["safetensors", "bitsandbytes"], RELATION_QUANTIZED)
    config = json.loads((dst / "config.json").read_text())
    config["torch_dtype"] = "float16"
    four = mode != "int8"
    config["quantization_config"] = {
        "quant_method": "bitsandbytes",
        "load_in_4bit": four,
        "load_in_8bit": not four,
        **(
            {"bnb_4bit_quant_type": mode[:3], "bnb_4bit_use_double_quant": mode.endswith("-dq")}
            if four
            else {}
        ),
    }
    cards.write_json(dst / "config.json", config)
    write_safetensors(dst / SINGLE_FILE, out, None, repo_metadata(src))
    return dst
