"""Element types of dense formats, decoded with numpy and ml_dtypes (no bit tricks)."""

from __future__ import annotations

import ml_dtypes
import numpy as np

# safetensors dtype names → numpy dtypes (little-endian, as the format mandates).
SAFETENSORS_DTYPES: dict[str, np.dtype] = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype(ml_dtypes.bfloat16),
    "F8_E4M3": np.dtype(ml_dtypes.float8_e4m3fn),
    "F8_E5M2": np.dtype(ml_dtypes.float8_e5m2),
    "I64": np.dtype("<i8"),
    "U32": np.dtype("<u4"),  # MLX packs its quantised weights in uint32 words
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}


def decode_dense(raw: bytes | memoryview, dtype: np.dtype, count: int, n_cols: int) -> np.ndarray:
    """Decode ``count`` rows of ``n_cols`` elements to float32.

    Raises:
        ValueError: the bytes do not hold exactly that many elements.
    """
    expected = count * n_cols * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(f"expected {expected} bytes for {count}x{n_cols} {dtype}, got {len(raw)}")
    return np.frombuffer(raw, dtype=dtype).astype(np.float32).reshape(count, n_cols)
