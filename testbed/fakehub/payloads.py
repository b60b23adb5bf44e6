"""The JSON a repo turns into on /api/models: field by field, so listing, expand and model info share one source."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from typing import Any, Protocol

# Every value huggingface_hub 2.4 allows in `expand` for models (ExpandModelProperty_T); others are a 400.
EXPAND_FIELDS = frozenset(
    {
        "author", "baseModels", "cardData", "childrenModelCount", "config", "createdAt", "disabled",
        "downloads", "downloadsAllTime", "evalResults", "gated", "gguf", "inference",
        "inferenceProviderMapping", "lastModified", "library_name", "likes", "mask_token", "model-index",
        "pipeline_tag", "private", "resourceGroup", "safetensors", "sha", "siblings", "spaces", "tags",
        "transformersInfo", "trendingScore", "usedStorage", "widgetData",
    }
)  # fmt: skip
# The Hub refuses these when listing and accepts them only on /api/models/{id} (huggingface_hub PR #3182).
INFO_ONLY_FIELDS = frozenset({"baseModels", "childrenModelCount", "usedStorage"})
# What /api/models returns per entry without expand (order as the Hub sends it).
LIST_FIELDS = (
    "likes",
    "trendingScore",
    "private",
    "downloads",
    "tags",
    "pipeline_tag",
    "library_name",
    "createdAt",
)
# Extra fields of a `full=true` listing.
FULL_LIST_FIELDS = ("author", "sha", "lastModified", "gated", "disabled", "siblings")
# What /api/models/{id} returns without expand.
INFO_FIELDS = (
    "author", "sha", "lastModified", "private", "disabled", "gated", "downloads", "likes", "tags", "pipeline_tag",
    "library_name", "cardData", "config", "siblings", "spaces", "safetensors", "gguf", "createdAt", "usedStorage",
)  # fmt: skip


class ModelLike(Protocol):
    """What a payload needs from a repo; real folders and synthetic listing entries both provide it."""

    repo_id: str

    @property
    def author(self) -> str: ...
    @property
    def sha(self) -> str: ...
    @property
    def private(self) -> bool: ...
    @property
    def gated(self) -> str | bool: ...
    @property
    def tags(self) -> list[str]: ...
    @property
    def last_modified(self) -> str: ...
    @property
    def created_at(self) -> str: ...
    @property
    def library_name(self) -> str | None: ...
    @property
    def pipeline_tag(self) -> str | None: ...
    @property
    def card_data(self) -> dict[str, Any]: ...
    @property
    def config(self) -> dict[str, Any] | None: ...
    @property
    def safetensors(self) -> dict[str, Any] | None: ...
    @property
    def gguf(self) -> dict[str, Any] | None: ...
    @property
    def used_storage(self) -> int: ...
    @property
    def filenames(self) -> list[str]: ...

    def stat_int(self, key: str) -> int: ...
    def base_models_field(self) -> dict[str, Any] | None: ...
    def siblings(self, blobs: bool) -> list[dict[str, Any]]: ...


def object_id(repo_id: str) -> str:
    """A stable 24-hex `_id`, shaped like the Hub's Mongo ids."""
    return hashlib.sha1(repo_id.encode()).hexdigest()[:24]


# field name -> value (None means the Hub leaves the key out)
_FIELDS: dict[str, Callable[[ModelLike, bool], Any]] = {
    "author": lambda m, _: m.author,
    "baseModels": lambda m, _: m.base_models_field(),
    "cardData": lambda m, _: m.card_data or None,
    "childrenModelCount": lambda m, _: 0,
    "config": lambda m, _: m.config,
    "createdAt": lambda m, _: m.created_at,
    "disabled": lambda m, _: False,
    "downloads": lambda m, _: m.stat_int("downloads"),
    "downloadsAllTime": lambda m, _: m.stat_int("downloads"),
    "gated": lambda m, _: m.gated,
    "gguf": lambda m, _: m.gguf,
    "lastModified": lambda m, _: m.last_modified,
    "library_name": lambda m, _: m.library_name,
    "likes": lambda m, _: m.stat_int("likes"),
    "pipeline_tag": lambda m, _: m.pipeline_tag,
    "private": lambda m, _: m.private,
    "safetensors": lambda m, _: m.safetensors,
    "sha": lambda m, _: m.sha,
    "siblings": lambda m, blobs: m.siblings(blobs),
    "spaces": lambda m, _: [],
    "tags": lambda m, _: m.tags,
    "trendingScore": lambda m, _: 0,
    "usedStorage": lambda m, _: m.used_storage,
}


def model_payload(
    model: ModelLike, fields: Iterable[str], *, blobs: bool = False, model_id: bool = False
) -> dict[str, Any]:
    """`_id`, `id` (and `modelId` if asked) plus the given fields; fields the fake cannot know are left out."""
    out: dict[str, Any] = {"_id": object_id(model.repo_id), "id": model.repo_id}
    for name in fields:
        builder = _FIELDS.get(name)
        value = builder(model, blobs) if builder is not None else None
        if value is not None:
            out[name] = value
    if model_id:
        out["modelId"] = model.repo_id
    return out


class SyntheticModel:
    """Listing-only entry `synthetic/model-NNNNNN`: lets a client page through 100k models with no files."""

    TAG = "synthetic"
    AUTHOR = "synthetic"

    def __init__(self, index: int) -> None:
        self.repo_id = f"{self.AUTHOR}/model-{index:06d}"
        self.author = self.AUTHOR
        self.sha = hashlib.sha1(self.repo_id.encode()).hexdigest()
        self.private = False
        self.gated: str | bool = False
        self.tags = [self.TAG]
        self.last_modified = self.created_at = "2024-01-01T00:00:00.000Z"
        self.library_name: str | None = None
        self.pipeline_tag: str | None = None
        self.card_data: dict[str, Any] = {}
        self.config: dict[str, Any] | None = None
        self.safetensors: dict[str, Any] | None = None
        self.gguf: dict[str, Any] | None = None
        self.used_storage = 0
        self.filenames: list[str] = []

    def stat_int(self, key: str) -> int:
        """No downloads, no likes."""
        return 0

    def base_models_field(self) -> dict[str, Any] | None:
        """No lineage."""
        return None

    def siblings(self, blobs: bool) -> list[dict[str, Any]]:
        """No files."""
        return []
