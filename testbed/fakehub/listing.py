"""GET /api/models: filters, sort, expand and cursor paging as the Hub does them, plus a synthetic tail."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .payloads import (
    EXPAND_FIELDS,
    FULL_LIST_FIELDS,
    INFO_ONLY_FIELDS,
    LIST_FIELDS,
    ModelLike,
    SyntheticModel,
    model_payload,
)
from .repos import RepoStore

SORT_KEYS = ("downloads", "likes", "lastModified", "createdAt", "id", "trendingScore")
# The Hub refuses pages above 1000 entries, whatever `limit` says.
HUB_MAX_PAGE = 1000


class BadQuery(ValueError):
    """A query the Hub would answer with 400."""


@dataclass(frozen=True)
class ListQuery:
    """A parsed /api/models query string."""

    search: str | None = None
    author: str | None = None
    filters: tuple[str, ...] = ()
    pipeline_tag: str | None = None
    library: str | None = None
    gated: bool | None = None
    sort: str | None = None
    descending: bool = True
    limit: int | None = None
    fields: tuple[str, ...] = LIST_FIELDS
    expanded: bool = False
    offset: int = 0


def encode_cursor(offset: int) -> str:
    """Opaque cursor, base64 of JSON like the Hub's, so clients cannot rely on its shape."""
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """Offset from a cursor made by encode_cursor."""
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        offset = int(data["offset"])
    except (ValueError, KeyError, TypeError) as e:
        raise BadQuery(f"Invalid cursor: {cursor!r}") from e
    if offset < 0:
        raise BadQuery(f"Invalid cursor: {cursor!r}")
    return offset


def _one(params: dict[str, list[str]], key: str) -> str | None:
    values = params.get(key) or params.get(f"{key}[]")
    return values[-1] if values else None


def _flag(params: dict[str, list[str]], key: str) -> bool:
    return (_one(params, key) or "").lower() in ("1", "true")


def parse_query(params: dict[str, list[str]]) -> ListQuery:
    """Query string (as from urllib.parse.parse_qs) to ListQuery; raises BadQuery where the Hub says 400."""
    sort = _one(params, "sort")
    if sort is not None and sort not in SORT_KEYS:
        raise BadQuery(f"Invalid sort: {sort!r}, expected one of {', '.join(SORT_KEYS)}")
    direction = _one(params, "direction")
    if direction not in (None, "-1", "1"):
        raise BadQuery(f"Invalid direction: {direction!r}")
    limit_raw = _one(params, "limit")
    try:
        limit = int(limit_raw) if limit_raw is not None else None
    except ValueError as e:
        raise BadQuery(f"Invalid limit: {limit_raw!r}") from e
    if limit is not None and limit < 1:
        raise BadQuery(f"Invalid limit: {limit}")
    gated = _one(params, "gated")
    expand = [v for key in ("expand", "expand[]") for v in params.get(key, [])]
    full, config, card = _flag(params, "full"), _flag(params, "config"), _flag(params, "cardData")
    if expand and (full or config or card):
        raise BadQuery("expand cannot be combined with full, config or cardData")
    for name in expand:
        if name not in EXPAND_FIELDS:
            raise BadQuery(f"Invalid expand value: {name!r}")
        if name in INFO_ONLY_FIELDS:
            raise BadQuery(f"expand={name} is only allowed on /api/models/{{repo_id}}, not when listing")
    if expand:
        fields = tuple(dict.fromkeys(expand))
    else:
        fields = LIST_FIELDS + (FULL_LIST_FIELDS if full else ())
        fields += ("config",) * config + ("cardData",) * card
    cursor = _one(params, "cursor")
    return ListQuery(
        search=_one(params, "search"),
        author=_one(params, "author"),
        filters=tuple(v for key in ("filter", "filter[]") for v in params.get(key, [])),
        pipeline_tag=_one(params, "pipeline_tag"),
        library=_one(params, "library"),
        gated=None if gated is None else gated.lower() in ("1", "true"),
        sort=sort,
        descending=direction != "1",  # the Hub only sorts descending; direction=1 is a fake-hub extra
        limit=limit,
        fields=fields,
        expanded=bool(expand),
        offset=decode_cursor(cursor) if cursor else 0,
    )


def matches(model: ModelLike, q: ListQuery) -> bool:
    """Whether a repo passes the query's filters (search is a case-insensitive substring of the id)."""
    if q.search and q.search.lower() not in model.repo_id.lower():
        return False
    if q.author and q.author.lower() != model.author.lower():
        return False
    if q.pipeline_tag and q.pipeline_tag != model.pipeline_tag:
        return False
    if q.library and q.library != model.library_name and q.library not in model.tags:
        return False
    if q.gated is not None and bool(model.gated) != q.gated:
        return False
    return all(f in model.tags for f in q.filters)


def _sort_key(model: ModelLike, sort: str) -> tuple[Any, ...]:
    if sort in ("downloads", "likes"):
        return (model.stat_int(sort), model.repo_id)
    if sort == "lastModified":
        return (model.last_modified, model.repo_id)
    if sort == "createdAt":
        return (model.created_at, model.repo_id)
    if sort == "trendingScore":
        return (0, model.repo_id)
    return (model.repo_id,)


def _synthetic_indices(q: ListQuery, count: int) -> Sequence[int]:
    """1-based indices of synthetic entries the query keeps; a range unless `search` forces a scan."""
    probe = SyntheticModel(1)
    if count <= 0 or (q.author and q.author.lower() != probe.author):
        return range(0)
    if q.pipeline_tag or q.library or q.gated or any(f not in probe.tags for f in q.filters):
        return range(0)
    if q.search:
        needle = q.search.lower()
        return [i for i in range(1, count + 1) if needle in f"{probe.author}/model-{i:06d}"]
    return range(1, count + 1)


def list_page(
    store: RepoStore, q: ListQuery, *, page_size: int, synthetic: int, see_private: bool
) -> tuple[list[dict[str, Any]], int | None]:
    """One page of entries and the offset of the next page (None on the last page)."""
    repos: list[ModelLike] = [r for r in store.all() if (see_private or not r.private) and matches(r, q)]
    if q.sort is not None:
        sort = q.sort
        repos.sort(key=lambda r: _sort_key(r, sort), reverse=q.descending)
    tail = _synthetic_indices(q, synthetic)
    total = len(repos) + len(tail)
    size = max(1, min(q.limit or page_size, page_size, HUB_MAX_PAGE))  # 0 would link to itself forever
    start, stop = q.offset, min(q.offset + size, total)
    page: list[ModelLike] = []
    for i in range(start, stop):
        page.append(repos[i] if i < len(repos) else SyntheticModel(tail[i - len(repos)]))
    entries = [model_payload(m, q.fields, model_id=not q.expanded) for m in page]
    return entries, (stop if stop < total else None)
