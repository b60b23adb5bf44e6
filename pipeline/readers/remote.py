"""A file on the Hub read by HTTP range requests, pinned to a commit.

The Hub meters `/resolve/` requests (its "resolvers" quota), not the CDN its redirect points
at. So a file is resolved once, without following the redirect: every range then goes to the
signed URL, which costs no quota. The URL is resolved again shortly before it expires or when
the CDN refuses it. A server that answers `/resolve/` itself (a mirror, a small non-LFS file)
is read there, range by range, or whole once when the file is small.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

from hubscan.pipeline.config import MULTIPART_PART_OVERHEAD
from hubscan.pipeline.errors import FetchError
from hubscan.pipeline.http import REDIRECTS, Fetched, HubHttp, Where, bucket_of, header_int, next_location
from hubscan.pipeline.readers.byte_source import ReadStats
from hubscan.pipeline.readers.byteranges import boundary_of, parse_byteranges

# A Hub-shaped server redirects at most twice (revision name → commit → CDN) before the file.
MAX_HOPS = 3
# Origins that answered a multi-range request with the whole file, one range or 416: asked
# one range at a time from then on (for the life of the process).
_SINGLE_RANGE_ORIGINS: set[str] = set()


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.lower()}"


@dataclass(frozen=True)
class Located:
    """Where a file's ranges go: the signed CDN URL (with its expiry) or the resolve URL itself."""

    url: str
    signed: bool
    resolved_at: float
    expires_at: float | None = None


def signed_url_expiry(url: str) -> float | None:
    """Epoch seconds at which a signed URL stops working: CloudFront `Expires=`, S3 `X-Amz-Date` + `X-Amz-Expires`."""
    query = parse_qs(urlsplit(url).query)
    expires = (query.get("Expires") or [""])[0]
    if header_int(expires) is not None:
        return float(expires)
    amz_date, amz_expires = (query.get("X-Amz-Date") or [""])[0], (query.get("X-Amz-Expires") or [""])[0]
    lifetime = header_int(amz_expires)
    if amz_date and lifetime is not None:
        try:
            signed = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except ValueError:
            return None
        return signed.timestamp() + lifetime
    return None


class RemoteFile:
    """Ranged reads of ``{endpoint}/{repo}/resolve/{sha}/{file}``; every request counted."""

    def __init__(self, http: HubHttp, repo_id: str, revision: str, name: str, size: int | None) -> None:
        self.http = http
        self.repo_id = repo_id
        self.revision: str | None = revision
        self.name = name
        self.url = http.resolve_url(repo_id, revision, name)
        self.stats = ReadStats()
        # The file's sha256 as the resolve redirect names it (X-Linked-ETag), once resolved.
        self.sha256: str | None = None
        self._lock = threading.Lock()
        self._locate_lock = threading.Lock()
        self._resolving = threading.Lock()
        self._where = Where(repo_id, revision, name)
        self._probing = False
        # Why the server cannot serve ranges past the start, once it answered one with the whole file.
        self._ignores_range: str | None = None
        self._located: Located | None = None
        # The file's first bytes when they came with the resolve: the header read needs them anyway.
        self._prefix = b""
        self._whole: bytes | None = None
        self._size = size
        if size is None:
            # Resolve now for the size (and sha256); a server answering directly sends the header bytes too.
            self._probing = True
            self._prefix = self._read_or_locate(0, http.settings.header_probe_bytes, None)
            self._probing = False
        if self._size is None:
            raise FetchError(repo_id, revision, name, "server did not report the file size")
        self.size: int = self._size

    def read(self, begin: int, end: int) -> bytes:
        """Bytes [begin, end) clipped to the file.

        Raises:
            FetchError: after retries, a server that ignores Range, or a CDN that refuses a fresh URL.
        """
        end = min(end, self.size)
        if end <= begin:
            return b""
        if end <= len(self._prefix):
            return self._prefix[begin:end]
        if self._ignores_range is not None and begin > 0:
            raise self._failure(self._ignores_range)  # known already: no request can serve it
        refused: Located | None = None
        while True:
            try:
                located = self._current()
                if located is None:
                    with self._resolving:  # one resolve per file, however many threads read it
                        located = self._current()
                        if located is None:
                            return self._read_or_locate(begin, end, None)
                return self._read_or_locate(begin, end, located)
            except FetchError as exc:
                # An expired or revoked signature: resolve once more, then give up.
                used = located if located is not None else self._located
                if exc.status != 403 or used is None or not used.signed or refused is not None:
                    raise
                refused = used
                with self._locate_lock:
                    if self._located is used:
                        self._located = None

    @property
    def ranges_per_request(self) -> int:
        """Ranges one request may carry: the setting, or 1 once this origin answered otherwise."""
        located = self._located
        if located is None or not located.signed or _origin(located.url) in _SINGLE_RANGE_ORIGINS:
            return 1
        return max(1, self.http.settings.multirange_ranges)

    def read_many(self, spans: list[tuple[int, int]]) -> list[bytes]:
        """Bytes of each [begin, end) span (ascending, non-overlapping), in one multi-range request
        when the CDN answers multipart; whatever it leaves out is read range by range.

        Raises:
            FetchError: as read().
        """
        located = self._current()
        if len(spans) < 2 or located is None or not located.signed or spans[0][0] == 0:
            return [self.read(b, e) for b, e in spans]
        got = self._multirange(located.url, spans)
        return [got[(b, e)] if (b, e) in got else self.read(b, e) for b, e in spans]

    def _multirange(self, url: str, spans: list[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """What one multi-range request gave, by span; an origin that answers otherwise is remembered."""
        wanted = sum(e - b for b, e in spans)
        limit = self._keep_limit(wanted, whole_ok=False) + MULTIPART_PART_OVERHEAD * len(spans)
        header = "bytes=" + ",".join(f"{b}-{e - 1}" for b, e in spans)
        try:
            fetched = self.http.fetch(url, self._where, headers={"Range": header}, limit=limit, follow=False)
        except FetchError as exc:
            if exc.status != 416:
                raise
            _SINGLE_RANGE_ORIGINS.add(_origin(url))  # refuses multi-range outright
            return {}
        with self._lock:
            self.stats.add(fetched.received)
        boundary = boundary_of(fetched.response.headers.get("Content-Type", ""))
        if fetched.response.status_code != 206 or boundary is None or not fetched.complete:
            _SINGLE_RANGE_ORIGINS.add(_origin(url))  # whole file or a single range: one range at a time
            return {}
        parts = dict(parse_byteranges(fetched.response.content, boundary))
        return {(b, e): parts[b] for b, e in spans if len(parts.get(b, b"")) == e - b}

    def close(self) -> None:
        """Nothing to release: the HTTP session is shared."""

    def _current(self) -> Located | None:
        """Where ranges go now; None when the file must be (re-)resolved first."""
        with self._locate_lock:
            located = self._located
            if located is None or located.expires_at is None:
                return located
            lifetime = located.expires_at - located.resolved_at
            margin = min(self.http.settings.signed_url_margin_s, max(0.0, lifetime) / 4)
            if time.time() >= located.expires_at - margin:
                self._located = None
                return None
            return located

    def _read_or_locate(self, begin: int, end: int, located: Located | None) -> bytes:
        """Bytes [begin, end): from memory, from where the file was located, or by resolving it now."""
        if self._whole is not None:
            return self._whole[begin:end]
        if located is not None:
            return self._range(located.url, begin, end)
        url = self.url
        # A small file is asked for whole: if /resolve/ answers it (not LFS), that one answer serves every read.
        small = self._size is not None and self._size <= self.http.settings.small_file_bytes
        for _ in range(MAX_HOPS):
            fetched = self._get(
                url, None if small else (begin, end), self._keep_limit(end - begin, whole_ok=True)
            )
            response = fetched.response
            if response.status_code not in REDIRECTS:
                # Answered here: a mirror or a small file, read at this URL from now on.
                self._set_located(Located(url, signed=False, resolved_at=time.time()))
                return self._accept(fetched, begin, end)
            url = next_location(url, response.headers.get("Location", ""), self._where)
            self._note_identity(response.headers)
            if bucket_of(url, self.http.endpoint) == "cdn":
                self._set_located(Located(url, True, time.time(), signed_url_expiry(url)))
                if self._probing:
                    return b""  # the redirect told size and sha256: a copy needs no byte read
                return self._range(url, begin, min(end, self._size or end))
        raise FetchError(
            self.repo_id, self.revision, self.name, f"more than {MAX_HOPS} redirects from /resolve/"
        )

    def _range(self, url: str, begin: int, end: int) -> bytes:
        """One ranged GET of bytes [begin, end); short bodies are asked again."""
        fetched = self._get(url, (begin, end), self._keep_limit(end - begin, whole_ok=False))
        for _ in range(self.http.settings.max_retries):
            if fetched.response.status_code != 206 or len(fetched.response.content) == end - begin:
                break
            self.http.log.retried(0.0)
            fetched = self._get(url, (begin, end), self._keep_limit(end - begin, whole_ok=False))
        return self._accept(fetched, begin, end)

    def _get(self, url: str, span: tuple[int, int] | None, limit: int) -> Fetched:
        headers = {"Range": f"bytes={span[0]}-{span[1] - 1}"} if span else {}
        fetched = self.http.fetch(url, self._where, headers=headers, limit=limit, follow=False)
        with self._lock:  # ranges are fetched from several threads at once
            self.stats.add(fetched.received)
        return fetched

    def _keep_limit(self, wanted: int, whole_ok: bool) -> int:
        """Bytes a read may receive: what it asked for plus slack, or the whole of a small file."""
        s = self.http.settings
        limit = wanted + int(wanted * s.range_slack_fraction) + s.range_slack_bytes
        if whole_ok and self._size is not None and self._size <= s.small_file_bytes:
            limit = max(limit, self._size)
        return limit

    def _accept(self, fetched: Fetched, begin: int, end: int) -> bytes:
        """The bytes [begin, end) an answer holds, or why it cannot serve them.

        Raises:
            FetchError: a 200 that is neither the whole (small) file nor a prefix covering the range,
                or a 206 of the wrong length or position.
        """
        response, body = fetched.response, fetched.response.content
        total = header_int(response.headers.get("Content-Range", "").rpartition("/")[2])
        if self._size is None and total is not None:
            self._size = total
        if self._size is not None:
            end = min(end, self._size)  # the size probe may ask past the end of a small file
        if response.status_code == 206:
            start = response.headers.get("Content-Range", "").removeprefix("bytes ").partition("-")[0]
            if len(body) == end - begin and start == str(begin):
                return body
            raise self._failure(f"range {begin}-{end - 1}: HTTP 206 for {start}+{len(body)} bytes")
        if response.status_code == 200:
            if fetched.complete:
                if self._size is None:
                    self._size = len(body)
                if len(body) == self._size and self._size <= self.http.settings.small_file_bytes:
                    self._whole = body  # a small file answered whole: read it from memory from now on
                if len(body) >= end:
                    return body[begin:end]
            elif begin == 0 and len(body) >= end:
                return body[:end]  # the range is a prefix of what arrived before we stopped reading
            self._ignores_range = f"server ignored Range: HTTP 200 for bytes {begin}-{end - 1}; stopped after {fetched.received} bytes"
            raise self._failure(self._ignores_range)
        raise self._failure(f"range {begin}-{end - 1}: unexpected HTTP {response.status_code}")

    def _failure(self, reason: str) -> FetchError:
        return FetchError(self.repo_id, self.revision, self.name, reason)

    def _note_identity(self, headers: Mapping[str, str]) -> None:
        """Size and sha256 from the resolve redirect (X-Linked-Size, X-Linked-ETag)."""
        size, etag = header_int(headers.get("X-Linked-Size", "")), headers.get("X-Linked-ETag", "").strip('"')
        if self._size is None and size is not None:
            self._size = size
        # The file's identity in the store (copies are found by it): only a sha256 is taken as one.
        if len(etag) == 64 and all(c in "0123456789abcdef" for c in etag.lower()):
            self.sha256 = etag.lower()

    def _set_located(self, located: Located) -> None:
        with self._locate_lock:
            self._located = located
