"""Plan the byte ranges of a file up front, merge neighbours, and fetch them concurrently.

The Hub's quota counts requests, not bytes, so two wanted spans closer than
``merge_gap_bytes`` become one request (the gap bytes are cheaper than a request).
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from hubscan.pipeline.readers.byte_source import ByteSource


@dataclass(frozen=True)
class Span:
    """A wanted byte range [begin, end) and who wants it."""

    begin: int
    end: int
    key: object


@dataclass(frozen=True)
class Request:
    """One ranged request covering several spans."""

    begin: int
    end: int
    spans: tuple[Span, ...]


def plan_requests(spans: Iterable[Span], merge_gap: int) -> list[Request]:
    """Merge spans whose gap is at most ``merge_gap`` into requests, in file order."""
    ordered = sorted((s for s in spans if s.end > s.begin), key=lambda s: (s.begin, s.end))
    requests: list[Request] = []
    group: list[Span] = []
    begin = end = 0
    for span in ordered:
        if group and span.begin - end <= merge_gap:
            group.append(span)
            end = max(end, span.end)
            continue
        if group:
            requests.append(Request(begin, end, tuple(group)))
        group, begin, end = [span], span.begin, span.end
    if group:
        requests.append(Request(begin, end, tuple(group)))
    return requests


def fetch(source: ByteSource, requests: list[Request], concurrency: int) -> dict[object, bytes]:
    """Fetch every request (concurrently) and cut out each span's bytes, keyed by span key.

    Raises:
        FetchError: a request failed after retries (the first failure is raised).
    """
    if not requests:
        return {}
    read_many = getattr(source, "read_many", None)
    per_request = getattr(source, "ranges_per_request", 1)
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(requests)))) as pool:
        if read_many is not None and per_request > 1:
            # Several ranges in one multi-range request, groups fetched concurrently.
            groups = [requests[i : i + per_request] for i in range(0, len(requests), per_request)]
            spans = [[(r.begin, r.end) for r in g] for g in groups]
            bodies = [b for got in pool.map(read_many, spans) for b in got]
        else:
            bodies = list(pool.map(lambda r: source.read(r.begin, r.end), requests))
    out: dict[object, bytes] = {}
    for request, body in zip(requests, bodies, strict=True):
        view = memoryview(body)
        for span in request.spans:
            out[span.key] = bytes(view[span.begin - request.begin : span.end - request.begin])
    return out
