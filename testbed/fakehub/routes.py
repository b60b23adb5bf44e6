"""The Hub endpoints as plain functions from a parsed request to a Reply; no sockets here."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl, unquote, urlencode

from .listing import BadQuery, encode_cursor, list_page, parse_query
from .payloads import EXPAND_FIELDS, INFO_FIELDS, model_payload
from .repos import Repo, RepoFile, RepoStore

_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


@dataclass
class Reply:
    """A response before it is written: JSON/bytes body, or a byte span of a file streamed in chunks."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    file: Path | None = None
    start: int = 0
    length: int = 0
    # A multipart body: literal bytes interleaved with (start, length) spans of `file`.
    pieces: tuple[bytes | tuple[int, int], ...] = ()

    def spans(self) -> tuple[bytes | tuple[int, int], ...]:
        """The body as literal bytes and file spans, in order."""
        if self.pieces:
            return self.pieces
        return ((self.start, self.length),) if self.file is not None else (self.body,)

    @property
    def content_length(self) -> int:
        """Bytes the body will have."""
        return sum(len(p) if isinstance(p, bytes) else p[1] for p in self.spans())


@dataclass(frozen=True)
class Target:
    """What a URL path names: kind is 'list', 'info', 'tree', 'resolve' or 'unknown'."""

    kind: str
    repo_id: str | None = None
    revision: str = "main"
    filename: str | None = None


@dataclass(frozen=True)
class Caller:
    """Who asks: the bearer token (None = anonymous) and whether it unlocks gated/private repos."""

    token: str | None
    granted: bool


def json_reply(status: int, data: Any, headers: dict[str, str] | None = None) -> Reply:
    """A JSON body with the Hub's content type."""
    body = json.dumps(data, default=str).encode()  # card YAML can hold dates, which JSON cannot
    return Reply(status, {"Content-Type": "application/json; charset=utf-8", **(headers or {})}, body)


def error_reply(
    status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None
) -> Reply:
    """Hub-style error: {"error": ...} body, X-Error-Message, and X-Error-Code when the client branches on it."""
    extra = {"X-Error-Message": message, **({"X-Error-Code": code} if code else {}), **(headers or {})}
    return json_reply(status, {"error": message}, extra)


def parse_target(path: str) -> Target:
    """Split a URL path into an endpoint and its repo, revision and file; segments are unquoted after splitting."""
    if path.rstrip("/") == "/api/models":
        return Target("list")
    if path.startswith("/api/models/"):
        parts = [unquote(p) for p in path[len("/api/models/") :].split("/")]
        repo_id, tail = "/".join(parts[:2]), parts[2:]
        if not tail:
            return Target("info", repo_id)
        if tail[0] == "revision" and len(tail) == 2:
            return Target("info", repo_id, tail[1])
        if tail[0] == "tree" and len(tail) >= 2:
            return Target("tree", repo_id, tail[1], "/".join(tail[2:]).strip("/"))
        return Target("unknown", repo_id)
    parts = path.lstrip("/").split("/")
    if len(parts) >= 5 and parts[2] == "resolve":
        filename = "/".join(unquote(p) for p in parts[4:])
        return Target("resolve", f"{unquote(parts[0])}/{unquote(parts[1])}", unquote(parts[3]), filename)
    return Target("unknown")


def open_repo(store: RepoStore, repo_id: str, caller: Caller) -> Repo | Reply:
    """The repo, or the Hub's answer for missing/private ones: 401 anonymous, 404 authenticated."""
    repo = store.get(repo_id)
    if repo is None or (repo.private and not caller.granted):
        status = 401 if caller.token is None else 404
        return error_reply(status, "Repository not found", "RepoNotFound")
    return repo


def check_revision(repo: Repo, revision: str) -> Reply | None:
    """Only "main" and the current sha exist, so a client holding an old sha sees RevisionNotFound."""
    if revision in ("main", repo.sha):
        return None
    return error_reply(404, f"Invalid rev id: {revision}", "RevisionNotFound")


def check_gate(repo: Repo, caller: Caller, base_url: str) -> Reply | None:
    """Gated files: 401 anonymous, 403 with a token that was not granted; both say GatedRepo."""
    if not repo.gated or caller.granted:
        return None
    if caller.token is None:
        msg = (
            f"Access to model {repo.repo_id} is restricted. You must have access to it and be authenticated"
            " to access it. Please log in."
        )
        return error_reply(401, msg, "GatedRepo")
    msg = (
        f"Access to model {repo.repo_id} is restricted and you are not in the authorized list."
        f" Visit {base_url}/{repo.repo_id} to ask for access."
    )
    return error_reply(403, msg, "GatedRepo")


def list_models(
    store: RepoStore,
    query: str,
    *,
    base_url: str,
    page_size: int,
    synthetic: int,
    caller: Caller,
    extra: list[Any] | None = None,
) -> Reply:
    """GET /api/models: one page, plus `Link: <...cursor=...>; rel="next"` while entries remain;
    ``extra`` raw entries end the first page as they are (a misbehaving mirror's)."""
    try:
        q = parse_query(parse_qs(query, keep_blank_values=True))
    except BadQuery as e:
        return error_reply(400, str(e))
    entries, next_offset = list_page(
        store, q, page_size=page_size, synthetic=synthetic, see_private=caller.granted
    )
    if q.offset == 0 and extra:
        entries = [*entries, *extra]
    headers = {}
    if next_offset is not None:
        params = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "cursor"]
        params.append(("cursor", encode_cursor(next_offset)))
        headers["Link"] = f'<{base_url}/api/models?{urlencode(params)}>; rel="next"'
    return json_reply(200, entries, headers)


def model_info(store: RepoStore, target: Target, query: str, caller: Caller) -> Reply:
    """GET /api/models/{id}[/revision/{rev}]: 200 even for gated repos, as on the Hub."""
    repo = open_repo(store, target.repo_id or "", caller)
    if isinstance(repo, Reply):
        return repo
    if (bad := check_revision(repo, target.revision)) is not None:
        return bad
    params = parse_qs(query, keep_blank_values=True)
    expand = [v for key in ("expand", "expand[]") for v in params.get(key, [])]
    if unknown := [v for v in expand if v not in EXPAND_FIELDS]:
        return error_reply(400, f"Invalid expand value: {unknown[0]!r}")
    blobs = (params.get("blobs") or [""])[-1].lower() in ("1", "true")
    fields = list(dict.fromkeys(expand)) if expand else list(INFO_FIELDS)
    return json_reply(200, model_payload(repo, fields, blobs=blobs, model_id=not expand))


def tree(store: RepoStore, target: Target, query: str, caller: Caller) -> Reply:
    """GET /api/models/{id}/tree/{rev}/{path}: files and folders under path (recursive=true for all levels)."""
    repo = open_repo(store, target.repo_id or "", caller)
    if isinstance(repo, Reply):
        return repo
    if (bad := check_revision(repo, target.revision)) is not None:
        return bad
    recursive = (parse_qs(query).get("recursive") or [""])[-1].lower() in ("1", "true")
    prefix = f"{target.filename}/" if target.filename else ""
    if target.filename and not any(n.startswith(prefix) for n in repo.filenames):
        return error_reply(404, f"{target.filename} does not exist on {target.revision}", "EntryNotFound")
    entries: list[dict[str, Any]] = []
    folders: set[str] = set()
    for f in repo.files:
        if not f.rfilename.startswith(prefix):
            continue
        rest = f.rfilename[len(prefix) :]
        for depth, _ in enumerate(rest.split("/")[:-1]):
            folder = prefix + "/".join(rest.split("/")[: depth + 1])
            if (recursive or depth == 0) and folder not in folders:
                folders.add(folder)
                entries.append({"type": "directory", "oid": repo.sha, "size": 0, "path": folder})
        if recursive or "/" not in rest:
            entry: dict[str, Any] = {"type": "file", "oid": f.blob_id, "size": f.size, "path": f.rfilename}
            if f.is_lfs:
                lfs = f.sibling(blobs=True)["lfs"]
                entry["lfs"] = {"oid": f.sha256, "size": f.size, "pointerSize": lfs["pointerSize"]}
            entries.append(entry)
    return json_reply(200, entries)


def parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """(start, length) for one satisfiable range; None to serve the whole file; "unsatisfiable" for 416.

    Malformed and multi-range headers are ignored (whole file), as the Hub's storage backend does.
    """
    if header is None or "," in header:
        return None
    m = _RANGE.match(header)
    if m is None or (not m.group(1) and not m.group(2)):
        return None
    first, last = m.group(1), m.group(2)
    if not first:  # suffix range: the last n bytes
        n = int(last)
        if n == 0 or size == 0:
            return "unsatisfiable"
        return max(size - n, 0), min(n, size)
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if last and int(last) < start:
        return None  # syntactically invalid per RFC 9110: ignore the header
    if start >= size:
        return "unsatisfiable"
    return start, end - start + 1


def resolve(
    store: RepoStore,
    target: Target,
    range_header: str | None,
    caller: Caller,
    base_url: str,
    redirect_to: Callable[[str, str, RepoFile], str] | None = None,
    ignore_range: bool = False,
) -> Reply:
    """GET/HEAD /{id}/resolve/{rev}/{file}: the file (or a 206 span) with the Hub's download headers.

    With ``redirect_to`` (the Hub's shape) an LFS file is a 302 to the URL it gives for
    (file, commit), carrying the file's commit, size and sha256; small files are served here.
    """
    repo = open_repo(store, target.repo_id or "", caller)
    if isinstance(repo, Reply):
        return repo
    if (bad := check_gate(repo, caller, base_url)) is not None:
        return bad
    if (bad := check_revision(repo, target.revision)) is not None:
        return bad
    f = repo.file(target.filename or "")
    if f is None:  # the Hub still names the commit, so clients can cache the miss
        return error_reply(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": repo.sha})
    headers = {
        "Content-Type": "application/octet-stream",
        "Accept-Ranges": "bytes",
        "ETag": f.etag,
        "X-Repo-Commit": repo.sha,
    }
    if f.is_lfs:
        headers.update({"X-Linked-Size": str(f.size), "X-Linked-ETag": f.etag})
        if redirect_to is not None:
            location = redirect_to(repo.repo_id, repo.sha, f)
            keep = ("ETag", "X-Repo-Commit", "X-Linked-Size", "X-Linked-ETag")
            return Reply(302, {"Location": location, **{k: headers[k] for k in keep}})
    span = None if ignore_range else parse_range(range_header, f.size)
    if span == "unsatisfiable":
        return error_reply(
            416, "Requested Range Not Satisfiable", None, {"Content-Range": f"bytes */{f.size}"}
        )
    if isinstance(span, tuple):
        start, length = span
        headers["Content-Range"] = f"bytes {start}-{start + length - 1}/{f.size}"
        return Reply(206, headers, file=f.path, start=start, length=length)
    return Reply(200, headers, file=f.path, start=0, length=f.size)
