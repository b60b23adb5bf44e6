"""What a source hands on: a model pinned to a revision, its files and its card."""

from __future__ import annotations

from dataclasses import dataclass, field
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

    def file(self, name: str) -> FileRef | None:
        """The file of that name, if the repo has it."""
        return next((f for f in self.files if f.name == name), None)


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


def license_from_card(card: dict[str, Any] | None) -> str | None:
    """The card's license id, if any."""
    value = (card or {}).get("license")
    return value if isinstance(value, str) else None
