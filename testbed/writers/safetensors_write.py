"""Write and read safetensors files by hand, so the demo hub controls dtype and can craft broken files.

The official ``safetensors`` package refuses to write a malformed file and has no F8 writer in its
numpy API; the demo hub needs both. Files written here follow the format exactly:

* 8-byte little-endian header length, then a compact JSON header padded with spaces to a multiple
  of 8 (the safetensors writer pads the same way, so the data starts 8-byte aligned);
* ``__metadata__`` first, then one entry per tensor in data order;
* data laid out as safetensors itself lays it out: by dtype rank descending (wide types first, so
  every tensor stays aligned to its item size), then by name. For a single-dtype file that is
  plain name order.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from pathlib import Path

import ml_dtypes
import numpy as np

# safetensors dtype name -> numpy dtype
NP_DTYPES: dict[str, np.dtype] = {
    "F64": np.dtype(np.float64),
    "F32": np.dtype(np.float32),
    "F16": np.dtype(np.float16),
    "BF16": np.dtype(ml_dtypes.bfloat16),
    "F8_E4M3": np.dtype(ml_dtypes.float8_e4m3fn),
    "F8_E5M2": np.dtype(ml_dtypes.float8_e5m2),
    "I64": np.dtype(np.int64),
    "I32": np.dtype(np.int32),
    "U32": np.dtype(np.uint32),
    "I16": np.dtype(np.int16),
    "I8": np.dtype(np.int8),
    "U8": np.dtype(np.uint8),
    "BOOL": np.dtype(np.bool_),
}
# Descending order of safetensors' Rust ``Dtype`` enum, which its serializer sorts by.
DTYPE_RANK: tuple[str, ...] = ("U64", "I64", "F64", "F32", "U32", "I32", "BF16", "F16", "U16", "I16")
DTYPE_RANK += ("F8_E8M0", "F8_E4M3", "F8_E5M2", "I8", "U8", "BOOL")
FLOAT_DTYPES = frozenset({"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"})
# The safetensors core refuses headers above 100 MB; our reader only reads files we wrote.
MAX_HEADER = 100_000_000


def dtype_name(arr: np.ndarray) -> str:
    """Safetensors name of a numpy array's dtype (raises KeyError for a dtype the format lacks)."""
    for name, dt in NP_DTYPES.items():
        if arr.dtype == dt:
            return name
    raise KeyError(f"no safetensors dtype for numpy {arr.dtype}")


def convert(arr: np.ndarray, dtype: str) -> np.ndarray:
    """``arr`` as safetensors dtype ``dtype``; F8 saturates instead of overflowing to NaN."""
    target = NP_DTYPES[dtype]
    if dtype.startswith("F8_"):
        # float8_e4m3fn has no inf: out-of-range values would become NaN, so clip to its range.
        lim = float(ml_dtypes.finfo(target).max)
        arr = np.clip(arr.astype(np.float32), -lim, lim)
    return arr.astype(target, order="C", copy=False)  # ascontiguousarray would make 0-d 1-d


def _resolve_dtypes(tensors: dict[str, np.ndarray], dtypes: dict[str, str] | str | None) -> dict[str, str]:
    """Target dtype per tensor: a str casts every float tensor and leaves integer buffers alone."""
    out: dict[str, str] = {}
    for name, arr in tensors.items():
        native = dtype_name(arr)
        if isinstance(dtypes, str):
            out[name] = dtypes if native in FLOAT_DTYPES else native
        elif dtypes is not None and name in dtypes:
            out[name] = dtypes[name]
        else:
            out[name] = native
    return out


def layout_order(dtypes: dict[str, str]) -> list[str]:
    """Tensor names in the order safetensors writes their data (dtype rank, then name)."""
    rank = {d: i for i, d in enumerate(DTYPE_RANK)}
    return sorted(dtypes, key=lambda n: (rank.get(dtypes[n], len(rank)), n))


def encode_header(header: Mapping[str, object]) -> bytes:
    """Compact JSON header padded with spaces to a multiple of 8, as the safetensors writer does."""
    raw = json.dumps(header, separators=(",", ":")).encode()
    return raw + b" " * (-len(raw) % 8)


def write_raw_safetensors(
    path: Path, header: Mapping[str, object] | bytes, data: bytes, declared_len: int | None = None
) -> None:
    """Write header bytes and data verbatim; ``declared_len`` lies about the header length."""
    hdr = header if isinstance(header, bytes) else encode_header(header)
    n = len(hdr) if declared_len is None else declared_len
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", n))
        f.write(hdr)
        f.write(data)


def write_safetensors(
    path: Path,
    tensors: dict[str, np.ndarray],
    dtypes: dict[str, str] | str | None = None,
    metadata: dict[str, str] | None = None,
) -> int:
    """Write ``tensors`` as one safetensors file, casting per ``dtypes``; returns bytes of data."""
    targets = _resolve_dtypes(tensors, dtypes)
    header: dict[str, object] = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs: list[bytes] = []
    offset = 0
    for name in layout_order(targets):
        arr = convert(tensors[name], targets[name])
        blob = arr.tobytes()
        header[name] = {
            "dtype": targets[name],
            "shape": list(arr.shape),
            "data_offsets": [offset, offset + len(blob)],
        }
        blobs.append(blob)
        offset += len(blob)
    tmp = path.with_name(path.name + ".tmp")
    write_raw_safetensors(tmp, header, b"".join(blobs))
    tmp.replace(path)  # a reader never sees a half-written file
    return offset


def read_safetensors_header(path: Path) -> tuple[dict[str, dict], dict[str, str], int]:
    """(tensor entries, metadata, data start) of a well-formed file; for the generator only."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        if n > MAX_HEADER:
            raise ValueError(f"{path}: header length {n} exceeds {MAX_HEADER}")
        header = json.loads(f.read(n))
    metadata = header.pop("__metadata__", None) or {}
    return header, metadata, 8 + n


def read_safetensors_np(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of a file, fully read into numpy (header order); for the generator only."""
    entries, _, start = read_safetensors_header(path)
    raw = np.fromfile(path, dtype=np.uint8)
    out: dict[str, np.ndarray] = {}
    for name, e in entries.items():
        b, end = e["data_offsets"]
        dt = NP_DTYPES[e["dtype"]]
        out[name] = raw[start + b : start + end].view(dt).reshape(tuple(e["shape"]))
    return out
