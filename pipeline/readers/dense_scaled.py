"""Weights stored unpacked at low precision beside their scales: FP8 and int8 codes, one per element.

Layouts (W = (weight - zero) * scale, zero and scale broadcast over a tensor, row, group or block):
- compressed-tensors ``float-quantized`` (and ``naive-quantized``): ``weight`` F8_E4M3 [out, in]
  beside ``weight_scale`` (F32/BF16/F16) of shape [] or [1] (per tensor), [out, 1] (per channel),
  [out, in / g] (per group) or [ceil(out / b0), ceil(in / b1)] (per block, ``block_structure``
  [b0, b1]); statically quantised activations add an ``input_scale``, which belongs to the Linear
  and is never a fingerprint.
- compressed-tensors ``int-quantized`` (W8A8 int8): ``weight`` I8 [out, in] with the same scales
  and, when asymmetric, ``weight_zero_point`` I8 shaped like the scale.
- DeepSeek-V3 / Qwen3-FP8 (``quant_method: fp8``, ``weight_block_size: [128, 128]``): ``weight``
  F8_E4M3 and ``weight_scale_inv`` F32 [ceil(out / 128), ceil(in / 128)]; despite its name it
  multiplies (DeepSeek's reference ``weight_dequant`` computes x * s).

Without its scale a row reads at the wrong magnitude (per-channel scales differ by row), so the
parts are one logical weight. Weight rows and per-row scales are read by range; others whole.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from hubscan.pipeline.errors import FormatError
from hubscan.pipeline.readers.records import ScaledLinear, TensorHeader, logical_matrix

FP8_DTYPES = {"F8_E4M3": "FP8-E4M3", "F8_E5M2": "FP8-E5M2"}
CODE_DTYPES = {**FP8_DTYPES, "I8": "INT8"}
SCALE_DTYPES = ("F32", "BF16", "F16")


def find(
    prefix: str,
    scale_suffix: str,
    by_name: Mapping[str, TensorHeader],
    declared_block: tuple[int, int] | None,
    bad: Callable[[str], FormatError],
) -> ScaledLinear:
    """The logical weight of one FP8/int8 Linear and the granularity its scale's shape says.

    Raises:
        FormatError: a weight or scale of a dtype or shape no FP8 layout has.
    """
    weight, scale = by_name[f"{prefix}.weight"], by_name[f"{prefix}.{scale_suffix}"]
    if weight.dtype not in CODE_DTYPES or len(weight.shape) != 2:
        raise bad(
            f"tensor {scale.name}: scales {weight.name} {weight.dtype}{list(weight.shape)}, not a 2-D FP8 or int8 weight"
        )
    if scale.dtype not in SCALE_DTYPES or len(scale.shape) > 2:
        raise bad(f"tensor {scale.name}: {scale.dtype}{list(scale.shape)} is not a float scale")
    out, n_in = weight.shape
    whole: frozenset[str] = frozenset({"scale"})
    group_size, block = 0, (0, 0)
    if scale.numel == 1 and len(scale.shape) < 2:
        kind = "tensor"
    elif scale.shape == (out,):  # a per-channel scale stored flat: small, read whole
        kind = "channel"
    elif len(scale.shape) == 2 and scale.shape[0] == out and scale.shape[1] == 1:
        kind, whole = "channel", frozenset()
    elif (
        len(scale.shape) == 2
        and scale.shape[0] == out
        and n_in % scale.shape[1] == 0
        and scale_suffix == "weight_scale"
    ):
        group_size = n_in // scale.shape[1]
        kind, whole = f"g{group_size}", frozenset()
    elif len(scale.shape) == 2:
        block = _block(scale, out, n_in, declared_block, bad)
        kind = f"block{block[0]}" if block[0] == block[1] else f"block{block[0]}x{block[1]}"
    else:
        raise bad(
            f"tensor {scale.name}: shape {list(scale.shape)} scales no granularity of {weight.name} {list(weight.shape)}"
        )
    logical = logical_matrix(weight.name, f"{CODE_DTYPES[weight.dtype]}-{kind}", out, n_in, weight)
    parts: tuple[tuple[str, TensorHeader], ...] = (("values", weight), ("scale", scale))
    zero = by_name.get(f"{prefix}.weight_zero_point")
    if zero is not None:
        if weight.dtype != "I8" or zero.shape != scale.shape or zero.dtype not in ("I8", "I32"):
            raise bad(f"tensor {zero.name}: {zero.dtype}{list(zero.shape)} is no zero point of {scale.name}")
        parts += (("zero", zero),)
        whole = whole | {"zero"} if "scale" in whole else whole
    return ScaledLinear(logical, "dense", parts, whole, 8, group_size, block)


def decode(s: ScaledLinear, arrays: Mapping[str, np.ndarray], rows: np.ndarray) -> np.ndarray:
    """Rows ``rows`` of the weight as float32: codes (less their zero points) times their scales."""
    values = arrays["values"].astype(np.float32)
    if "zero" in arrays:  # zero points are laid out like the scales: subtract them as a scale multiplies
        values = values - _spread(s, arrays["zero"].astype(np.float32), rows, values.shape[1])
    return values * _spread(s, arrays["scale"].astype(np.float32), rows, values.shape[1])


def _spread(s: ScaledLinear, scale: np.ndarray, rows: np.ndarray, n_in: int) -> np.ndarray:
    """A per-tensor, per-row, per-group or per-block array brought to the read rows' [rows, in]."""
    if s.block != (0, 0):
        b0, b1 = s.block
        return scale[rows // b0][:, np.arange(n_in) // b1]
    if s.group_size:
        return scale[:, np.arange(n_in) // s.group_size]
    if "scale" in s.whole:  # one scale for the whole tensor, or a flat one per output channel
        flat = scale.reshape(-1)
        return np.full((len(rows), 1), flat[0], np.float32) if flat.size == 1 else flat[rows][:, None]
    return scale  # [rows, 1]: one per output channel


def _block(
    scale: TensorHeader,
    out: int,
    n_in: int,
    declared: tuple[int, int] | None,
    bad: Callable[[str], FormatError],
) -> tuple[int, int]:
    """Rows and inputs per block: the declared size if the scale's grid fits it, else the one it implies."""
    s0, s1 = scale.shape
    if declared is not None:
        b0, b1 = declared
        if (-(-out // b0), -(-n_in // b1)) == (s0, s1):
            return b0, b1
        raise bad(f"tensor {scale.name}: shape {[s0, s1]} is not the {b0}x{b1} block grid of [{out}, {n_in}]")
    b0, b1 = -(-out // s0), -(-n_in // s1)
    if (-(-out // b0), -(-n_in // b1)) != (s0, s1):
        raise bad(f"tensor {scale.name}: shape {[s0, s1]} is no block grid of [{out}, {n_in}]")
    return b0, b1
