"""The Hugging Face Hub as a source: a model id resolved to a pinned revision with its files and card.

One API call per model (``/api/models/{id}/revision/{rev}?blobs=true``) gives the commit sha,
every file with its size and LFS sha256, the card metadata and the config summary, so
``config.json`` is not fetched: each GET of it counts as a download of the model.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from hubscan.pipeline.errors import BadListing, RepoMissing, SourceError
from hubscan.pipeline.http import HubHttp, Where
from hubscan.pipeline.names import (
    BadName,
    check_commit,
    check_filename,
    check_repo_id,
    check_revision,
    url_path,
)
from hubscan.pipeline.sources.listing_pages import ListingQuery, list_pages
from hubscan.pipeline.sources.refs import (
    FileRef,
    ModelRef,
    base_models_from_card,
    created_from_info,
    license_from_card,
)

# An LFS object id: the file's sha256.
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


def resolve(http: HubHttp, repo_id: str, revision: str = "main") -> ModelRef:
    """Pin a model to a commit and list its files.

    Raises:
        BadListing: the id or revision breaks the Hub's rules (never sent), or the answer does.
        RepoMissing, RepoGated, FetchError: the Hub would not tell us.
    """
    try:
        check_repo_id(repo_id)
        check_revision(revision)
    except BadName as exc:
        raise BadListing(repo_id, revision, None, str(exc)) from None
    repo, rev = url_path(repo_id, keep_slashes=True), url_path(revision, keep_slashes=False)
    url = f"{http.endpoint}/api/models/{repo}/revision/{rev}"
    info, _ = http.get_json(url, Where(repo_id, revision), params={"blobs": "true"})
    return model_ref_from_info(info, repo_id)


def model_ref_from_info(info: dict[str, Any], repo_id: str | None = None) -> ModelRef:
    """A ModelRef from a model-info or expanded listing entry.

    Every name in it is data from the server: the id, the sha and each file name are checked
    against the Hub's rules here, before any of them reaches a URL, a file name or a query.

    Raises:
        RepoMissing: the entry has no commit sha.
        BadListing: the id, the sha or a file entry breaks the Hub's rules or shape.
    """
    if not isinstance(info, dict):
        raise SourceError(repo_id, None, None, "model info is not a JSON object")
    listed_id = info.get("id") or info.get("modelId") or repo_id
    try:
        rid = check_repo_id(listed_id)
    except BadName as exc:
        raise BadListing(listed_id if isinstance(listed_id, str) else repo_id, None, None, str(exc)) from None
    sha = info.get("sha")
    if sha is None or sha == "":
        raise RepoMissing(rid, None, None, "model info has no commit sha")
    try:
        check_commit(sha)
    except BadName as exc:
        raise BadListing(rid, None, None, str(exc)) from None
    files = _file_refs(info.get("siblings", []), rid, sha)
    tags = info.get("tags", [])
    if not isinstance(tags, list):  # an int here was a TypeError traceback in the sweep's driver
        raise BadListing(rid, sha, None, f"tags is a {type(tags).__name__}, not a list")
    card = _dict(info.get("cardData"))
    return ModelRef(
        repo_id=rid,
        revision=sha,
        files=files,
        source="hub",
        base_models=base_models_from_card(card),
        license=license_from_card(card),
        tags=tuple(t for t in tags if isinstance(t, str)),
        gated=bool(info.get("gated")),
        config=_dict(info.get("config")),
        license_name=license_from_card(card, "license_name"),
        created_at=created_from_info(info),
    )


def _file_refs(siblings: object, repo_id: str, sha: str) -> tuple[FileRef, ...]:
    """The repo's own files; one file entry of the wrong shape or name refuses the whole answer,
    since a model read without one of its files would be a different model.

    Raises:
        BadListing: siblings not a list of ``{"rfilename": str}``, or a name outside the repo.
    """
    if not isinstance(siblings, list):
        raise BadListing(repo_id, sha, None, f"siblings is a {type(siblings).__name__}, not a list")
    files = []
    for sibling in siblings:
        name = sibling.get("rfilename") if isinstance(sibling, dict) else None
        if not isinstance(name, str):
            raise BadListing(repo_id, sha, None, "a siblings entry has no rfilename string")
        try:
            check_filename(name)
        except BadName as exc:
            raise BadListing(repo_id, sha, name, str(exc)) from None
        files.append(_file_ref(sibling))
    return tuple(files)


def _file_ref(sibling: dict[str, Any]) -> FileRef:
    lfs = _dict(sibling.get("lfs"))
    size = lfs.get("size", sibling.get("size"))
    sha256 = lfs.get("sha256")
    return FileRef(
        name=sibling["rfilename"],
        # A size the files table's int64 column holds; anything else is no size.
        size=size if isinstance(size, int) and not isinstance(size, bool) and 0 <= size < 2**63 else None,
        # The file's identity in the store (copies are found by it): only a sha256 is one.
        sha256=sha256.lower() if isinstance(sha256, str) and _SHA256.fullmatch(sha256) else None,
    )


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def list_models(http: HubHttp, params: ListingQuery | None = None) -> Iterator[dict[str, Any]]:
    """Every listing entry, page after page."""
    for entries, _ in list_pages(http, params):
        yield from entries
