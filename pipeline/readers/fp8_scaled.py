"""FP8 weights with their scales: compressed-tensors ``float-quantized`` and block FP8 ``weight_scale_inv``.

Layouts (W = float(weight) * scale, the scale broadcast over its tensor, row, group or block):
- compressed-tensors: ``weight`` F8_E4M3 [out, in] beside ``weight_scale`` (F32/BF16/F16) of
  shape [] or [1] (per tensor), [out, 1] (per channel), [out, in / g] (per group) or
  [ceil(out / b0), ceil(in / b1)] (per block, ``block_structure`` [b0, b1]); statically quantised
  activations add an ``input_scale``, which belongs to the Linear and is never a fingerprint.
- DeepSeek-V3 / Qwen3-FP8 (``quant_method: fp8``, ``weight_block_size: [128, 128]``): ``weight``
  F8_E4M3 and ``weight_scale_inv`` F32 [ceil(out / 128), ceil(in / 128)]; despite its name it
  multiplies (DeepSeek's reference ``weight_dequant`` computes x * s).

Without its scale an FP8 row reads at the wrong magnitude (per-channel scales differ by row), so the
pair is one logical weight. Weight rows and per-row scales are read by range; block scales whole.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from pipeline.errors import FormatError
from pipeline.readers.records import ScaledLinear, TensorHeader

FP8_DTYPES = {"F8_E4M3": "FP8-E4M3", "F8_E5M2": "FP8-E5M2"}
SCALE_DTYPES = ("F32", "BF16", "F16")
# The original weights were BF16 (every FP8 release is cast from it): the logical size is that.
LOGICAL_ITEMSIZE = 2


def find(
    prefix: str,
    scale_suffix: str,
    by_name: Mapping[str, TensorHeader],
    declared_block: tuple[int, int] | None,
    bad: Callable[[str], FormatError],
) -> ScaledLinear:
    """The logical weight of one FP8 Linear and the granularity its scale's shape says.

    Raises:
        FormatError: a weight or scale of a dtype or shape no FP8 layout has.
    """
    weight, scale = by_name[f"{prefix}.weight"], by_name[f"{prefix}.{scale_suffix}"]
    if weight.dtype not in FP8_DTYPES or len(weight.shape) != 2:
        raise bad(
            f"tensor {scale.name}: scales {weight.name} {weight.dtype}{list(weight.shape)}, not a 2-D FP8 weight"
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
    logical = TensorHeader(
        name=weight.name,
        dtype=f"{FP8_DTYPES[weight.dtype]}-{kind}",
        shape=(out, n_in),
        file=weight.file,
        start=weight.start,
        nbytes=out * n_in * LOGICAL_ITEMSIZE,
        row_bytes=n_in * LOGICAL_ITEMSIZE,
    )
    dropped = tuple(n for s in ("input_scale",) if (n := f"{prefix}.{s}") in by_name)
    parts = (("values", weight), ("scale", scale))
    return ScaledLinear(logical, "fp8", parts, whole, 8, group_size, block, dropped)


def decode(s: ScaledLinear, arrays: Mapping[str, np.ndarray], rows: np.ndarray) -> np.ndarray:
    """Rows ``rows`` of the weight as float32: FP8 values times their scales."""
    values = arrays["values"].astype(np.float32)
    scale = arrays["scale"].astype(np.float32)
    n_in = s.logical.shape[1]
    if s.block != (0, 0):
        b0, b1 = s.block
        return values * scale[rows // b0][:, np.arange(n_in) // b1]
    if s.group_size:
        return values * scale[:, np.arange(n_in) // s.group_size]
    if "scale" in s.whole:  # one scale for the whole tensor, or a flat one per output channel
        flat = scale.reshape(-1)
        return values * (flat[0] if flat.size == 1 else flat[rows][:, None])
    return values * scale  # [rows, 1]: one per output channel


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
