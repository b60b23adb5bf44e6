"""PyTorch checkpoints (``.bin``/``.pt``/``.pth``, torch >= 1.6 zip format) read by range, never unpickled.

A torch zip holds ``<prefix>/data.pkl`` (the pickled object: a state dict of tensor-rebuild calls
whose storages are persistent ids) and one STORED entry ``<prefix>/data/<key>`` per storage.
The pickle is walked by pickle_walk (no code runs); each tensor becomes the same TensorHeader the
safetensors reader produces, so sampling, range planning and fingerprints are unchanged.
Cost: one request for the zip tail (end record and central directory), one for data.pkl.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from math import prod
from typing import Any

from hubscan.pipeline.config import Settings
from hubscan.pipeline.errors import FormatError, UnsafeContent, UnsupportedDtype
from hubscan.pipeline.readers import pickle_walk, safetensors
from hubscan.pipeline.readers.byte_source import ByteSource
from hubscan.pipeline.readers.dtypes import SAFETENSORS_DTYPES
from hubscan.pipeline.readers.pickle_allowlist import (
    STORAGE_DTYPES,
    PickleMalformed,
    PickleRefused,
    StorageRef,
    TensorRef,
)
from hubscan.pipeline.readers.records import CheckpointHeader, LocalHeaderGuard, TensorHeader
from hubscan.pipeline.readers.zip_directory import (
    ZipDirectory,
    ZipEntry,
    read_directory,
    read_entries,
    require_stored,
)

FORMAT = "pytorch"
SUFFIXES = (".bin", ".pt", ".pth")
# The byteorder record holds "little" or "big".
MAX_BYTEORDER_BYTES = 16


@dataclass(frozen=True)
class _Found:
    """A tensor found in the pickled object, by its path of dict keys."""

    path: tuple[str, ...]
    tensor: TensorRef


def read_header(source: ByteSource, settings: Settings) -> CheckpointHeader:
    """Read the zip directory and walk data.pkl into tensor headers; nothing is unpickled.

    Raises:
        UnsafeContent: the pickle asks for anything but tensor rebuilds (refused, never executed).
        UnsupportedDtype: a storage type hubscan cannot decode.
        FormatError: not a torch zip, compressed entries, strides or offsets that cannot be read by range.
    """
    bad = _raiser(source, FormatError)
    directory = read_directory(source, settings.header_probe_bytes, settings.max_header_bytes)
    prefix, pkl_entry = _data_pkl(directory, bad)
    order_entry = directory.entries.get(f"{prefix}/byteorder")  # absent before torch 1.13: little
    wanted = [pkl_entry] + ([order_entry] if order_entry is not None else [])
    if order_entry is not None and order_entry.size > MAX_BYTEORDER_BYTES:
        raise bad(f"zip entry {order_entry.name} is {order_entry.size} bytes, not a byte order")
    records = read_entries(source, directory, wanted, settings.merge_gap_bytes)
    if order_entry is not None and records[order_entry.name].strip() != b"little":
        order = records[order_entry.name].strip().decode("ascii", "replace")
        raise bad(f"storages are {order}-endian; only little-endian is supported")
    pkl = records[pkl_entry.name]
    try:
        found = _strip_common_prefix(_collect(pickle_walk.walk(pkl)))
    except PickleRefused as exc:
        raise _raiser(source, UnsafeContent)(f"{pkl_entry.name}: {exc}") from None
    except PickleMalformed as exc:
        raise bad(f"{pkl_entry.name}: {exc}") from None
    if not found:
        raise bad(f"{pkl_entry.name} holds no tensors")
    tensors: list[TensorHeader] = []
    users: dict[str, list[str]] = {}
    for f in found:
        name = ".".join(f.path)
        tensors.append(_tensor(source, directory, prefix, name, f.tensor, bad))
        if prod(f.tensor.shape):
            users.setdefault(f.tensor.storage.key, []).append(name)
    guards = []
    for key, names in users.items():
        entry = directory.entries[f"{prefix}/data/{key}"]
        guards.append(
            LocalHeaderGuard(entry.name, entry.header_offset, entry.torch_data_start(), tuple(names))
        )
    return CheckpointHeader(
        file=source.name,
        format=FORMAT,
        size=source.size,
        tensors=tuple(tensors),
        metadata={"zip_prefix": prefix},
        guards=tuple(guards),
    )


# Storages are little-endian arrays of safetensors' dtypes: rows decode exactly as safetensors' do.
decode_rows = safetensors.decode_rows


def _data_pkl(directory: ZipDirectory, bad: Callable[[str], FormatError]) -> tuple[str, ZipEntry]:
    """(archive prefix, the data.pkl entry): torch writes every record under one top folder."""
    found = [e for n, e in directory.entries.items() if n.count("/") == 1 and n.endswith("/data.pkl")]
    if len(found) != 1:
        raise bad(f"zip holds {len(found)} top-level data.pkl records, not 1: not a torch checkpoint")
    return found[0].name.rsplit("/", 1)[0], found[0]


def _collect(root: Any) -> list[_Found]:
    """Every tensor reachable from the pickled object, with its path; depth- and cycle-safe.

    Raises:
        PickleRefused: containers nested deeper than MAX_DEPTH (a bomb for anything that recurses).
    """
    found: list[_Found] = []
    seen: set[int] = set()
    todo: list[tuple[Any, tuple[str, ...]]] = [(root, ())]
    while todo:
        obj, path = todo.pop()
        if isinstance(obj, TensorRef):
            found.append(_Found(path, obj))
            continue
        if not isinstance(obj, (dict, list, tuple)) or id(obj) in seen:
            continue
        if len(path) >= pickle_walk.MAX_DEPTH:
            raise PickleRefused(
                f"pickle nests containers deeper than {pickle_walk.MAX_DEPTH} levels; refused as a pickle bomb"
            )
        seen.add(id(obj))
        items = obj.items() if isinstance(obj, dict) else enumerate(obj)
        todo.extend((value, (*path, str(key))) for key, value in reversed(list(items)))
    return found


def _strip_common_prefix(found: list[_Found]) -> list[_Found]:
    """{'state_dict': {...}} and {'model': {...}} wrappers: drop path parts every tensor shares."""
    if not found:
        return found
    common = 0
    shortest = min(len(f.path) for f in found)
    while common < shortest - 1 and len({f.path[common] for f in found}) == 1:
        common += 1
    return [_Found(f.path[common:], f.tensor) for f in found]


def _tensor(
    source: ByteSource,
    directory: ZipDirectory,
    prefix: str,
    name: str,
    t: TensorRef,
    bad: Callable[[str], FormatError],
) -> TensorHeader:
    """A TensorHeader for a contiguous view of a storage entry, every offset checked against the file."""
    storage: StorageRef = t.storage
    dtype = STORAGE_DTYPES[storage.storage_type]
    if dtype is None:
        raise _raiser(source, UnsupportedDtype)(
            f"tensor {name}: storage type {storage.storage_type} is not decoded"
        )
    entry = directory.entries.get(f"{prefix}/data/{storage.key}")
    if entry is None:
        raise bad(f"tensor {name}: storage data/{storage.key} is not in the archive")
    require_stored(source, entry)
    itemsize = SAFETENSORS_DTYPES[dtype].itemsize
    if storage.numel * itemsize != entry.size:
        raise bad(
            f"tensor {name}: storage data/{storage.key} holds {entry.size} bytes, its {storage.numel} elements need {storage.numel * itemsize}"
        )
    if not _contiguous(t.shape, t.stride):
        raise bad(
            f"tensor {name}: strides {list(t.stride)} are not contiguous for shape {list(t.shape)}; not supported"
        )
    numel = prod(t.shape)
    begin, nbytes = t.offset * itemsize, numel * itemsize
    if numel and begin + nbytes > entry.size:
        raise bad(
            f"tensor {name}: bytes {begin}-{begin + nbytes} of storage data/{storage.key} lie past its end ({entry.size} bytes)"
        )
    data_start = entry.torch_data_start()
    if data_start + entry.size > min(directory.cd_offset, source.size):
        raise bad(
            f"tensor {name}: storage data/{storage.key} at bytes {data_start}-{data_start + entry.size} lies past the end of the file's data ({min(directory.cd_offset, source.size)} bytes)"
        )
    return TensorHeader(
        name=name,
        dtype=dtype,
        shape=t.shape,
        file=source.name,
        start=data_start + begin,
        nbytes=nbytes,
        row_bytes=(t.shape[-1] if t.shape else 1) * itemsize,
    )


def _contiguous(shape: tuple[int, ...], stride: tuple[int, ...]) -> bool:
    """Row-major strides; axes of length 1 may carry any stride (torch leaves them as they fall)."""
    expected = 1
    for size, step in zip(reversed(shape), reversed(stride), strict=True):
        if size != 1 and step != expected:
            return False
        expected *= size
    return True


def _raiser(source: ByteSource, cls: type[FormatError]) -> Callable[[str], FormatError]:
    def bad(reason: str) -> FormatError:
        return cls(source.repo_id, source.revision, source.name, reason)

    return bad
