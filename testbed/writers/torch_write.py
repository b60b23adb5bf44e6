"""Write PyTorch zip checkpoints (what ``torch.save`` writes) from numpy arrays, without torch.

The layout follows torch's PyTorchStreamWriter, checked against a real torch-written file
(akiki-vad.pt) in the tests:

* ``<prefix>/data.pkl``: a protocol-2 pickle of an OrderedDict whose values are
  ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())``,
  each storage a persistent id ``('storage', torch.FloatStorage, '<key>', 'cpu', numel)``;
* ``<prefix>/data/<key>``: the storage bytes, little-endian;
* every entry STORED, its data on a 64-byte boundary through a padding extra field ``FB``.

The pickle is emitted opcode by opcode: the stdlib pickler would import torch to check globals.
"""

from __future__ import annotations

import struct
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import ml_dtypes
import numpy as np

# torch's kFieldAlignment: record data starts on this boundary.
ALIGNMENT = 64
# numpy dtype -> torch storage type named in the persistent id.
STORAGE_TYPES: dict[np.dtype, str] = {
    np.dtype(np.float32): "FloatStorage",
    np.dtype(np.float64): "DoubleStorage",
    np.dtype(np.float16): "HalfStorage",
    np.dtype(ml_dtypes.bfloat16): "BFloat16Storage",
    np.dtype(np.int64): "LongStorage",
    np.dtype(np.int32): "IntStorage",
    np.dtype(np.int16): "ShortStorage",
    np.dtype(np.int8): "CharStorage",
    np.dtype(np.uint8): "ByteStorage",
    np.dtype(np.bool_): "BoolStorage",
}
PROTO2 = b"\x80\x02"
STOP = b"."
MARK, EMPTY_TUPLE, TUPLE, REDUCE, SETITEMS = b"(", b")", b"t", b"R", b"u"
BINPERSID, NEWFALSE = b"Q", b"\x89"


@dataclass(frozen=True)
class TensorEntry:
    """One value of the state dict: a view of storage ``key``."""

    name: str
    storage_type: str
    key: str
    numel: int
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def op_global(module: str, name: str) -> bytes:
    """GLOBAL opcode naming ``module.name``."""
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def op_str(s: str) -> bytes:
    """BINUNICODE."""
    raw = s.encode("utf-8")
    return b"X" + struct.pack("<I", len(raw)) + raw


def op_int(v: int) -> bytes:
    """The smallest integer opcode the stdlib pickler would use."""
    if 0 <= v < 256:
        return b"K" + bytes([v])
    if 0 <= v < 65536:
        return b"M" + struct.pack("<H", v)
    if -(2**31) <= v < 2**31:
        return b"J" + struct.pack("<i", v)
    raw = v.to_bytes((v.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw


def op_tuple(values: tuple[int, ...]) -> bytes:
    """A tuple of ints (MARK ... TUPLE)."""
    return MARK + b"".join(op_int(v) for v in values) + TUPLE


def state_dict_pickle(entries: list[TensorEntry]) -> bytes:
    """Protocol-2 pickle of an OrderedDict of tensor rebuilds, as torch.save(state_dict) writes it."""
    empty_odict = op_global("collections", "OrderedDict") + EMPTY_TUPLE + REDUCE
    out = [PROTO2, empty_odict, MARK]
    for e in entries:
        pid = MARK + op_str("storage") + op_global("torch", e.storage_type) + op_str(e.key)
        pid += op_str("cpu") + op_int(e.numel) + TUPLE + BINPERSID
        args = pid + op_int(e.offset) + op_tuple(e.shape) + op_tuple(e.stride) + NEWFALSE + empty_odict
        out.append(
            op_str(e.name) + op_global("torch._utils", "_rebuild_tensor_v2") + MARK + args + TUPLE + REDUCE
        )
    out += [SETITEMS, STOP]
    return b"".join(out)


def contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Row-major strides in elements."""
    strides: list[int] = []
    step = 1
    for size in reversed(shape):
        strides.append(step)
        step *= size
    return tuple(reversed(strides))


def write_records(
    path: Path, prefix: str, records: Mapping[str, bytes], deflate: frozenset[str] = frozenset()
) -> None:
    """Write ``<prefix>/<name>`` records as torch does: STORED, data 64-byte aligned (names in ``deflate`` compressed)."""
    with open(path, "wb") as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as zf:
        for name, data in records.items():
            info = zipfile.ZipInfo(f"{prefix}/{name}", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED if name in deflate else zipfile.ZIP_STORED
            start = f.tell() + 30 + len(info.filename.encode()) + 4
            pad = -start % ALIGNMENT
            info.extra = b"FB" + struct.pack("<H", pad) + b"Z" * pad
            zf.writestr(info, data)


def write_torch_zip(path: Path, tensors: Mapping[str, np.ndarray], prefix: str = "archive") -> int:
    """Write ``tensors`` as a torch state-dict checkpoint, one storage each; returns the tensor bytes."""
    entries: list[TensorEntry] = []
    storages: dict[str, bytes] = {}
    for i, (name, arr) in enumerate(tensors.items()):
        arr = np.ascontiguousarray(arr)
        shape = tuple(int(s) for s in arr.shape)
        key = str(i)
        entries.append(
            TensorEntry(name, STORAGE_TYPES[arr.dtype], key, arr.size, 0, shape, contiguous_strides(shape))
        )
        storages[f"data/{key}"] = arr.tobytes()  # little-endian on every platform hubscan runs on
    records = {
        "data.pkl": state_dict_pickle(entries),
        ".format_version": b"1",
        ".storage_alignment": str(ALIGNMENT).encode(),
        "byteorder": b"little",
        **storages,
        "version": b"3\n",
    }
    write_records(path, prefix, records)
    return sum(len(b) for b in storages.values())
