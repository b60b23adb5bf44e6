"""The Hugging Face Hub as a source: a model id resolved to a pinned revision with its files and card.

One API call per model (``/api/models/{id}/revision/{rev}?blobs=true``) gives the commit sha,
every file with its size and LFS sha256, the card metadata and the config summary, so
``config.json`` is not fetched: each GET of it counts as a download of the model.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from pipeline.errors import RepoMissing, SourceError
from pipeline.http import HubHttp, Where
from pipeline.sources.refs import (
    FileRef,
    ModelRef,
    base_models_from_card,
    created_from_info,
    license_from_card,
)


def resolve(http: HubHttp, repo_id: str, revision: str = "main") -> ModelRef:
    """Pin a model to a commit and list its files.

    Raises:
        RepoMissing, RepoGated, FetchError: the Hub would not tell us.
    """
    url = f"{http.endpoint}/api/models/{repo_id}/revision/{quote(revision, safe='')}"
    info, _ = http.get_json(url, Where(repo_id, revision), params={"blobs": "true"})
    return model_ref_from_info(info, repo_id)


def model_ref_from_info(info: dict[str, Any], repo_id: str | None = None) -> ModelRef:
    """A ModelRef from a model-info or expanded listing entry.

    Raises:
        RepoMissing: the entry has no commit sha.
    """
    if not isinstance(info, dict):
        raise SourceError(str(repo_id), None, None, "model info is not a JSON object")
    rid = str(info.get("id") or info.get("modelId") or repo_id)
    sha = info.get("sha")
    if not sha or not isinstance(sha, str):
        raise RepoMissing(rid, None, None, "model info has no commit sha")
    card = _dict(info.get("cardData"))
    listed = info.get("siblings")
    siblings = listed if isinstance(listed, list) else []
    # A hostile or broken answer may hold any JSON: only well-formed file entries are kept.
    files = tuple(
        _file_ref(s) for s in siblings if isinstance(s, dict) and isinstance(s.get("rfilename"), str)
    )
    return ModelRef(
        repo_id=rid,
        revision=str(sha),
        files=files,
        source="hub",
        base_models=base_models_from_card(card),
        license=license_from_card(card),
        tags=tuple(t for t in info.get("tags") or [] if isinstance(t, str)),
        gated=bool(info.get("gated")),
        config=_dict(info.get("config")),
        license_name=license_from_card(card, "license_name"),
        created_at=created_from_info(info),
    )


def _file_ref(sibling: dict[str, Any]) -> FileRef:
    lfs = _dict(sibling.get("lfs"))
    size = lfs.get("size", sibling.get("size"))
    sha256 = lfs.get("sha256")
    return FileRef(
        name=sibling["rfilename"],
        size=size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None,
        sha256=sha256 if isinstance(sha256, str) else None,
    )


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def list_pages(
    http: HubHttp, params: dict[str, Any] | None = None, start_url: str | None = None
) -> Iterator[tuple[list[dict[str, Any]], str | None]]:
    """Listing pages as (entries, next page URL), following ``Link: rel="next"``.

    The next URL carries the Hub's opaque cursor and every filter, so a sweep that stores it
    can resume the listing where it stopped (``start_url``).

    Raises:
        FetchError, RateLimited: a page could not be had after retries.
    """
    url: str | None = start_url or f"{http.endpoint}/api/models"
    query: dict[str, Any] | None = None if start_url else dict(params or {})
    while url:
        page, response = http.get_json(url, Where("<listing>"), params=query)
        url = response.links.get("next", {}).get("url")
        query = None  # the next link already carries the cursor and every filter
        yield list(page), url


def list_models(http: HubHttp, params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
    """Every listing entry, page after page."""
    for entries, _ in list_pages(http, params):
        yield from entries
