"""GGUF over byte ranges: parse the header from a growing prefix, decode sampled rows.

``gguf.GGUFReader`` memory-maps a whole local file; a remote checkpoint is read by
HTTP range instead, so the header is parsed here from ``source.read`` and only the
rows a fingerprint asks for are ever fetched. Tables (types, block sizes, keys) come
from the ``gguf`` package so they track llama.cpp.
"""

from __future__ import annotations

import struct
from itertools import pairwise

import ml_dtypes
import numpy as np
from gguf import (
    GGML_QUANT_SIZES,
    GGUF_DEFAULT_ALIGNMENT,
    GGUF_MAGIC,
    GGMLQuantizationType,
    GGUFValueType,
    Keys,
)
from gguf.quants import dequantize

from hubscan.pipeline.config import Settings
from hubscan.pipeline.errors import FormatError, MalformedHeader, UnsupportedDtype
from hubscan.pipeline.readers.byte_source import ByteSource
from hubscan.pipeline.readers.records import CheckpointHeader, TensorHeader

SUPPORTED_VERSIONS = (2, 3)  # v1 used 32-bit counts and lengths; nothing on the Hub still needs it
MAX_DIMS = 4  # GGML_MAX_DIMS
MAX_ARRAY_DEPTH = 4  # arrays of arrays exist in the spec but nobody nests deeper
# Arrays longer than this are skipped (merges, scores, token types run to ~10^5
# entries); the token list is always kept because embedding rows align by token.
MAX_KEPT_ARRAY = 4096
# Bytes per item of a string array, for read-ahead: an 8-byte length plus a short token (BPE
# tokens and merges average 6-10 bytes).
TYPICAL_STRING_ITEM_BYTES = 20
KEPT_ARRAYS = frozenset({Keys.Tokenizer.LIST})

# Element types decoded with a plain numpy view (little-endian on disk).
_NUMPY_DTYPES: dict[GGMLQuantizationType, np.dtype] = {
    GGMLQuantizationType.F32: np.dtype("<f4"),
    GGMLQuantizationType.F16: np.dtype("<f2"),
    GGMLQuantizationType.BF16: np.dtype(ml_dtypes.bfloat16),
    GGMLQuantizationType.F64: np.dtype("<f8"),
    GGMLQuantizationType.I8: np.dtype("i1"),
    GGMLQuantizationType.I16: np.dtype("<i2"),
    GGMLQuantizationType.I32: np.dtype("<i4"),
    GGMLQuantizationType.I64: np.dtype("<i8"),
}
# Block types gguf.quants has no dequantizer for; Q8_1/Q8_K are llama.cpp's
# dot-product scratch formats and never appear as stored weights.
_NOT_DECODABLE = frozenset({GGMLQuantizationType.Q8_1, GGMLQuantizationType.Q8_K, GGMLQuantizationType.Q1_0})

_SCALARS: dict[GGUFValueType, struct.Struct] = {
    GGUFValueType.UINT8: struct.Struct("<B"),
    GGUFValueType.INT8: struct.Struct("<b"),
    GGUFValueType.UINT16: struct.Struct("<H"),
    GGUFValueType.INT16: struct.Struct("<h"),
    GGUFValueType.UINT32: struct.Struct("<I"),
    GGUFValueType.INT32: struct.Struct("<i"),
    GGUFValueType.FLOAT32: struct.Struct("<f"),
    GGUFValueType.BOOL: struct.Struct("<?"),
    GGUFValueType.UINT64: struct.Struct("<Q"),
    GGUFValueType.INT64: struct.Struct("<q"),
    GGUFValueType.FLOAT64: struct.Struct("<d"),
}
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_MIN_KV_BYTES = 8 + 4 + 1  # key length, value type, smallest value
_MIN_TENSOR_INFO_BYTES = 8 + 4 + 8 + 4 + 8  # name length, n_dims, one dim, type, offset


def _min_item_bytes(vtype: GGUFValueType) -> int:
    """Smallest encoding of one array item: lets a huge count fail before any loop runs."""
    if vtype == GGUFValueType.STRING:
        return 8
    if vtype == GGUFValueType.ARRAY:
        return 12
    return _SCALARS[vtype].size


class _Prefix:
    """The file's first bytes, fetched on demand in geometrically growing requests."""

    def __init__(self, source: ByteSource, settings: Settings) -> None:
        self.source = source
        self.max_bytes = settings.max_header_bytes
        self.buf = bytearray()
        self.pos = 0
        self._fetch(min(settings.header_probe_bytes, source.size, self.max_bytes))

    def error(self, reason: str) -> MalformedHeader:
        s = self.source
        return MalformedHeader(s.repo_id, s.revision, s.name, reason)

    def _fetch(self, end: int) -> None:
        have = len(self.buf)
        if end <= have:
            return
        data = self.source.read(have, end)
        if len(data) != end - have:
            raise self.error(f"file ended at byte {have + len(data)}, expected {self.source.size}")
        self.buf += data

    def need(self, nbytes: int, what: str) -> None:
        """Make sure bytes [pos, pos + nbytes) are in the buffer."""
        end = self.pos + nbytes
        if end <= len(self.buf):
            return
        if end > self.max_bytes:
            raise self.error(f"GGUF header exceeds {self.max_bytes} bytes ({what} at offset {self.pos})")
        if end > self.source.size:
            raise self.error(
                f"GGUF header truncated: {what} at offset {self.pos} runs past the end of the file ({self.source.size} bytes)"
            )
        self._fetch(min(max(end, 2 * len(self.buf)), self.source.size, self.max_bytes))

    def prefetch(self, nbytes: int) -> None:
        """Best-effort read-ahead of bytes [pos, pos + nbytes); never an error."""
        self._fetch(min(self.pos + nbytes, self.source.size, self.max_bytes))

    def take(self, nbytes: int, what: str) -> bytearray:
        # A copy, not a memoryview: an exported view would stop the buffer from growing.
        self.need(nbytes, what)
        self.pos += nbytes
        return self.buf[self.pos - nbytes : self.pos]

    def scalar(self, fmt: struct.Struct, what: str) -> int | float | bool:
        self.need(fmt.size, what)
        self.pos += fmt.size
        value: int | float | bool = fmt.unpack_from(self.buf, self.pos - fmt.size)[0]
        return value

    def u32(self, what: str) -> int:
        return int(self.scalar(_U32, what))

    def u64(self, what: str) -> int:
        return int(self.scalar(_U64, what))

    def string(self, what: str, keep: bool = True) -> str:
        n = self.u64(f"{what} length")
        if not keep:
            self.need(n, f"{what} of {n} bytes")
            self.pos += n
            return ""
        raw = self.take(n, f"{what} of {n} bytes")
        try:
            return str(raw, "utf-8")
        except UnicodeDecodeError:
            raise self.error(f"{what} at offset {self.pos - n} is not UTF-8") from None

    def value(self, vtype: int, key: str, depth: int = 0) -> object:
        """One metadata value; None for an array too large to keep."""
        try:
            vt = GGUFValueType(vtype)
        except ValueError:
            raise self.error(f"key {key!r} has unknown GGUF value type {vtype}") from None
        if vt == GGUFValueType.STRING:
            return self.string(f"value of {key!r}")
        if vt != GGUFValueType.ARRAY:
            return self.scalar(_SCALARS[vt], f"value of {key!r}")
        if depth >= MAX_ARRAY_DEPTH:
            raise self.error(f"key {key!r} nests arrays deeper than {MAX_ARRAY_DEPTH}")
        item_type = self.u32(f"array type of {key!r}")
        n = self.u64(f"array length of {key!r}")
        try:
            it = GGUFValueType(item_type)
        except ValueError:
            raise self.error(f"key {key!r} has unknown GGUF array item type {item_type}") from None
        self.need(n * _min_item_bytes(it), f"array of {n} items for {key!r}")
        keep = n <= MAX_KEPT_ARRAY or key in KEPT_ARRAYS
        if it in _SCALARS:
            raw = self.take(n * _SCALARS[it].size, f"array {key!r}")
            return np.frombuffer(raw, _SCALARS[it].format).tolist() if keep else None
        if it == GGUFValueType.STRING:
            # Token and merge lists are most of a GGUF header: fetch their likely size in one
            # request instead of doubling the buffer 4-5 times (SmolLM2: 5 requests → 2).
            self.prefetch(n * TYPICAL_STRING_ITEM_BYTES)
            items = [self.string(f"item of {key!r}", keep) for _ in range(n)]
            return items if keep else None
        nested = [self.value(item_type, key, depth + 1) for _ in range(n)]
        return nested if keep else None


def read_header(source: ByteSource, settings: Settings) -> CheckpointHeader:
    """Parse a GGUF v2/v3 header from the file's first bytes and check every tensor range.

    Raises:
        MalformedHeader: bad magic/version, truncated or oversized header, tensor data
            outside the file, misaligned or overlapping tensors.
        UnsupportedDtype: a ggml type this reader cannot decode.
        FormatError: a big-endian GGUF file.
    """
    p = _Prefix(source, settings)
    if bytes(p.take(4, "magic")) != _U32.pack(GGUF_MAGIC):
        raise p.error("not a GGUF file (magic is not 'GGUF')")
    version = p.u32("version")
    if version not in SUPPORTED_VERSIONS:
        if version & 0xFFFF == 0:  # a byte-swapped small number: written big-endian
            raise FormatError(
                source.repo_id, source.revision, source.name, "big-endian GGUF is not supported"
            )
        raise p.error(f"GGUF version {version} is not supported (expected 2 or 3)")
    n_tensors = p.u64("tensor count")
    n_kv = p.u64("metadata count")
    p.need(n_kv * _MIN_KV_BYTES, f"{n_kv} metadata entries")

    metadata: dict[str, object] = {}
    for _ in range(n_kv):
        key = p.string("metadata key")
        if key in metadata:
            raise p.error(f"duplicate metadata key {key!r}")
        value = p.value(p.u32(f"value type of {key!r}"), key)
        if value is not None:
            metadata[key] = value

    p.need(n_tensors * _MIN_TENSOR_INFO_BYTES, f"{n_tensors} tensor infos")
    infos = [_tensor_info(p, source) for _ in range(n_tensors)]

    alignment = metadata.get(Keys.General.ALIGNMENT, GGUF_DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        raise p.error(f"general.alignment {alignment!r} is not a power of two")
    data_start = -(-p.pos // alignment) * alignment
    tensors = [_tensor_header(p, source, info, data_start, alignment) for info in infos]
    _check_layout(p, tensors)
    return CheckpointHeader(
        file=source.name, format="gguf", size=source.size, tensors=tuple(tensors), metadata=metadata
    )


_Info = tuple[str, tuple[int, ...], GGMLQuantizationType, int]


def _tensor_info(p: _Prefix, source: ByteSource) -> _Info:
    """One tensor info record: name, ne (ggml order), type, offset into the data section."""
    name = p.string("tensor name")
    n_dims = p.u32(f"dimension count of {name!r}")
    if not 1 <= n_dims <= MAX_DIMS:
        raise p.error(f"tensor {name!r} has {n_dims} dimensions (expected 1 to {MAX_DIMS})")
    ne = tuple(p.u64(f"shape of {name!r}") for _ in range(n_dims))
    type_id = p.u32(f"type of {name!r}")
    offset = p.u64(f"offset of {name!r}")
    try:
        qtype = GGMLQuantizationType(type_id)
    except ValueError:
        raise UnsupportedDtype(
            source.repo_id, source.revision, source.name, f"tensor {name!r} has unknown ggml type {type_id}"
        ) from None
    if qtype in _NOT_DECODABLE or qtype not in GGML_QUANT_SIZES:
        raise UnsupportedDtype(
            source.repo_id,
            source.revision,
            source.name,
            f"tensor {name!r} has ggml type {qtype.name}, which hubscan cannot decode",
        )
    return name, ne, qtype, offset


def _tensor_header(
    p: _Prefix, source: ByteSource, info: _Info, data_start: int, alignment: int
) -> TensorHeader:
    name, ne, qtype, offset = info
    block, type_size = GGML_QUANT_SIZES[qtype]
    if ne[0] % block:
        raise p.error(
            f"tensor {name!r} row length {ne[0]} is not a multiple of the {qtype.name} block size {block}"
        )
    if offset % alignment:
        raise p.error(f"tensor {name!r} offset {offset} is not a multiple of the alignment {alignment}")
    row_bytes = ne[0] // block * type_size
    n_rows = 1
    for d in ne[1:]:
        n_rows *= d
    start = data_start + offset
    nbytes = row_bytes * n_rows
    if start + nbytes > source.size:
        raise p.error(
            f"tensor {name!r} data [{start}, {start + nbytes}) runs past the end of the file ({source.size} bytes)"
        )
    return TensorHeader(
        name=name,
        dtype=qtype.name,
        shape=tuple(reversed(ne)),  # ggml lists the fastest axis first; PyTorch lists it last
        file=source.name,
        start=start,
        nbytes=nbytes,
        row_bytes=row_bytes,
    )


def _check_layout(p: _Prefix, tensors: list[TensorHeader]) -> None:
    """Names unique, data ranges disjoint: overlapping tensors would alias sampled rows."""
    seen: set[str] = set()
    for t in tensors:
        if t.name in seen:
            raise p.error(f"duplicate tensor name {t.name!r}")
        seen.add(t.name)
    ordered = sorted((t for t in tensors if t.nbytes), key=lambda t: t.start)
    for a, b in pairwise(ordered):
        if b.start < a.start + a.nbytes:
            raise p.error(
                f"tensors {a.name!r} [{a.start}, {a.start + a.nbytes}) and {b.name!r} [{b.start}, {b.start + b.nbytes}) overlap"
            )


def decode_rows(header: TensorHeader, raw: bytes, count: int) -> np.ndarray:
    """Decode ``count`` consecutive rows (the bytes of ``header.row_span``) to float32, shape (count, n_cols).

    This function has no repo context, so it raises plain exceptions for the caller
    to wrap: ``read_header`` already refuses every dtype this cannot decode, which
    leaves only caller bugs and short reads.

    Raises:
        ValueError: ``raw`` is not ``count * header.row_bytes`` long, or the dtype is
            not a GGUF type this module decodes (only possible for a hand-built header).
    """
    if len(raw) != count * header.row_bytes:
        raise ValueError(f"{header.name}: expected {count} x {header.row_bytes} bytes, got {len(raw)}")
    try:
        qtype = GGMLQuantizationType[header.dtype]
    except KeyError:
        raise ValueError(f"{header.name}: {header.dtype} is not a ggml type") from None
    if qtype in _NUMPY_DTYPES:
        values = np.frombuffer(raw, _NUMPY_DTYPES[qtype])
        return values.astype(np.float32).reshape(count, header.n_cols)
    if qtype in _NOT_DECODABLE:
        raise ValueError(f"{header.name}: gguf cannot dequantize {qtype.name}")
    blocks = np.frombuffer(raw, np.uint8).reshape(count, header.row_bytes)
    return np.asarray(dequantize(blocks, qtype), dtype=np.float32).reshape(count, header.n_cols)


def gguf_config(metadata: dict[str, object]) -> dict[str, object]:
    """Architecture numbers from GGUF metadata; None where the file does not say.

    Per-layer lists (some architectures vary head counts by layer) give their maximum.
    """
    arch = metadata.get(Keys.General.ARCHITECTURE)
    arch = arch if isinstance(arch, str) else None

    def num(key: str) -> int | None:
        if arch is None:
            return None
        value = metadata.get(key.format(arch=arch))
        if isinstance(value, list):
            value = max(value, default=None)
        return int(value) if isinstance(value, (int, float)) else None

    tokens = metadata.get(Keys.Tokenizer.LIST)
    return {
        "architecture": arch,
        "n_layers": num(Keys.LLM.BLOCK_COUNT),
        "hidden": num(Keys.LLM.EMBEDDING_LENGTH),
        "n_heads": num(Keys.Attention.HEAD_COUNT),
        "n_kv_heads": num(Keys.Attention.HEAD_COUNT_KV),
        "n_experts": num(Keys.LLM.EXPERT_COUNT),
        "vocab_size": len(tokens) if isinstance(tokens, list) else num(Keys.LLM.VOCAB_SIZE),
        "context_length": num(Keys.LLM.CONTEXT_LENGTH),
    }
