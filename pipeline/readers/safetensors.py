"""safetensors: the header read by range (one small request, grown only when needed) and validated.

Layout: 8-byte little-endian header length N, N bytes of JSON, then the data section.
Every offset is checked before anything trusts it: inside the data section, no overlaps,
and end - begin equal to dtype size × shape.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from functools import partial
from math import prod
from typing import TypeGuard

import numpy as np

from hubscan.pipeline.bounded_json import JsonLimit, loads_bounded
from hubscan.pipeline.config import Settings
from hubscan.pipeline.errors import MalformedHeader, UnsupportedDtype
from hubscan.pipeline.readers.byte_source import ByteSource
from hubscan.pipeline.readers.dtypes import SAFETENSORS_DTYPES, decode_dense
from hubscan.pipeline.readers.records import CheckpointHeader, TensorHeader

FORMAT = "safetensors"


def read_header(source: ByteSource, settings: Settings) -> CheckpointHeader:
    """Read and validate the header of a safetensors file.

    Raises:
        MalformedHeader: length, JSON or offsets cannot be trusted.
        UnsupportedDtype: a tensor has a dtype hubscan cannot decode.
    """
    bad = _raiser(source)
    probe = source.read(0, min(source.size, settings.header_probe_bytes))
    if len(probe) < 8:
        raise bad(f"file is {source.size} bytes, shorter than the 8-byte header length")
    (length,) = struct.unpack("<Q", probe[:8])
    if length > settings.max_header_bytes:
        raise bad(f"header length {length} exceeds {settings.max_header_bytes}")
    if 8 + length > source.size:
        raise bad(f"header length {length} runs past the end of the file ({source.size} bytes)")
    raw = probe[8 : 8 + length]
    if len(raw) < length:  # a header larger than the probe: one more request for the rest
        raw += source.read(len(probe), 8 + length)
    if len(raw) != length:
        raise bad(f"file truncated inside the {length}-byte header")
    # Counted in the bytes, before the parser builds a dict per entry (a quote inside a JSON string
    # is escaped, so only keys match).
    entries = raw.count(b'"data_offsets"')
    if entries > settings.max_header_entries:
        raise bad(
            f"header lists {entries} tensors, more than {settings.max_header_entries} (max_header_entries)"
        )
    try:
        doc = loads_bounded(raw, settings.max_header_bytes)
    except JsonLimit as exc:
        raise bad(f"header {exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad(f"header is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise bad("header is not a JSON object")
    metadata = doc.pop("__metadata__", None) or {}
    data_start = 8 + length
    tensors = [_tensor(name, spec, source, data_start, bad) for name, spec in doc.items()]
    _check_layout(tensors, source.size, bad)
    return CheckpointHeader(
        file=source.name,
        format=FORMAT,
        size=source.size,
        tensors=tuple(tensors),
        metadata=metadata if isinstance(metadata, dict) else {},
    )


def decode_rows(header: TensorHeader, raw: bytes | memoryview, count: int) -> np.ndarray:
    """Decode ``count`` consecutive rows of a tensor to float32 (count, n_cols).

    Raises:
        ValueError: wrong byte count (the caller names model and file).
    """
    return decode_dense(raw, SAFETENSORS_DTYPES[header.dtype], count, header.n_cols)


def _tensor(
    name: str, spec: object, source: ByteSource, data_start: int, bad: Callable[[str], MalformedHeader]
) -> TensorHeader:
    if not isinstance(spec, dict):
        raise bad(f"tensor {name}: entry is not an object")
    dtype_name, shape, offsets = spec.get("dtype"), spec.get("shape"), spec.get("data_offsets")
    if dtype_name not in SAFETENSORS_DTYPES:
        raise UnsupportedDtype(
            source.repo_id, source.revision, source.name, f"tensor {name}: unknown dtype {dtype_name!r}"
        )
    if not _ints(shape) or not _ints(offsets) or len(offsets) != 2:
        raise bad(f"tensor {name}: shape or data_offsets missing or not non-negative integers")
    begin, end = offsets
    itemsize = SAFETENSORS_DTYPES[dtype_name].itemsize
    expected = prod(shape) * itemsize
    if end < begin or end - begin != expected:
        raise bad(
            f"tensor {name}: data_offsets [{begin}, {end}] hold {end - begin} bytes, {dtype_name}{list(shape)} needs {expected}"
        )
    n_cols = shape[-1] if shape else 1
    return TensorHeader(
        name=name,
        dtype=dtype_name,
        shape=tuple(shape),
        file=source.name,
        start=data_start + begin,
        nbytes=end - begin,
        row_bytes=n_cols * itemsize,
    )


def _check_layout(tensors: list[TensorHeader], size: int, bad: Callable[[str], MalformedHeader]) -> None:
    """Tensors must lie inside the file and must not overlap."""
    previous: TensorHeader | None = None
    for t in sorted(tensors, key=lambda t: (t.start, t.nbytes)):
        if t.start + t.nbytes > size:
            raise bad(
                f"tensor {t.name}: bytes {t.start}-{t.start + t.nbytes} lie past the end of the file ({size} bytes)"
            )
        if previous is not None and t.nbytes and previous.start + previous.nbytes > t.start:
            raise bad(f"tensors {previous.name} and {t.name} overlap")
        if t.nbytes:
            previous = t


def _ints(value: object) -> TypeGuard[list[int]]:
    return isinstance(value, list) and all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value
    )


def _raiser(source: ByteSource) -> Callable[[str], MalformedHeader]:
    """MalformedHeader bound to this file, so each check stays one line."""
    return partial(MalformedHeader, source.repo_id, source.revision, source.name)
