"""compressed-tensors ``pack-quantized`` Linears (W4A16, W8A16): int codes in int32 words, rebuilt as [out, in].

Layout (compressed-tensors' PackedQuantizationCompressor and its ``pack_to_int32``):
- ``weight_packed`` I32 [out, ceil(in / k)], k = 32 // bits codes per word: each code is shifted to
  unsigned (q + 2^(bits-1)) and code j of a word sits at bits [j*bits, (j+1)*bits), low first; the
  last word of a row is zero-padded, and with 3, 5, 6 or 7 bits the word's top bits stay unused;
- ``weight_scale`` F16/BF16/F32 [out, groups] (group strategy) or [out, 1] (channel);
- ``weight_zero_point`` (asymmetric only): I32 [ceil(out / k), groups], the signed zero points
  packed the same way but down the output axis; older releases stored them unpacked, I8 [out, groups];
- ``weight_shape`` I64 [2]: the original [out, in], which the padding hides from the shapes;
- ``weight_g_idx`` I32 [in] (GPTQ with ``actorder: group`` only): the group of each input.
W[o, i] = scale[o, g(i)] * (q[o, i] - zero[o, g(i)]) with g(i) = i // group_size or g_idx[i].

Each row of the weight is one row of ``weight_packed`` and ``weight_scale``, so sampled rows are
read by range like a dense tensor's; only packed zero points are read whole.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from hubscan.pipeline.errors import FormatError
from hubscan.pipeline.readers.records import ScaledLinear, TensorHeader, logical_matrix

# The bit width a pack factor implies (32 // bits codes per word); 7 and 8 bits share 4 codes a
# word, and 8 is the one quantisers ship.
BITS_BY_FACTOR = {16: 2, 10: 3, 8: 4, 6: 5, 5: 6, 4: 8}
SCALE_DTYPES = ("F16", "BF16", "F32")


def find(
    prefix: str,
    by_name: Mapping[str, TensorHeader],
    shape: tuple[int, int],
    declared_bits: frozenset[int],
    bad: Callable[[str], FormatError],
) -> ScaledLinear:
    """The logical weight of one pack-quantized Linear, its shape from ``weight_shape``'s values.

    Raises:
        FormatError: parts of dtypes or shapes this layout does not have.
    """
    packed, scale = by_name[f"{prefix}.weight_packed"], by_name.get(f"{prefix}.weight_scale")
    zero, stored = by_name.get(f"{prefix}.weight_zero_point"), by_name.get(f"{prefix}.weight_shape")
    if scale is None:
        raise bad(f"tensor {prefix}.weight_scale is missing beside {prefix}.weight_packed")
    if packed.dtype != "I32" or len(packed.shape) != 2:
        raise bad(
            f"tensor {packed.name}: {packed.dtype}{list(packed.shape)}, pack-quantized stores I32 [out, words]"
        )
    if scale.dtype not in SCALE_DTYPES or len(scale.shape) != 2:
        raise bad(f"tensor {scale.name}: {scale.dtype}{list(scale.shape)} is not a 2-D float scale")
    out, n_in = shape
    if packed.shape[0] != out or scale.shape[0] != out:
        raise bad(
            f"tensor {packed.name}: {list(packed.shape)} and {scale.name} {list(scale.shape)} for weight_shape {list(shape)}"
        )
    bits = _bits(packed, n_in, declared_bits, bad)
    groups = scale.shape[1]
    if groups < 1 or groups > n_in:
        raise bad(f"tensor {scale.name}: {groups} groups for {n_in} inputs")
    group_size = -(-n_in // groups)
    if -(-n_in // group_size) != groups:
        raise bad(f"tensor {scale.name}: {groups} groups do not tile {n_in} inputs")
    parts: list[tuple[str, TensorHeader]] = [("values", packed), ("scale", scale)]
    whole: set[str] = set()
    if zero is not None:
        parts.append(("zero", zero))
        k = 32 // bits
        if zero.dtype == "I32" and zero.shape == (-(-out // k), groups):
            whole.add("zero")
        elif zero.dtype not in ("I8", "I32") or zero.shape != (out, groups):
            raise bad(
                f"tensor {zero.name}: {zero.dtype}{list(zero.shape)} fits no zero-point layout for {[out, groups]}"
            )
    suffix = f"-g{group_size}" if groups > 1 else "-channel"
    logical = logical_matrix(f"{prefix}.weight", f"INT{bits}{suffix}", out, n_in, packed)
    g_idx = by_name.get(f"{prefix}.weight_g_idx")
    if g_idx is not None:
        if g_idx.dtype not in ("I32", "I64") or g_idx.shape != (n_in,):
            raise bad(
                f"tensor {g_idx.name}: {g_idx.dtype}{list(g_idx.shape)} is not one group per input of {n_in}"
            )
        parts.append(("g_idx", g_idx))
        whole.add("g_idx")
    dropped = (stored.name,) if stored is not None else ()
    return ScaledLinear(logical, "int", tuple(parts), frozenset(whole), bits, group_size, dropped=dropped)


def decode(s: ScaledLinear, arrays: Mapping[str, np.ndarray], rows: np.ndarray) -> np.ndarray:
    """Rows ``rows`` of the weight as float32 from their packed words, scales and zero points.

    Raises:
        ValueError: a g_idx entry outside the scale's groups.
    """
    out, n_in = s.logical.shape
    offset = np.float32(1 << (s.bits - 1))
    q = unpack_words(arrays["values"], s.bits, n_in).astype(np.float32) - offset
    scale = arrays["scale"].astype(np.float32)
    g = np.arange(n_in) // s.group_size
    if "g_idx" in arrays:  # act-order: groups follow the quantiser's input order, not position
        g = arrays["g_idx"].astype(np.int64)
        if ((g < 0) | (g >= scale.shape[1])).any():
            raise ValueError(f"a weight_g_idx entry lies outside the {scale.shape[1]} groups")
    if "zero" not in arrays:
        return scale[:, g] * q
    if "zero" in s.whole:  # packed down the output axis: unpack the columns, then pick the rows
        zero = unpack_words(np.ascontiguousarray(arrays["zero"].T), s.bits, out)[:, rows].T
        z = zero.astype(np.float32) - offset
    else:
        z = arrays["zero"].astype(np.float32)
    return scale[:, g] * (q - z[:, g])


def unpack_words(words: np.ndarray, bits: int, count: int) -> np.ndarray:
    """The first ``count`` unsigned codes of each row of int32 words, 32 // bits per word, low bits first."""
    k = 32 // bits
    u = np.ascontiguousarray(words).astype("<i4", copy=False).view("<u4")
    shifts = (np.arange(k, dtype=np.uint32) * np.uint32(bits))[None, None, :]
    codes = (u[:, :, None] >> shifts) & np.uint32((1 << bits) - 1)
    return codes.reshape(u.shape[0], -1)[:, :count].astype(np.uint8)


def _bits(
    packed: TensorHeader, n_in: int, declared: frozenset[int], bad: Callable[[str], FormatError]
) -> int:
    """Bits per code: the declared width if the words fit it, else the one the word count implies."""
    words = packed.shape[1]
    fits = [b for k, b in BITS_BY_FACTOR.items() if -(-n_in // k) == words]
    for b in sorted(declared):
        if -(-n_in // (32 // b)) == words:
            return b
    if declared or not fits:
        said = f" (quantization_config says {sorted(declared)} bits)" if declared else ""
        raise bad(
            f"tensor {packed.name}: {words} words per row hold {n_in} inputs at no supported width{said}"
        )
    return fits[0]
