"""Names that come from outside (a listing, a model-info answer, the command line) are data.

A repo id, a revision or a file name is checked against the Hub's own rules before it reaches a
URL, a file name or a query, and each is escaped as one URL path piece. Without this a sibling
named ``../../other/private/resolve/main/x.gguf`` is a request, with the user's token, for a
repo the listing never named (httpx removes dot segments from the path it sends).
"""

from __future__ import annotations

import re
from urllib.parse import quote

# The Hub's repo names (huggingface_hub's validate_repo_id): word characters, "-", "_" and ".",
# 1 to 96 per part, an optional "namespace/", no "--" or "..", not ".git" at the end, and the
# first and last characters of each part are word characters. Python's \w is Unicode, like
# the Hub's: a CJK name is legal, a newline, a space or "[" is not.
MAX_REPO_PART_CHARS = 96
_REPO_PART = re.compile(r"\w(?:[\w.\-]*\w)?")
# A git commit id: 40 hex digits (sha1), or 64 (sha256 repositories).
_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
# A branch or tag name given by the user; git forbids control characters, spaces and "..".
MAX_REVISION_CHARS = 255
# A path segment at most 255 bytes (every file system's name limit; a clone could not hold it),
# the whole path at most 1,024 bytes: the longest paths on the Hub are nested adapter folders
# of a few hundred bytes.
MAX_SEGMENT_BYTES = 255
MAX_PATH_BYTES = 1024
# How much of a refused name an error quotes: enough to recognise it, never the whole of it.
SHOWN_CHARS = 120


class BadName(ValueError):
    """A name that breaks the Hub's rules; the message is one line and quotes the name bounded."""


def shown(value: object, limit: int = SHOWN_CHARS) -> str:
    """``repr`` of a value from outside, cut to ``limit`` characters with its full length stated."""
    text = value if isinstance(value, str) else str(type(value).__name__)
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}… ({len(text)} chars)"


def check_repo_id(repo_id: object) -> str:
    """The repo id, if it follows the Hub's rules ("name" or "namespace/name").

    Raises:
        BadName: anything else (a path, a URL, markup, control characters, a non-string).
    """
    if not isinstance(repo_id, str):
        raise BadName(f"repo id is a {type(repo_id).__name__}, not a string")
    if len(repo_id) > 2 * MAX_REPO_PART_CHARS + 1:
        raise BadName(f"repo id {shown(repo_id)} is longer than the Hub allows")
    parts = repo_id.split("/")
    if len(parts) > 2 or not all(len(p) <= MAX_REPO_PART_CHARS and _REPO_PART.fullmatch(p) for p in parts):
        raise BadName(
            f"repo id {shown(repo_id)} is not a Hub repo id (namespace/name of letters, digits, - _ .)"
        )
    if "--" in repo_id or ".." in repo_id or repo_id.endswith(".git"):
        raise BadName(f"repo id {shown(repo_id)} has '--' or '..' or ends in '.git'")
    return repo_id


def check_commit(sha: object) -> str:
    """A commit id from a listing or a model-info answer.

    Raises:
        BadName: not 40 (or 64) lower-case hex digits.
    """
    if not isinstance(sha, str) or not _COMMIT.fullmatch(sha):
        raise BadName(f"sha {shown(sha) if isinstance(sha, str) else type(sha).__name__} is not a commit id")
    return sha


def check_revision(revision: object) -> str:
    """A revision the user named (a branch, tag or commit).

    Raises:
        BadName: empty, too long, or holding what git refuses in a ref (control characters, '..', '\\').
    """
    if not isinstance(revision, str) or not revision or len(revision) > MAX_REVISION_CHARS:
        raise BadName(f"revision {shown(revision)} is empty or too long")
    if ".." in revision or "\\" in revision or _has_control(revision) or revision.startswith("/"):
        raise BadName(f"revision {shown(revision)} is not a git ref name")
    return revision


def check_filename(name: object) -> str:
    """A file path inside a repo, as the Hub lists it (``rfilename``).

    Raises:
        BadName: absolute, with '.' or '..' or empty segments, a backslash, control characters,
            or longer than the limits above.
    """
    if not isinstance(name, str):
        raise BadName(f"file name is a {type(name).__name__}, not a string")
    size = len(name.encode("utf-8", "surrogatepass"))
    if not name or size > MAX_PATH_BYTES:
        raise BadName(f"file name {shown(name)} is empty or longer than {MAX_PATH_BYTES} bytes")
    if "\\" in name or _has_control(name):
        raise BadName(f"file name {shown(name)} holds a backslash or a control character")
    for segment in name.split("/"):
        if segment in ("", ".", ".."):
            raise BadName(f"file name {shown(name)} is not a path inside the repo ('', '.' or '..' segment)")
        if len(segment.encode("utf-8", "surrogatepass")) > MAX_SEGMENT_BYTES:
            raise BadName(f"file name {shown(name)} has a segment over {MAX_SEGMENT_BYTES} bytes")
    return name


def url_path(value: str, *, keep_slashes: bool) -> str:
    """One name as URL path text: every reserved character escaped, "/" kept only between the
    segments of a repo id or a file path (a revision such as ``refs/pr/1`` is one segment)."""
    return quote(value, safe="/" if keep_slashes else "")


def _has_control(text: str) -> bool:
    return any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in text)
