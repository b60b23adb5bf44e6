"""Write GGUF files from numpy arrays: for the variant generator and tests, never the scan path."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
from gguf import (
    GGML_QUANT_SIZES,
    MODEL_ARCH,
    MODEL_ARCH_NAMES,
    GGMLQuantizationType,
    GGUFValueType,
    GGUFWriter,
    Keys,
    TensorNameMap,
    get_tensor_name_map,
)
from gguf.quants import quantize

QType = GGMLQuantizationType
# Types gguf.quants can encode; K-quants and IQ types have dequantizers only.
WRITABLE = frozenset(
    {
        QType.F32,
        QType.F16,
        QType.BF16,
        QType.Q8_0,
        QType.Q4_0,
        QType.Q4_1,
        QType.Q5_0,
        QType.Q5_1,
    }
)
_ARCHS = {name: arch for arch, name in MODEL_ARCH_NAMES.items()}
_INT32 = range(-(2**31), 2**31)
_UINT32 = range(2**32)


def write_gguf(
    path: str | Path,
    tensors: dict[str, np.ndarray],
    arch: str,
    qtype_for: Callable[[str, np.ndarray], QType] | QType,
    metadata: dict[str, object] | None = None,
    tokens: list[str] | None = None,
) -> None:
    """Write ``tensors`` (GGUF names, PyTorch-order arrays) so a reader gets the same shapes back.

    Each tensor is stored as ``qtype_for(name, array)`` (or the one type given), except
    that 1-D tensors and rows not a whole number of blocks stay F32, as llama.cpp does.
    ``metadata`` values map to GGUF types by Python type (non-negative int -> UINT32,
    float -> FLOAT32, list -> ARRAY); ``general.alignment`` also sets the data alignment.

    Raises:
        ValueError: a requested type gguf.quants cannot encode (K-quants, IQ types).
    """
    writer = GGUFWriter(path, arch)
    for key, value in (metadata or {}).items():
        if key == Keys.General.ALIGNMENT:
            if not isinstance(value, int):
                raise ValueError(f"metadata {key!r} must be an int, got {value!r}")
            writer.add_custom_alignment(value)
        else:
            _add_value(writer, key, value)
    if tokens:
        writer.add_token_list(tokens)
    for name, array in tensors.items():
        qtype = qtype_for(name, array) if callable(qtype_for) else qtype_for
        data, raw_dtype = encode(array, qtype)
        writer.add_tensor(name, data, raw_dtype=raw_dtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def encode(array: np.ndarray, qtype: QType) -> tuple[np.ndarray, QType | None]:
    """Array and raw type for ``GGUFWriter.add_tensor``; falls back to F32 where ``qtype`` cannot hold it."""
    if qtype not in WRITABLE:
        raise ValueError(f"gguf.quants cannot encode {qtype.name}")
    values = np.ascontiguousarray(array, dtype=np.float32)
    block = GGML_QUANT_SIZES[qtype][0]
    if qtype == QType.F32 or values.ndim < 2 or values.shape[-1] % block:
        return values, None
    if qtype == QType.F16:
        return values.astype(np.float16), None
    return quantize(values, qtype), qtype


def _add_value(writer: GGUFWriter, key: str, value: object) -> None:
    """Pick the GGUF type llama.cpp expects for common keys (counts are UINT32)."""
    if isinstance(value, (list, tuple)):
        if not value:
            raise ValueError(f"metadata {key!r}: GGUF has no empty arrays")
        writer.add_key_value(key, list(value), GGUFValueType.ARRAY, sub_type=_array_type(key, value))
    elif isinstance(value, bool):
        writer.add_bool(key, value)
    elif isinstance(value, int):
        writer.add_key_value(key, value, _int_type([value]))
    elif isinstance(value, float):
        writer.add_float32(key, value)
    elif isinstance(value, str):
        writer.add_key_value(key, value, GGUFValueType.STRING)
    else:
        raise ValueError(f"metadata {key!r}: cannot store {type(value).__name__} in GGUF")


def _array_type(key: str, items: Sequence[object]) -> GGUFValueType:
    if all(isinstance(v, str) for v in items):
        return GGUFValueType.STRING
    if all(isinstance(v, bool) for v in items):
        return GGUFValueType.BOOL
    ints = [v for v in items if isinstance(v, int) and not isinstance(v, bool)]
    if len(ints) == len(items):
        return _int_type(ints)
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in items):
        return GGUFValueType.FLOAT32
    raise ValueError(f"metadata {key!r}: array items must share one of str, bool, int, float")


def _int_type(values: Sequence[int]) -> GGUFValueType:
    if all(v in _UINT32 for v in values):
        return GGUFValueType.UINT32
    if all(v in _INT32 for v in values):
        return GGUFValueType.INT32
    return GGUFValueType.INT64 if min(values) < 0 else GGUFValueType.UINT64


def hf_to_gguf_name(name: str, arch: str, n_layers: int) -> str | None:
    """GGUF name of an HF tensor (``.weight`` or ``.bias``) per gguf's TensorNameMap; None if unmapped.

    A leading ``{arch}.`` (``bert.encoder...`` in BertForMaskedLM checkpoints) is
    stripped, as llama.cpp's converter does. Names only: llama.cpp's converter also
    permutes Llama q/k rows for its RoPE layout, which this does not do.

    Raises:
        ValueError: ``arch`` is not a gguf architecture name.
    """
    names = _name_map(arch, n_layers)
    for candidate in (name, name.removeprefix(f"{arch}.")):
        mapped = names.get_name(candidate, try_suffixes=(".weight", ".bias"))
        if mapped is not None:
            return mapped
    return None


@lru_cache(maxsize=16)
def _name_map(arch: str, n_layers: int) -> TensorNameMap:
    # Building the map formats every pattern for every block: ~10 ms for 32 layers.
    model_arch: MODEL_ARCH | None = _ARCHS.get(arch)
    if model_arch is None:
        raise ValueError(f"unknown gguf architecture {arch!r}")
    return get_tensor_name_map(model_arch, n_layers)
