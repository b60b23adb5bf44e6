"""The directory of a zip archive read by byte ranges: end record (and ZIP64) from the tail, then the
central directory, then local headers only where data starts.

torch.save writes a zip whose entries are STORED (uncompressed) and whose data starts on a
64-byte boundary (a padding extra field "FB" in the local header). So a storage's data offset is
predicted from the central directory alone and the local header is checked when the first rows
of that storage are read (it sits right before them: the same request).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from hubscan.pipeline.errors import FormatError
from hubscan.pipeline.readers.byte_source import ByteSource
from hubscan.pipeline.readers.ranges import Span, fetch, plan_requests
from hubscan.pipeline.readers.records import LocalHeaderGuard

EOCD_SIG = b"PK\x05\x06"
EOCD64_LOCATOR_SIG = b"PK\x06\x07"
EOCD64_SIG = b"PK\x06\x06"
CENTRAL_SIG = b"PK\x01\x02"
LOCAL_SIG = b"PK\x03\x04"
EOCD_LEN, EOCD64_LOCATOR_LEN, EOCD64_LEN, CENTRAL_LEN, LOCAL_LEN = 22, 20, 56, 46, 30
# A 32-bit field holding this value means "see the ZIP64 extra field".
ZIP64_MARK = 0xFFFFFFFF
ZIP64_EXTRA_ID = 0x0001
STORED = 0
# torch's PyTorchStreamWriter aligns every record's data to this many bytes (kFieldAlignment).
TORCH_ALIGNMENT = 64
# Room a local header may take beyond its name: torch's padding field (<= 4 + 63) and a ZIP64 extra
# (<= 4 + 24); reading this much past a header always reaches the data.
LOCAL_HEADER_SLACK = 4 + TORCH_ALIGNMENT + 4 + 24
# More entries than this is not a checkpoint (a 1T-parameter model has ~100k tensors).
MAX_ENTRIES = 1_000_000


@dataclass(frozen=True)
class ZipEntry:
    """One central-directory record: where the local header is and how big the data is."""

    name: str
    raw_name: bytes
    header_offset: int
    size: int
    compressed_size: int
    method: int

    def torch_data_start(self) -> int:
        """Where torch's writer puts the data: the 64-byte boundary after the header and padding field."""
        start = self.header_offset + LOCAL_LEN + len(self.raw_name) + 4
        if self.size >= ZIP64_MARK or self.header_offset >= ZIP64_MARK:
            start += (
                4 + (16 if self.size >= ZIP64_MARK else 0) + (8 if self.header_offset >= ZIP64_MARK else 0)
            )
        return start + (-start % TORCH_ALIGNMENT)


@dataclass(frozen=True)
class ZipDirectory:
    """Entries by name, and where the central directory starts (no entry's data may reach it)."""

    entries: dict[str, ZipEntry]
    cd_offset: int

    def record_end(self, entry: ZipEntry) -> int:
        """Where the next local header (or the central directory) starts: no read of ``entry`` passes it."""
        later = [e.header_offset for e in self.entries.values() if e.header_offset > entry.header_offset]
        return min(later, default=self.cd_offset)


def read_directory(source: ByteSource, probe_bytes: int, max_cd_bytes: int) -> ZipDirectory:
    """Find the end record in the tail (one request) and parse the central directory.

    Raises:
        FormatError: not a zip, a truncated zip, or a directory that cannot be trusted.
    """
    bad = _raiser(source)
    tail_start = max(0, source.size - probe_bytes)
    tail = source.read(tail_start, source.size)
    at = _find_end_record(tail)
    if at < 0:
        raise bad(_not_zip_reason(source, tail if tail_start == 0 else None))
    _, _, _, count, cd_size, cd_offset, _ = struct.unpack_from("<HHHHIIH", tail, at + 4)
    loc = at - EOCD64_LOCATOR_LEN
    if loc >= 0 and tail[loc : loc + 4] == EOCD64_LOCATOR_SIG:
        (eocd64_offset,) = struct.unpack_from("<Q", tail, loc + 8)
        rec = _bytes_at(source, tail, tail_start, eocd64_offset, EOCD64_LEN)
        if rec[:4] != EOCD64_SIG:
            raise bad(f"ZIP64 end record expected at byte {eocd64_offset}")
        count, cd_size, cd_offset = struct.unpack_from("<QQQ", rec, 32)
    if count > MAX_ENTRIES:
        raise bad(f"zip directory lists {count} entries, more than {MAX_ENTRIES}")
    if cd_size > max_cd_bytes:
        raise bad(f"zip central directory of {cd_size} bytes exceeds {max_cd_bytes}")
    if cd_offset + cd_size > source.size:
        raise bad(
            f"zip central directory at bytes {cd_offset}-{cd_offset + cd_size} lies past the end of the file ({source.size} bytes)"
        )
    cd = _bytes_at(source, tail, tail_start, cd_offset, cd_size)
    entries = _parse_central(cd, count, bad)
    for e in entries.values():
        if e.header_offset + LOCAL_LEN + e.compressed_size > cd_offset:
            raise bad(
                f"zip entry {e.name}: bytes {e.header_offset}-{e.header_offset + e.compressed_size} run into the central directory at {cd_offset}"
            )
    return ZipDirectory(entries, cd_offset)


def read_entries(
    source: ByteSource, directory: ZipDirectory, entries: list[ZipEntry], merge_gap: int
) -> dict[str, bytes]:
    """The data of small stored entries (data.pkl, byteorder), neighbours in one request.

    Each local header is parsed exactly; a span reaches LOCAL_HEADER_SLACK past the name, enough
    for torch's padding, and a longer extra field costs one more request.

    Raises:
        FormatError: compressed, truncated, or a local header that does not match the directory.
    """
    bad = _raiser(source)
    for entry in entries:
        require_stored(source, entry)
    spans = [
        Span(
            e.header_offset,
            min(
                e.header_offset + LOCAL_LEN + len(e.raw_name) + LOCAL_HEADER_SLACK + e.size,
                directory.record_end(e),
            ),
            key=e.name,
        )
        for e in entries
    ]
    raws = fetch(source, plan_requests(spans, merge_gap), concurrency=1)
    out: dict[str, bytes] = {}
    for entry in entries:
        raw = raws[entry.name]
        start = local_data_start(raw, entry, bad)
        if start + entry.size > len(raw):  # an unusually long extra field
            begin = entry.header_offset
            raw = raw + source.read(begin + len(raw), begin + start + entry.size)
        data = raw[start : start + entry.size]
        if len(data) != entry.size:
            raise bad(f"zip entry {entry.name} is truncated ({len(data)} of {entry.size} bytes)")
        out[entry.name] = data
    return out


def require_stored(source: ByteSource, entry: ZipEntry) -> None:
    """Refuse compressed entries: their bytes cannot be read by range.

    Raises:
        FormatError: the entry is not STORED.
    """
    if entry.method != STORED or entry.compressed_size != entry.size:
        raise FormatError(
            source.repo_id, source.revision, source.name,
            f"zip entry {entry.name} is compressed (method {entry.method}); torch checkpoints store entries uncompressed",
        )  # fmt: skip


def local_data_start(raw: bytes, entry: ZipEntry, bad: Callable[[str], FormatError]) -> int:
    """Offset of the data after the local header at the start of ``raw``.

    Raises:
        FormatError: no local header there, or its name differs from the directory's.
    """
    if len(raw) < LOCAL_LEN or raw[:4] != LOCAL_SIG:
        raise bad(f"zip entry {entry.name}: no local header at byte {entry.header_offset}")
    (method,) = struct.unpack_from("<H", raw, 8)
    n_len, e_len = struct.unpack_from("<HH", raw, 26)
    if raw[LOCAL_LEN : LOCAL_LEN + n_len] != entry.raw_name:
        raise bad(f"zip entry {entry.name}: local header names another file")
    if method != STORED:
        raise bad(
            f"zip entry {entry.name} is compressed (method {method}); torch checkpoints store entries uncompressed"
        )
    return LOCAL_LEN + n_len + e_len


def check_guard(raw: bytes, guard: LocalHeaderGuard) -> str | None:
    """None when the local header read before a storage's rows puts its data where predicted, else why not."""
    if len(raw) < LOCAL_LEN or raw[:4] != LOCAL_SIG:
        return f"zip entry {guard.entry}: no local header at byte {guard.begin}"
    (method,) = struct.unpack_from("<H", raw, 8)
    n_len, e_len = struct.unpack_from("<HH", raw, 26)
    if method != STORED:
        return f"zip entry {guard.entry} is compressed (method {method}); torch checkpoints store entries uncompressed"
    if raw[LOCAL_LEN : LOCAL_LEN + n_len].decode("utf-8", "replace") != guard.entry:
        return f"zip entry {guard.entry}: local header names another file"
    if LOCAL_LEN + n_len + e_len != guard.end - guard.begin:
        actual = guard.begin + LOCAL_LEN + n_len + e_len
        return f"zip entry {guard.entry}: data starts at byte {actual}, not at the {TORCH_ALIGNMENT}-byte boundary {guard.end} torch writes"
    return None


def _find_end_record(tail: bytes) -> int:
    """Offset of the end record whose comment length reaches exactly the end of the file, or -1."""
    end = len(tail) - EOCD_LEN + 4
    while (at := tail.rfind(EOCD_SIG, 0, max(0, end))) >= 0:
        (comment,) = struct.unpack_from("<H", tail, at + 20)
        if at + EOCD_LEN + comment == len(tail):
            return at
        end = at + 3  # a signature inside data or a comment: look further back
    return -1


def _parse_central(cd: bytes, count: int, bad: Callable[[str], FormatError]) -> dict[str, ZipEntry]:
    entries: dict[str, ZipEntry] = {}
    pos = 0
    for _ in range(count):
        if cd[pos : pos + 4] != CENTRAL_SIG or pos + CENTRAL_LEN > len(cd):
            raise bad(f"zip central directory is corrupt at entry {len(entries)}")
        (method,) = struct.unpack_from("<H", cd, pos + 10)
        csize, usize, n_len, e_len, c_len = struct.unpack_from("<IIHHH", cd, pos + 20)
        (offset,) = struct.unpack_from("<I", cd, pos + 42)
        raw_name = cd[pos + CENTRAL_LEN : pos + CENTRAL_LEN + n_len]
        extra = cd[pos + CENTRAL_LEN + n_len : pos + CENTRAL_LEN + n_len + e_len]
        usize, csize, offset = _zip64(extra, usize, csize, offset)
        name = raw_name.decode("utf-8", "replace")
        entries[name] = ZipEntry(name, bytes(raw_name), offset, usize, csize, method)
        pos += CENTRAL_LEN + n_len + e_len + c_len
    if pos > len(cd):
        raise bad("zip central directory is truncated")
    return entries


def _zip64(extra: bytes, usize: int, csize: int, offset: int) -> tuple[int, int, int]:
    """Replace 0xFFFFFFFF fields by the ZIP64 extra's 64-bit values, in the order the format fixes."""
    pos = 0
    while pos + 4 <= len(extra):
        tag, size = struct.unpack_from("<HH", extra, pos)
        if tag == ZIP64_EXTRA_ID:
            # The declared size may overrun the extra field: read only the values that are there.
            fits = min(size, 24, len(extra) - pos - 4) // 8
            values = list(struct.unpack_from(f"<{fits}Q", extra, pos + 4))
            if usize == ZIP64_MARK and values:
                usize = values.pop(0)
            if csize == ZIP64_MARK and values:
                csize = values.pop(0)
            if offset == ZIP64_MARK and values:
                offset = values.pop(0)
        pos += 4 + size
    return usize, csize, offset


def _bytes_at(source: ByteSource, tail: bytes, tail_start: int, begin: int, length: int) -> bytes:
    """Bytes [begin, begin+length): from the tail already read, or one more request."""
    if begin >= tail_start:
        return tail[begin - tail_start : begin - tail_start + length]
    return source.read(begin, begin + length)


def _not_zip_reason(source: ByteSource, whole: bytes | None) -> str:
    """Tell a pre-1.6 torch file (a bare pickle stream) from any other non-zip."""
    head = whole[:2] if whole is not None else source.read(0, 2)
    if head[:1] == b"\x80":  # pickle PROTO opcode: torch's legacy format starts with a pickled magic number
        return "legacy torch serialization (not a zip); not supported"
    return "not a zip archive (no end-of-central-directory record); truncated or not a torch checkpoint"


def _raiser(source: ByteSource) -> Callable[[str], FormatError]:
    def bad(reason: str) -> FormatError:
        return FormatError(source.repo_id, source.revision, source.name, reason)

    return bad
