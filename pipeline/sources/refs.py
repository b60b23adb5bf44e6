"""What a source hands on: a model pinned to a revision, its files and its card."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class FileRef:
    """One file of a repo; sha256 is the LFS content hash when the source knows it."""

    name: str
    size: int | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class ModelRef:
    """A model revision to fingerprint. ``local_dir`` is set for local sources, else files are remote."""

    repo_id: str
    revision: str
    files: tuple[FileRef, ...]
    source: str = "hub"
    base_models: tuple[str, ...] = ()
    license: str | None = None
    tags: tuple[str, ...] = ()
    gated: bool = False
    config: dict[str, Any] = field(default_factory=dict, compare=False)
    local_dir: Path | None = None
    license_name: str | None = None  # the card's name for an ``other`` licence
    created_at: datetime | None = None  # the Hub's createdAt (None for local folders)
    # (file, why) of a local folder's files that were not listed: links out of the source, pipes, devices
    refused: tuple[tuple[str, str], ...] = ()
    card_relation: str | None = None  # a local card's base_model_relation (the Hub puts it in tags)

    def base_relations(self) -> tuple[str, ...]:
        """ "relation:base" for each declared base whose relation is known: the Hub's listing tags
        (``base_model:<relation>:<id>``), else a card's ``base_model_relation`` (local folders)."""
        relations = relations_from_tags(self.tags)
        if not relations and self.card_relation is not None:
            relations = {b: self.card_relation for b in self.base_models}
        return tuple(f"{r}:{b}" for b, r in sorted(relations.items()))

    def file(self, name: str) -> FileRef | None:
        """The file of that name, if the repo has it."""
        return next((f for f in self.files if f.name == name), None)

    def quantization_config(self) -> dict[str, Any] | None:
        """The ``quantization_config`` the listing's config summary (or a local config.json) carried.

        Older mlx-lm releases wrote only ``quantization`` (the same fields): taken when it is alone.
        """
        config = self.config or {}
        quant = config.get("quantization_config", config.get("quantization"))
        return quant if isinstance(quant, dict) else None


# The Hub's relations between a model and a base it declares (its base_model:<relation>:<id> tags).
RELATIONS = frozenset({"finetune", "adapter", "quantized", "merge"})


def relations_from_tags(tags: tuple[str, ...]) -> dict[str, str]:
    """{base id: relation} from the listing's ``base_model:<relation>:<id>`` tags (other tags ignored)."""
    out: dict[str, str] = {}
    for tag in tags:
        parts = tag.split(":", 2)
        if len(parts) == 3 and parts[0] == "base_model" and parts[1] in RELATIONS and parts[2]:
            out[parts[2]] = parts[1]
    return out


def relation_from_card(card: dict[str, Any] | None) -> str | None:
    """A card's ``base_model_relation`` when it is one of the Hub's relations."""
    value = (card or {}).get("base_model_relation")
    return value if isinstance(value, str) and value in RELATIONS else None


def base_models_from_card(card: dict[str, Any] | None) -> tuple[str, ...]:
    """Declared lineage from card metadata: ``base_model`` as a string or a list (relation kept apart)."""
    if not card:
        return ()
    value = card.get("base_model")
    if isinstance(value, str):
        return (value.strip(),) if value.strip() else ()
    if isinstance(value, list):
        return tuple(v.strip() for v in value if isinstance(v, str) and v.strip())
    return ()


def license_from_card(card: dict[str, Any] | None, key: str = "license") -> str | None:
    """The card's license id (or, with ``key="license_name"``, an ``other`` licence's name), if any."""
    value = (card or {}).get(key)
    return value if isinstance(value, str) else None


def created_from_info(info: dict[str, Any]) -> datetime | None:
    """The Hub's ``createdAt`` as a datetime; None when absent or unreadable."""
    value = info.get("createdAt")
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
