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
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit

import httpx2
from huggingface_hub import get_session
from huggingface_hub.utils import build_hf_headers

from hubscan.pipeline import __version__
from hubscan.pipeline.bounded_json import loads_bounded
from hubscan.pipeline.config import Settings
from hubscan.pipeline.errors import (
    BadListing,
    FetchError,
    HubscanError,
    RateLimited,
    RepoGated,
    RepoMissing,
    RevisionMissing,
)
from hubscan.pipeline.names import BadName, check_filename, check_repo_id, check_revision, shown, url_path
from hubscan.pipeline.ratelimit import rate_limit, retry_after

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
REDIRECTS = frozenset({301, 302, 303, 307, 308})
# The Hub chains at most two (revision name → commit, then to the CDN); more is a loop.
MAX_REDIRECTS = 5


class DeadlineExceeded(Exception):
    """A body still arriving after the request's total deadline (a slow-drip server)."""


RETRY_EXCEPTIONS = (
    httpx2.TimeoutException,
    httpx2.NetworkError,
    httpx2.RemoteProtocolError,
    # A body that does not decode as its Content-Encoding says (gzip over plain bytes, a CDN's
    # broken gzip): the transfer failed, not the file, and a retry may well get good bytes.
    httpx2.DecodingError,
    DeadlineExceeded,
)


@dataclass(frozen=True)
class Fetched:
    """One answer: its body holds at most the bytes asked for, however much the server sent."""

    response: httpx2.Response
    received: int  # body bytes that came off the wire, kept or not
    complete: bool  # the whole body arrived within the limit


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

    def adopt(self, bucket: str, quota: int, window_s: float) -> None:
        """The server announced its quota for ``bucket`` (RateLimit-Policy): follow it."""
        ...


@dataclass
class RequestLog:
    """Requests by bucket ("api" and "resolvers" count against Hub quotas, "cdn" does not), bytes received, retries."""

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


def bucket_of(url: str, endpoint: str) -> str:
    """The Hub quota a request counts against: "api", "resolvers", or "cdn" for another origin (no quota)."""
    if _origin(url) != _origin(endpoint):
        return "cdn"
    return "api" if "/api/" in urlsplit(url).path else "resolvers"


def _useless_whole(range_header: str | None, response: httpx2.Response, limit: int) -> bool:
    """A 200 to a ranged GET that starts past byte 0, bigger than the limit: not worth one byte."""
    if response.status_code != 200 or not range_header:
        return False
    first = range_header.removeprefix("bytes=").partition("-")[0]
    length = response.headers.get("Content-Length", "")
    return first.isdigit() and int(first) > 0 and not (length.isdigit() and int(length) <= limit)


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc.lower()


# Header numbers are sizes and epochs: 19 digits hold any int64.
MAX_HEADER_DIGITS = 19


def header_int(value: str) -> int | None:
    """A header's non-negative integer, or None: headers arrive as latin-1 text, where "²" is a
    digit to ``str.isdigit`` and ``int()`` refuses it, and 5,000 digits make ``int()`` raise."""
    value = value.strip()
    if not value or len(value) > MAX_HEADER_DIGITS or not value.isascii() or not value.isdigit():
        return None
    return int(value)


def retry_after_seconds(response: httpx2.Response) -> float | None:
    """Seconds the server asked us to wait: Retry-After (seconds or date), else RateLimit reset."""
    return retry_after(response.headers)


def next_location(url: str, location: str, where: Where) -> str:
    """Where a redirect points, resolved against the request URL (RFC 3986).

    Raises:
        FetchError: a Location that does not parse, or leads off http(s) (``file://``, ``ftp:``…).
    """
    try:
        target = urljoin(url, location)
        parts = urlsplit(target)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        target, parts = "", None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchError(
            where.repo_id,
            where.revision,
            where.filename,
            f"redirect to an unusable location {shown(location)}",
        )
    return target


class _Pause:
    """Until when the server said its quota window is spent; one per endpoint in a process, since
    the Hub counts per token or IP, not per client object."""

    def __init__(self) -> None:
        self.until = 0.0
        self._announced: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def announce(self, bucket: str, quota: int, window_s: int) -> bool:
        """Note the quota the server announced; True when it is new (worth passing to the budget)."""
        with self._lock:
            new = self._announced.get(bucket) != (quota, window_s)
            self._announced[bucket] = (quota, window_s)
            return new

    def hold(self, seconds: float) -> None:
        """No request before now + seconds."""
        with self._lock:
            self.until = max(self.until, time.time() + seconds)


_PAUSES: dict[str, _Pause] = {}
_PAUSES_LOCK = threading.Lock()


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
        with _PAUSES_LOCK:
            self._pause = _PAUSES.setdefault(self.endpoint, _Pause())

    def with_log(self, log: RequestLog) -> HubHttp:
        """The same client counting into another log (one per model)."""
        return HubHttp(self.settings, log, self.budget)

    def resolve_url(self, repo_id: str, revision: str, filename: str) -> str:
        """URL of a file at a pinned revision, every name escaped as URL path text.

        Raises:
            BadListing: a name the Hub would never serve (``..`` segments, an absolute path, …):
                such a URL could name another repo, and the token would go with it.
        """
        try:
            names = (check_repo_id(repo_id), check_revision(revision), check_filename(filename))
        except BadName as exc:
            raise BadListing(repo_id, revision, filename, str(exc)) from None
        repo, rev, name = names
        return (
            f"{self.endpoint}/{url_path(repo, keep_slashes=True)}/resolve/"
            f"{url_path(rev, keep_slashes=False)}/{url_path(name, keep_slashes=True)}"
        )

    def get(
        self, url: str, where: Where, headers: dict[str, str] | None = None, params: Any = None
    ) -> httpx2.Response:
        """A GET whose whole body (at most ``max_json_bytes``) is wanted; redirects followed.

        Raises:
            RepoMissing, RepoGated: the Hub refused the repo (401/403/404).
            RateLimited: 429 answers outlasted the retry budget.
            FetchError: any other failure after retries, or a body above the limit.
        """
        fetched = self.fetch(url, where, headers, params)
        if not fetched.complete:
            raise FetchError(
                where.repo_id,
                where.revision,
                where.filename,
                f"answer from {_origin(url)[1]} exceeds {self.settings.max_json_bytes} bytes",
            )
        return fetched.response

    def fetch(
        self,
        url: str,
        where: Where,
        headers: dict[str, str] | None = None,
        params: Any = None,
        limit: int | None = None,
        follow: bool = True,
    ) -> Fetched:
        """One GET with retries; the body is streamed and kept up to ``limit`` bytes.

        Redirects are followed here, not by the transport, so credentials never leave the
        endpoint's origin; with ``follow=False`` a 3xx is returned as it came.

        Raises:
            RepoMissing, RepoGated: the Hub refused the repo (401/403/404).
            RateLimited: 429 answers outlasted the retry budget.
            FetchError: any other failure after retries.
        """
        limit = self.settings.max_json_bytes if limit is None else limit
        for _ in range(MAX_REDIRECTS + 1):
            fetched = self._retrying(url, where, headers, params, limit)
            location = fetched.response.headers.get("Location")
            if not follow or fetched.response.status_code not in REDIRECTS or not location:
                return fetched
            url, params = next_location(url, location, where), None
        raise FetchError(
            where.repo_id, where.revision, where.filename, f"more than {MAX_REDIRECTS} redirects"
        )

    def _retrying(
        self, url: str, where: Where, headers: dict[str, str] | None, params: Any, limit: int
    ) -> Fetched:
        s = self.settings
        attempt = refused = 0
        bucket = bucket_of(url, self.endpoint)
        while True:
            self._wait_for_room(bucket)
            try:
                fetched = self._once(url, headers, params, limit)
            except httpx2.ConnectError as exc:
                # Refused or unresolvable: retrying for a minute only delays the same answer.
                self.log.count(bucket, 0)
                if refused >= s.connect_retries:
                    raise FetchError(
                        where.repo_id, where.revision, where.filename, f"cannot connect to {url}: {exc}"
                    ) from None
                refused += 1
                self._sleep(s.connect_retry_s)
                continue
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
            except (httpx2.HTTPError, httpx2.InvalidURL) as exc:
                # Not retried: a URL the transport refuses (a scheme it has no handler for) stays refused.
                self.log.count(bucket, 0)
                raise FetchError(
                    where.repo_id,
                    where.revision,
                    where.filename,
                    f"request refused: {type(exc).__name__}: {exc}",
                ) from None
            response = fetched.response
            self.log.count(bucket, fetched.received)
            self._note_limits(bucket, response)
            if response.status_code < 400:
                return fetched
            if response.status_code in RETRY_STATUSES and attempt < s.max_retries:
                wait = retry_after_seconds(response)
                if wait is not None and wait > s.max_retry_after_s:
                    raise RateLimited(
                        where.repo_id,
                        where.revision,
                        where.filename,
                        f"HTTP {response.status_code}: server asks to wait {wait:.0f}s,"
                        f" more than max_retry_after_s ({s.max_retry_after_s:.0f}s)",
                        response.status_code,
                    )
                if wait is not None and self.budget is not None:
                    self.budget.defer(wait)
                self._sleep(self._backoff(attempt) if wait is None else wait)
                attempt += 1
                continue
            raise self._error(response, where, bucket)

    def _once(self, url: str, headers: dict[str, str] | None, params: Any, limit: int) -> Fetched:
        """One request, body streamed: kept up to ``limit`` bytes, abandoned past it or the deadline."""
        merged = {**self._headers_for(url), **(headers or {})}
        deadline = time.monotonic() + self.settings.request_deadline_s
        kept, received, complete = bytearray(), 0, True
        with self._session.stream(
            "GET", url, headers=merged, params=params, timeout=self._timeout, follow_redirects=False
        ) as streamed:
            if _useless_whole(merged.get("Range"), streamed, limit):
                # A whole file for a range past its start: no prefix of it can serve the read.
                complete = False
                limit = 0
            for chunk in (
                streamed.iter_bytes() if limit else ()
            ):  # network-sized pieces: received counts what came
                received += len(chunk)
                room = limit - len(kept)
                kept += chunk[:room]
                if len(chunk) > room:
                    complete = False  # leaving the stream unread drops the connection: no more bytes come
                    break
                if time.monotonic() > deadline:
                    raise DeadlineExceeded(
                        f"body still arriving after {self.settings.request_deadline_s:.0f}s"
                    )
            # The body is already decoded: the rebuilt response must not decode it again. Raw bytes,
            # not decoded text: a latin-1 header value ("²") cannot be encoded back as ASCII.
            kept_headers = [(k, v) for k, v in streamed.headers.raw if k.lower() != b"content-encoding"]
            response = httpx2.Response(
                streamed.status_code, headers=kept_headers, content=bytes(kept), request=streamed.request
            )
        return Fetched(response, received, complete)

    def _headers_for(self, url: str) -> dict[str, str]:
        """The client's headers; the token only for the endpoint's own origin."""
        if _origin(url) == _origin(self.endpoint):
            return self._headers
        return {k: v for k, v in self._headers.items() if k.lower() != "authorization"}

    def _wait_for_room(self, bucket: str) -> None:
        """Hold the request while the server said its window is spent, then take a budget slot."""
        if bucket == "cdn":
            return  # no Hub quota counts the CDN origin
        wait = self._pause.until - time.time()
        if wait > 0:
            self._sleep(wait)
        if self.budget is not None:
            self.budget.acquire(bucket)

    def get_json(self, url: str, where: Where, params: Any = None) -> tuple[Any, httpx2.Response]:
        """GET a JSON document.

        Raises:
            FetchError: the body is not JSON, or nests deeper than any Hub answer (a listing page of
                100k nested arrays was a RecursionError traceback in the driver).
        """
        response = self.get(url, where, params=params)
        try:
            return loads_bounded(response.content, self.settings.max_json_bytes), response
        except ValueError as exc:  # JsonLimit, JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise FetchError(
                where.repo_id, where.revision, where.filename, f"invalid JSON from {url}: {exc}"
            ) from None

    def _note_limits(self, bucket: str, response: httpx2.Response) -> None:
        """Keep the announced quota, and pause every request when the window has no room left."""
        info = rate_limit(response.headers)
        if info is None:
            return
        if info.quota and info.window_s:
            self.log.policy[bucket] = (info.quota, info.window_s)
            if self.budget is not None and self._pause.announce(bucket, info.quota, info.window_s):
                self.budget.adopt(bucket, info.quota, info.window_s)
        if info.remaining == 0 and response.status_code != 429:
            # The window is spent: the next request would be refused, so none is sent before the
            # reset, but never later than the cap: `t=999999999` must not stop a sweep for good.
            pause = min(info.reset_s, self.settings.max_retry_after_s)
            self._pause.hold(pause)
            if self.budget is not None:
                self.budget.defer(pause)

    def _backoff(self, attempt: int) -> float:
        base = min(self.settings.backoff_max_s, self.settings.backoff_base_s * 2**attempt)
        return base * (0.5 + random.random() / 2)  # jitter keeps Ray workers from retrying in lockstep

    def _sleep(self, seconds: float) -> None:
        self.log.retried(seconds)
        time.sleep(seconds)

    def _error(self, response: httpx2.Response, where: Where, bucket: str) -> HubscanError:
        code = response.headers.get("X-Error-Code", "")
        status = response.status_code
        args = (where.repo_id, where.revision, where.filename)
        if bucket == "cdn":
            # The CDN knows nothing of gates: a 403 there is an expired or refused signature.
            reason = "signed URL refused (expired or invalid)" if status == 403 else response.reason_phrase
            return FetchError(*args, f"CDN answered HTTP {status}: {reason}", status)
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
