"""What the server saw and allowed: the request log tests assert on, and the Hub's fixed-window rate limits."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

# Anonymous quotas per 5-minute window (Hub docs, Sept 2025): what RateLimit-Policy advertises by default.
HUB_QUOTAS = {"api": 500, "resolvers": 3000}
HUB_WINDOW_SECONDS = 300.0
# A reader waits this long for in-flight requests to finish writing their record.
SETTLE_TIMEOUT = 2.0


@dataclass(frozen=True)
class RequestRecord:
    """One request as served: bytes_sent counts body bytes actually written to the socket."""

    method: str
    path: str
    query: str
    repo_id: str | None
    filename: str | None
    range: str | None
    status: int
    bytes_sent: int
    time: float
    duration: float
    fault: str | None = None
    error: str | None = None
    origin: str = "hub"  # "hub" or "cdn", the server that answered
    authorization: bool = False  # whether the request carried an Authorization header


class RequestLog:
    """Thread-safe, append-only list of RequestRecord; reads wait until in-flight requests are recorded.

    A client can hold the full response before the server thread appends the record, so reads first
    wait (up to SETTLE_TIMEOUT) for requests that have started but not finished.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._records: list[RequestRecord] = []
        self._in_flight = 0

    def begin(self) -> None:
        """A request started: readers will wait for its record."""
        with self._cond:
            self._in_flight += 1

    def end(self, record: RequestRecord) -> None:
        """A request finished: store its record."""
        with self._cond:
            self._records.append(record)
            self._in_flight -= 1
            self._cond.notify_all()

    def snapshot(self) -> list[RequestRecord]:
        """Copy of all records once in-flight requests have finished."""
        with self._cond:
            self._cond.wait_for(lambda: self._in_flight == 0, timeout=SETTLE_TIMEOUT)
            return list(self._records)

    def where(self, **fields: Any) -> list[RequestRecord]:
        """Records whose attributes equal the given values, e.g. log.where(filename="model.safetensors")."""
        return [r for r in self.snapshot() if all(getattr(r, k) == v for k, v in fields.items())]

    def totals(self) -> dict[str, tuple[int, int]]:
        """(requests, body bytes sent) per origin ("hub", "cdn")."""
        out: dict[str, tuple[int, int]] = {}
        for r in self.snapshot():
            n, b = out.get(r.origin, (0, 0))
            out[r.origin] = (n + 1, b + r.bytes_sent)
        return out

    def clear(self) -> None:
        """Forget every record, after letting in-flight requests finish so none lands in the next test."""
        with self._cond:
            self._cond.wait_for(lambda: self._in_flight == 0, timeout=SETTLE_TIMEOUT)
            self._records.clear()

    def __len__(self) -> int:
        return len(self.snapshot())

    def __iter__(self) -> Iterator[RequestRecord]:
        return iter(self.snapshot())

    def __getitem__(self, index: int) -> RequestRecord:
        return self.snapshot()[index]


class RateLimiter:
    """Per-bucket request counts in fixed windows, reported with the Hub's RateLimit headers.

    Only buckets named in `quota` are enforced; the others are counted against the Hub's anonymous
    quota for the headers but never refused, and then never report r=0 either, because huggingface_hub
    sleeps until the reset when it sees r=0 on any 429 (up to 300 s).
    """

    def __init__(self, quota: Mapping[str, int] | None = None, window: float = HUB_WINDOW_SECONDS) -> None:
        if window <= 0:
            raise ValueError("window must be positive")
        self.enforced = dict(quota or {})
        self.window = window
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._window_index = 0
        self._used: dict[str, int] = {}

    def hit(self, bucket: str) -> tuple[bool, dict[str, str]]:
        """Count one request; (allowed, headers). A refused request carries Retry-After = seconds to reset."""
        with self._lock:
            now = time.monotonic()
            index = int((now - self._start) // self.window)
            if index != self._window_index:
                self._window_index, self._used = index, {}
            used = self._used[bucket] = self._used.get(bucket, 0) + 1
            reset = max(0, math.ceil(self._start + (index + 1) * self.window - now))
        enforced = bucket in self.enforced
        quota = self.enforced[bucket] if enforced else HUB_QUOTAS.get(bucket, HUB_QUOTAS["api"])
        allowed = not enforced or used <= quota
        remaining = max(quota - used, 0) if enforced else max(quota - used, 1)
        headers = {
            "RateLimit": f'"{bucket}";r={remaining};t={reset}',
            "RateLimit-Policy": f'"fixed window";"{bucket}";q={quota};w={math.ceil(self.window)}',
        }
        if not allowed:
            headers["Retry-After"] = str(reset)
        return allowed, headers
