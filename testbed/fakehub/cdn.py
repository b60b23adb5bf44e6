"""The CDN origin the Hub redirects LFS downloads to: signed URLs that expire, and its Range dialects.

On huggingface.co `/resolve/` of an LFS or Xet file answers 302 to a signed URL on another
host (cdn-lfs*.hf.co, cas-bridge.xethub.hf.co) valid about an hour; the CDN honours single
ranges, and answers multi-range requests in one of several ways. This module is the fake
of that second origin: pure functions from a path and headers to a Reply.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import math
import re
import time
from urllib.parse import parse_qs, quote, unquote

from .repos import RepoFile, RepoStore
from .routes import Reply, error_reply, parse_range

# The Hub's signed URLs live about an hour (X-Amz-Expires=3600); tests shorten it to seconds.
SIGNED_URL_TTL_S = 3600.0
# How the CDN answers `Range: bytes=a-b,c-d`: what RFC 9110 allows (multipart 206), what S3
# does (whole file, 200), a server that serves only the first range, and one that refuses (416).
MULTIRANGE_MODES = ("multipart", "whole", "single", "416")
# Fixed so a test can plant it in a file's bytes and check the client is not fooled by it.
MULTIPART_BOUNDARY = "fakehub-byteranges-3d6f1c"
# Signing key of this process's fake CDN; real signatures are AWS / CloudFront ones.
_SECRET = hashlib.sha256(b"fakehub-cdn").digest()
_RANGE_ITEM = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")


def _signature(path: str, expires: int) -> str:
    return hmac.new(_SECRET, f"{path}|{expires}".encode(), hashlib.sha256).hexdigest()[:32]


def signed_path(repo_id: str, sha: str, filename: str, ttl: float) -> str:
    """Path and query of a signed CDN URL for one file at one commit, valid for ttl seconds."""
    path = f"/cdn/{quote(repo_id)}/{sha}/{quote(filename)}"
    expires = math.ceil(time.time() + ttl)  # whole seconds, never shorter than ttl
    return f"{path}?Expires={expires}&Signature={_signature(path, expires)}"


def parse_cdn_path(path: str) -> tuple[str, str, str] | None:
    """(repo_id, sha, filename) of a CDN path, or None when it is not one."""
    parts = path.lstrip("/").split("/")
    if len(parts) < 5 or parts[0] != "cdn":
        return None
    return f"{unquote(parts[1])}/{unquote(parts[2])}", parts[3], "/".join(unquote(p) for p in parts[4:])


def _access_denied(message: str) -> Reply:
    # S3 / CloudFront answer an expired or forged signature with 403 and an XML body, no X-Error-Code.
    body = f"<Error><Code>AccessDenied</Code><Message>{message}</Message></Error>".encode()
    return Reply(403, {"Content-Type": "application/xml"}, body)


def serve(
    store: RepoStore, path: str, query: str, range_header: str | None, *, multirange: str, ignore_range: bool
) -> Reply:
    """GET/HEAD of a signed CDN URL: 403 once expired or forged, else the file under the Range dialect."""
    parsed = parse_cdn_path(path)
    if parsed is None:
        return error_reply(404, "Not Found")
    repo_id, sha, filename = parsed
    params = parse_qs(query)
    expires, signature = (params.get("Expires") or [""])[0], (params.get("Signature") or [""])[0]
    if not expires.isdigit() or not hmac.compare_digest(signature, _signature(path, int(expires))):
        return _access_denied("Invalid signature")
    if time.time() > int(expires):
        return _access_denied("Request has expired")
    repo = store.get(repo_id)
    f = repo.file(filename) if repo is not None and repo.sha == sha else None
    if f is None:
        return _access_denied("No such key")
    headers = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes", "ETag": f.etag}
    if ignore_range or range_header is None:
        return Reply(200, headers, file=f.path, start=0, length=f.size)
    if "," in range_header:
        return _multirange(f, headers, range_header, multirange)
    span = parse_range(range_header, f.size)
    if span == "unsatisfiable":
        return Reply(416, {"Content-Range": f"bytes */{f.size}"})
    if isinstance(span, tuple):
        start, length = span
        headers["Content-Range"] = f"bytes {start}-{start + length - 1}/{f.size}"
        return Reply(206, headers, file=f.path, start=start, length=length)
    return Reply(200, headers, file=f.path, start=0, length=f.size)


def parse_ranges(header: str, size: int) -> list[tuple[int, int]] | None:
    """Closed-interval byte ranges of a `bytes=` header clipped to size; None if malformed or a suffix."""
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes":
        return None
    out = []
    for item in spec.split(","):
        m = _RANGE_ITEM.match(item)
        if m is None or not m.group(1):
            return None
        first = int(m.group(1))
        last = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
        if last < first:
            return None
        out.append((first, last))
    return out


def _multirange(f: RepoFile, headers: dict[str, str], header: str, mode: str) -> Reply:
    ranges = parse_ranges(header, f.size)
    whole = Reply(200, headers, file=f.path, start=0, length=f.size)
    if ranges is None:
        return whole
    if mode == "416":
        return Reply(416, {"Content-Range": f"bytes */{f.size}"})
    ascending = all(b[0] > a[1] for a, b in itertools.pairwise(ranges))
    # CloudFront: overlapping or unordered ranges get the whole object.
    if mode == "whole" or not ascending or any(first >= f.size for first, _ in ranges):
        return whole
    if mode == "single":
        first, last = ranges[0]
        single = {**headers, "Content-Range": f"bytes {first}-{last}/{f.size}"}
        return Reply(206, single, file=f.path, start=first, length=last - first + 1)
    pieces: list[bytes | tuple[int, int]] = []
    for first, last in ranges:
        part = (
            f"\r\n--{MULTIPART_BOUNDARY}\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Range: bytes {first}-{last}/{f.size}\r\n\r\n"
        )
        pieces += [part.encode(), (first, last - first + 1)]
    pieces.append(f"\r\n--{MULTIPART_BOUNDARY}--\r\n".encode())
    multipart = {**headers, "Content-Type": f"multipart/byteranges; boundary={MULTIPART_BOUNDARY}"}
    return Reply(206, multipart, file=f.path, pieces=tuple(pieces))
