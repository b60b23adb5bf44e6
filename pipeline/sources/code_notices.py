"""Opt-in code provenance: copyright and licence header lines of a repo's model code naming another organisation.

A repo that ships modeling code (``*.py``) often keeps the header of the code it was ported from:
"Copyright (c) Meta Platforms, Inc." in a repo of someone else is evidence of where it came from,
beside the weight signals. Only the head of each small file is read, by one ranged request.
"""

from __future__ import annotations

import re

from hubscan.pipeline.http import HubHttp, Where
from hubscan.pipeline.sources.refs import FileRef, ModelRef

# Files larger than this are not model code a repo ships beside its weights (transformers' largest
# modeling files are ~200 KB); bigger .py files are skipped unread.
MAX_CODE_BYTES = 256 * 1024
# At most this many files per repo: each costs one resolver request from the sweep's budget.
MAX_CODE_FILES = 8
# Headers sit in the first lines; 4 KB holds a licence block of ~60 lines.
HEADER_BYTES = 4096
HEADER_LINES = 60
# A recorded line is cut to this length, so a minified file cannot bloat the models table.
MAX_LINE_CHARS = 200
# Organisations whose model licences carry terms (licence_terms.py): a licence line naming one is kept.
LICENSORS = ("meta", "llama", "google", "gemma", "alibaba", "qwen", "mistral", "microsoft", "openai",
             "nvidia", "deepseek", "huggingface", "bigscience", "stability", "tongyi")  # fmt: skip
_COPYRIGHT = re.compile(r"copyright|\(c\)|©", re.I)
_LICENCE = re.compile(r"licen[cs]ed under|terms of the .*licen[cs]e|spdx-license-identifier", re.I)
_HOLDER_NOISE = re.compile(r"copyright|\(c\)|©|\d{4}(\s*[-,]\s*\d{4})*|all rights reserved|[#\"'*]", re.I)
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")


def code_files(ref: ModelRef) -> list[FileRef]:
    """The repo's ``*.py`` files not known to be empty or large, by name, at most MAX_CODE_FILES.

    A listing's siblings carry names only: a file of unknown size is kept, and its read is
    bounded by HEADER_BYTES all the same.
    """
    small = [
        f for f in ref.files if f.name.endswith(".py") and (f.size is None or 0 < f.size <= MAX_CODE_BYTES)
    ]
    return sorted(small, key=lambda f: f.name)[:MAX_CODE_FILES]


def read_code_notices(ref: ModelRef, http: HubHttp) -> list[str]:
    """``file:line: text`` for each header line naming another organisation (one ranged GET a file).

    Raises:
        FetchError: a code file could not be read after retries.
    """
    out = []
    for f in code_files(ref):
        if ref.local_dir is not None:
            with (ref.local_dir / f.name).open("rb") as fh:
                head = fh.read(HEADER_BYTES)
        else:
            # Small code files are served by the Hub itself (no CDN redirect): a server that
            # ignores the Range still cannot send more than HEADER_BYTES into memory.
            url = http.resolve_url(ref.repo_id, ref.revision, f.name)
            wanted = min(HEADER_BYTES, f.size or HEADER_BYTES)
            fetched = http.fetch(
                url,
                Where(ref.repo_id, ref.revision, f.name),
                {"Range": f"bytes=0-{wanted - 1}"},
                limit=wanted,
            )
            head = fetched.response.content[:wanted]
        text = head.decode("utf-8", "replace")
        out += [f"{f.name}:{n}: {line}" for n, line in notice_lines(text, ref.repo_id)]
    return out


def notice_lines(text: str, repo_id: str) -> list[tuple[int, str]]:
    """(line number, line) of copyright / licence lines in the header that name someone other than the repo's org."""
    org = _squash(repo_id.split("/", 1)[0])
    found = []
    for n, line in enumerate(text.splitlines()[:HEADER_LINES], start=1):
        stripped = line.strip().lstrip("#*/\"' ").strip()
        squashed = _squash(stripped)
        if not squashed or (org and org in squashed):
            continue
        holder = _COPYRIGHT.search(stripped) and _squash(_HOLDER_NOISE.sub(" ", stripped))
        licensor = _LICENCE.search(stripped) and any(name in squashed for name in LICENSORS)
        if holder or licensor:
            found.append((n, stripped[:MAX_LINE_CHARS]))
    return found


def _squash(text: str) -> str:
    return _NOT_ALNUM.sub("", text.lower())
