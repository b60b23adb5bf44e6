"""multipart/byteranges parsing: parts cut by their own Content-Range, never fooled by the data."""

from __future__ import annotations

from hubscan.pipeline.readers.byteranges import boundary_of, parse_byteranges

B = "sep42"


def part(first: int, data: bytes, total: int = 1000, header: str | None = None) -> bytes:
    cr = header or f"Content-Range: bytes {first}-{first + len(data) - 1}/{total}"
    return f"\r\n--{B}\r\nContent-Type: application/octet-stream\r\n{cr}\r\n\r\n".encode() + data


def test_parts_in_order_and_the_boundary_inside_the_data() -> None:
    tricky = f"xx\r\n--{B}\r\nContent-Range: bytes 0-1/9\r\n\r\nyy".encode()
    body = part(10, tricky) + part(500, b"abc") + f"\r\n--{B}--\r\n".encode()
    assert parse_byteranges(body, B) == [(10, tricky), (500, b"abc")]


def test_a_missing_or_cut_part_keeps_what_was_whole() -> None:
    body = part(10, b"0123456789") + part(500, b"abc")[:-1]  # the last part is cut short
    assert parse_byteranges(body, B) == [(10, b"0123456789")]
    assert parse_byteranges(f"\r\n--{B}--\r\n".encode(), B) == []


def test_a_malformed_content_range_ends_the_parse() -> None:
    body = part(10, b"ok") + part(20, b"bad", header="Content-Range: bytes 30-20/1000") + part(40, b"late")
    assert parse_byteranges(body, B) == [(10, b"ok")]
    assert parse_byteranges(part(0, b"x", header="Content-Range: items 0-0/1"), B) == []


def test_boundary_of_content_types() -> None:
    assert boundary_of('multipart/byteranges; boundary="a b"') == "a b"
    assert boundary_of("multipart/byteranges; boundary=xyz") == "xyz"
    assert boundary_of("application/octet-stream") is None
