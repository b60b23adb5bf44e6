"""The only module that makes network calls: GETs with timeouts, retries and request accounting.

Transport is huggingface_hub's own HTTP session (so proxies, user agent and `HF_TOKEN`
handling match the official client); retry and error mapping are ours, because the
library's header helper and first listing page do not retry, and its client has no timeout.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import httpx2
from huggingface_hub import get_session
from huggingface_hub.utils import build_hf_headers, parse_ratelimit_headers

from pipeline import __version__
from pipeline.config import Settings
from pipeline.errors import FetchError, HubscanError, RateLimited, RepoGated, RepoMissing, RevisionMissing

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
RETRY_EXCEPTIONS = (httpx2.TimeoutException, httpx2.NetworkError, httpx2.RemoteProtocolError)


@dataclass(frozen=True)
class Where:
    """What a request is about, so every error can name model, revision and file."""

    repo_id: str
    revision: str | None = None
    filename: str | None = None


class Budget(Protocol):
    """A request quota shared by every worker of a sweep (the Hub counts per token or IP)."""

    def acquire(self, bucket: str) -> None:
        """Block until one request in ``bucket`` ("api" or "resolvers") is allowed."""
        ...

    def defer(self, seconds: float) -> None:
        """The server asked for a pause: hold every worker back for ``seconds``."""
        ...


@dataclass
class RequestLog:
    """Requests made, by Hub quota bucket ("api" or "resolvers"), plus body bytes and retries."""

    requests: Counter[str] = field(default_factory=Counter)
    # The quota the server announced per bucket (RateLimit-Policy): (requests, window seconds).
    policy: dict[str, tuple[int, int]] = field(default_factory=dict)
    bytes: int = 0
    retries: int = 0
    waited_s: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, bucket: str, nbytes: int) -> None:
        """Record one request and its body size."""
        with self._lock:
            self.requests[bucket] += 1
            self.bytes += nbytes

    def retried(self, waited: float) -> None:
        """Record one retry and the time slept before it."""
        with self._lock:
            self.retries += 1
            self.waited_s += waited


def _bucket(url: str) -> str:
    # The Hub meters /api/* and file resolves in separate quotas.
    return "api" if "/api/" in url else "resolvers"


def retry_after_seconds(response: httpx2.Response) -> float | None:
    """Seconds the server asked us to wait: Retry-After (seconds or date), else RateLimit reset."""
    value = response.headers.get("Retry-After")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
            except (TypeError, ValueError):
                pass
    info = parse_ratelimit_headers(response.headers)
    if info is not None and info.remaining == 0:
        return float(info.reset_in_seconds)
    return None


class HubHttp:
    """GETs against one Hub endpoint with the Settings' timeouts, retries and token."""

    def __init__(
        self, settings: Settings, log: RequestLog | None = None, budget: Budget | None = None
    ) -> None:
        self.settings = settings
        self.budget = budget
        self.endpoint = settings.endpoint.rstrip("/")
        self.log = log or RequestLog()
        self._session = get_session()
        self._headers = build_hf_headers(
            token=settings.token or False, library_name="hubscan", library_version=__version__
        )
        self._timeout = httpx2.Timeout(settings.read_timeout_s, connect=settings.connect_timeout_s)

    def with_log(self, log: RequestLog) -> HubHttp:
        """The same client counting into another log (one per model)."""
        return HubHttp(self.settings, log, self.budget)

    def resolve_url(self, repo_id: str, revision: str, filename: str) -> str:
        """URL of a file at a pinned revision."""
        return f"{self.endpoint}/{repo_id}/resolve/{revision}/{filename}"

    def get(
        self, url: str, where: Where, headers: dict[str, str] | None = None, params: Any = None
    ) -> httpx2.Response:
        """One GET with retries on 408/429/5xx and network errors; body fully read.

        Raises:
            RepoMissing, RepoGated: the Hub refused the repo (401/403/404).
            RateLimited: 429 answers outlasted the retry budget.
            FetchError: any other failure after retries.
        """
        s = self.settings
        merged = {**self._headers, **(headers or {})}
        attempt = 0
        bucket = _bucket(url)
        while True:
            if self.budget is not None:
                self.budget.acquire(bucket)
            try:
                response = self._session.get(
                    url, headers=merged, params=params, timeout=self._timeout, follow_redirects=True
                )
                self.log.count(bucket, len(response.content))
                self._note_policy(bucket, response)
            except RETRY_EXCEPTIONS as exc:
                self.log.count(bucket, 0)
                if attempt >= s.max_retries:
                    raise FetchError(
                        where.repo_id,
                        where.revision,
                        where.filename,
                        f"network error after {attempt} retries: {type(exc).__name__}: {exc}",
                    ) from None
                self._sleep(self._backoff(attempt))
                attempt += 1
                continue
            if response.status_code < 400:
                return response
            if response.status_code in RETRY_STATUSES and attempt < s.max_retries:
                wait = retry_after_seconds(response)
                if wait is not None and wait > s.max_retry_after_s:
                    raise RateLimited(
                        where.repo_id,
                        where.revision,
                        where.filename,
                        f"HTTP {response.status_code}: server asks to wait {wait:.0f}s",
                        response.status_code,
                    )
                if wait is not None and self.budget is not None:
                    self.budget.defer(wait)
                self._sleep(self._backoff(attempt) if wait is None else wait)
                attempt += 1
                continue
            raise self._error(response, where)

    def get_range(self, url: str, begin: int, end: int, where: Where) -> bytes:
        """Bytes [begin, end) of a file, checked against what was asked.

        Raises:
            FetchError: the server ignored the range or sent a short body after retries.
        """
        if end <= begin:
            return b""
        for attempt in range(self.settings.max_retries + 1):
            response = self.get(url, where, headers={"Range": f"bytes={begin}-{end - 1}"})
            body = response.content
            if response.status_code == 200 and len(body) >= end:
                return body[begin:end]  # tiny files: some servers answer whole
            if response.status_code == 206 and len(body) == end - begin:
                return body
            if attempt < self.settings.max_retries:
                self.log.retried(0.0)
        raise FetchError(
            where.repo_id,
            where.revision,
            where.filename,
            f"range {begin}-{end - 1}: got HTTP {response.status_code} with {len(body)} bytes, expected {end - begin}",
            response.status_code,
            (begin, end),
        )

    def get_json(self, url: str, where: Where, params: Any = None) -> tuple[Any, httpx2.Response]:
        """GET a JSON document.

        Raises:
            FetchError: the body is not JSON.
        """
        response = self.get(url, where, params=params)
        try:
            return response.json(), response
        except ValueError as exc:
            raise FetchError(
                where.repo_id, where.revision, where.filename, f"invalid JSON from {url}: {exc}"
            ) from None

    def _note_policy(self, bucket: str, response: httpx2.Response) -> None:
        info = parse_ratelimit_headers(response.headers)
        if info is not None and info.limit and info.window_seconds:
            self.log.policy[bucket] = (info.limit, info.window_seconds)

    def _backoff(self, attempt: int) -> float:
        base = min(self.settings.backoff_max_s, self.settings.backoff_base_s * 2**attempt)
        return base * (0.5 + random.random() / 2)  # jitter keeps Ray workers from retrying in lockstep

    def _sleep(self, seconds: float) -> None:
        self.log.retried(seconds)
        time.sleep(seconds)

    def _error(self, response: httpx2.Response, where: Where) -> HubscanError:
        code = response.headers.get("X-Error-Code", "")
        status = response.status_code
        args = (where.repo_id, where.revision, where.filename)
        if code == "GatedRepo" or (status == 403 and not code):
            return RepoGated(
                *args, f"gated repo (HTTP {status}): accept its terms or pass a token with access"
            )
        if code == "RevisionNotFound":
            return RevisionMissing(*args, f"revision not found (HTTP {status})")
        if code == "RepoNotFound" or status == 401:
            return RepoMissing(*args, f"repo not found, private or gated (HTTP {status})")
        if status == 429:
            return RateLimited(*args, f"HTTP 429 after {self.settings.max_retries} retries", status)
        message = response.headers.get("X-Error-Message") or response.reason_phrase
        return FetchError(*args, f"HTTP {status} {code or ''} {message}".strip(), status)
