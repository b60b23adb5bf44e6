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
