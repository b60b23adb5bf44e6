"""Local sources: one HF-layout repo folder, or a folder of them (org/name/...)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline.errors import RepoMissing
from pipeline.sources.cards import parse_card
from pipeline.sources.refs import FileRef, ModelRef, base_models_from_card, license_from_card


def local_model(path: Path, repo_id: str | None = None) -> ModelRef:
    """A repo folder as a ModelRef; the revision is a hash of file names, sizes and mtimes.

    Raises:
        RepoMissing: the folder does not exist.
    """
    path = Path(path)
    rid = repo_id or "/".join(path.resolve().parts[-2:])
    if not path.is_dir():
        raise RepoMissing(rid, None, None, f"no such folder: {path}")
    files = tuple(
        FileRef(p.relative_to(path).as_posix(), p.stat().st_size)
        for p in sorted(path.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    )
    card = (
        parse_card((path / "README.md").read_text(errors="replace")) if (path / "README.md").exists() else {}
    )
    config: dict[str, Any] = {}
    if (path / "config.json").exists():
        try:
            config = json.loads((path / "config.json").read_text())
        except ValueError:
            config = {}
    return ModelRef(
        repo_id=rid,
        revision=_folder_revision(path, files),
        files=files,
        source="local",
        base_models=base_models_from_card(card),
        license=license_from_card(card),
        tags=tuple(t for t in card.get("tags", []) or [] if isinstance(t, str)),
        config=config,
        local_dir=path,
        license_name=license_from_card(card, "license_name"),
    )


def local_file(path: Path, repo_id: str | None = None) -> ModelRef:
    """One weight file (``./model.gguf``) as a one-file repo: the folder around it is not read.

    Raises:
        RepoMissing: the file does not exist.
    """
    path = Path(path)
    rid = repo_id or "/".join(path.resolve().parts[-2:])
    if not path.is_file():
        raise RepoMissing(rid, None, path.name, f"no such file: {path}")
    files = (FileRef(path.name, path.stat().st_size),)
    return ModelRef(repo_id=rid, revision=_folder_revision(path.parent, files), files=files, source="local",
                    local_dir=path.parent)  # fmt: skip


def local_models(root: Path) -> Iterator[ModelRef]:
    """Every org/name repo folder under root, in name order."""
    for org in sorted(p for p in Path(root).iterdir() if p.is_dir() and not p.name.startswith(".")):
        for repo in sorted(p for p in org.iterdir() if p.is_dir() and not p.name.startswith(".")):
            yield local_model(repo, f"{org.name}/{repo.name}")


def _folder_revision(path: Path, files: tuple[FileRef, ...]) -> str:
    h = hashlib.sha1()
    for f in files:
        h.update(f"{f.name}|{f.size}|{(path / f.name).stat().st_mtime_ns}\n".encode())
    return h.hexdigest()
