"""Parse a `multipart/byteranges` answer (RFC 9110 §14.6) into (start, bytes) parts.

Each part is cut by the length its own Content-Range states, not by searching for the next
boundary, so boundary bytes inside the data cannot split a part. A part whose headers or
length do not parse ends the parse: the caller reads whatever is missing range by range.
"""

from __future__ import annotations

import re

_CONTENT_RANGE = re.compile(rb"^content-range:\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)
_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)


def boundary_of(content_type: str) -> str | None:
    """The boundary of a multipart/byteranges Content-Type, or None for any other type."""
    if not content_type.lower().startswith("multipart/byteranges"):
        return None
    m = _BOUNDARY.search(content_type)
    return m.group(1) if m else None


def parse_byteranges(body: bytes, boundary: str) -> list[tuple[int, bytes]]:
    """(start offset, data) of every well-formed part, in the order sent."""
    delimiter = b"--" + boundary.encode()
    parts: list[tuple[int, bytes]] = []
    pos = body.find(delimiter)
    while pos >= 0:
        pos += len(delimiter)
        if body[pos : pos + 2] == b"--":
            break  # the closing delimiter
        headers_end = body.find(b"\r\n\r\n", pos)
        if headers_end < 0:
            break
        span = _content_range(body[pos:headers_end])
        if span is None:
            break
        first, last = span
        data_start = headers_end + 4
        data_end = data_start + last - first + 1
        if data_end > len(body):
            break  # cut short: keep what was whole
        parts.append((first, body[data_start:data_end]))
        pos = body.find(delimiter, data_end)
    return parts


def _content_range(headers: bytes) -> tuple[int, int] | None:
    for line in headers.split(b"\r\n"):
        m = _CONTENT_RANGE.match(line.strip())
        if m:
            first, last = int(m.group(1)), int(m.group(2))
            return (first, last) if last >= first else None
    return None
