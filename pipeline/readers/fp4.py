"""FP4 (E2M1) weights of compressed-tensors: NVFP4 and MXFP4, rebuilt as [out, in].

Layouts (compressed-tensors' ``pack_fp4_to_uint8`` and its NVFP4/MXFP4 compressors):
- ``weight_packed`` U8 [out, in / 2]: two E2M1 codes a byte, the even input in the low nibble;
  a code is sign (bit 3) and an index into the magnitudes 0, 0.5, 1, 1.5, 2, 3, 4, 6.
- NVFP4 (``nvfp4-pack-quantized``): ``weight_scale`` F8_E4M3 [out, in / 16], one per 16 inputs,
  and ``weight_global_scale`` F32 [1], which the group scales are divided by:
  W = code * (scale / global_scale). (The quantiser sets global = 448 * 6 / amax, so the FP8
  scales use their whole range.)
- MXFP4 (``mxfp4-pack-quantized``, OCP microscaling): ``weight_scale`` U8 [out, in / 32] holding
  E8M0 exponents: W = code * 2^(e - 127); e = 255 is NaN.
Rows of the codes and of the group scales are rows of the weight: read by range.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from hubscan.pipeline.errors import FormatError
from hubscan.pipeline.readers.records import ScaledLinear, TensorHeader, logical_matrix

E2M1 = np.array(
    [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0], np.float32
)
# Inputs per scale the two specifications fix; other sizes are read but named with their group.
NVFP4_GROUP, MXFP4_GROUP = 16, 32
E8M0_BIAS, E8M0_NAN = 127, 255


def find(prefix: str, by_name: Mapping[str, TensorHeader], bad: Callable[[str], FormatError]) -> ScaledLinear:
    """The logical weight of one FP4 Linear: NVFP4 with an FP8 scale and a global one, MXFP4 with E8M0.

    Raises:
        FormatError: parts of dtypes or shapes neither layout has.
    """
    packed, scale = by_name[f"{prefix}.weight_packed"], by_name.get(f"{prefix}.weight_scale")
    glob = by_name.get(f"{prefix}.weight_global_scale")
    if scale is None:
        raise bad(f"tensor {prefix}.weight_scale is missing beside {prefix}.weight_packed")
    if len(packed.shape) != 2 or len(scale.shape) != 2 or scale.shape[0] != packed.shape[0]:
        raise bad(
            f"tensor {packed.name}: {list(packed.shape)} with {scale.name} {list(scale.shape)} is not an FP4 layout"
        )
    out, n_in = packed.shape[0], 2 * packed.shape[1]
    if scale.shape[1] < 1 or n_in % scale.shape[1]:
        raise bad(f"tensor {scale.name}: {scale.shape[1]} groups do not tile {n_in} inputs")
    group = n_in // scale.shape[1]
    parts: list[tuple[str, TensorHeader]] = [("values", packed), ("scale", scale)]
    if scale.dtype == "F8_E4M3" and glob is not None:
        if glob.dtype not in ("F32", "BF16", "F16") or glob.numel != 1:
            raise bad(f"tensor {glob.name}: {glob.dtype}{list(glob.shape)} is not one float")
        codec, name, standard = "nvfp4", "NVFP4", NVFP4_GROUP
        parts.append(("global", glob))
    elif scale.dtype == "U8" and glob is None:
        codec, name, standard = "mxfp4", "MXFP4", MXFP4_GROUP
    else:
        has = "with" if glob is not None else "without"
        raise bad(
            f"tensor {scale.name}: {scale.dtype} scales {has} a global scale fit neither NVFP4 nor MXFP4"
        )
    logical = logical_matrix(
        f"{prefix}.weight", name if group == standard else f"{name}-g{group}", out, n_in, packed
    )
    dropped = tuple(n for n in (f"{prefix}.weight_shape",) if n in by_name)
    whole = frozenset({"global"}) if codec == "nvfp4" else frozenset()
    return ScaledLinear(logical, codec, tuple(parts), whole, 4, group, dropped=dropped)


def decode(s: ScaledLinear, arrays: Mapping[str, np.ndarray], rows: np.ndarray) -> np.ndarray:
    """Rows ``rows`` of the weight as float32: E2M1 codes times their group's scale.

    Raises:
        ValueError: an MXFP4 scale is the NaN exponent.
    """
    packed = arrays["values"]
    codes = np.stack((packed & 0x0F, packed >> 4), axis=-1).reshape(packed.shape[0], -1)
    values = E2M1[codes]
    g = np.arange(s.logical.shape[1]) // s.group_size
    if s.codec == "nvfp4":
        scale = arrays["scale"].astype(np.float32) / arrays["global"].astype(np.float32).reshape(-1)[0]
    else:
        e = arrays["scale"]
        if (e == E8M0_NAN).any():
            raise ValueError("an E8M0 group scale is 255, the NaN exponent")
        scale = np.ldexp(np.float32(1), e.astype(np.int32) - E8M0_BIAS).astype(np.float32)
    return values * scale[:, g]
