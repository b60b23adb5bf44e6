"""Local sources: one HF-layout repo folder, or a folder of them (org/name/...).

A local folder is often a mirror or cache of Hub repos, so its contents are as untrusted as the Hub's:
links are followed only to targets inside the source's root (a Hugging Face cache's snapshot links
to its blobs stay inside), pipes and devices are never opened (a ``README.md`` pipe would block the
driver, ``/dev/zero`` would fill its memory), and what the driver reads (card, config) is capped like
the Hub path's JSON. A refused file fails its model with one line; the sweep goes on.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from hubscan.pipeline.bounded_json import loads_bounded
from hubscan.pipeline.config import MAX_JSON_BYTES
from hubscan.pipeline.errors import RepoMissing, SourceError
from hubscan.pipeline.names import BadName, check_filename
from hubscan.pipeline.sources.cards import parse_card
from hubscan.pipeline.sources.refs import (
    FileRef,
    ModelRef,
    base_models_from_card,
    license_from_card,
    relation_from_card,
)

# A card's front matter sits at the top of README.md and is a few KB; the rest is never read.
MAX_CARD_BYTES = 1024 * 1024
OUTSIDE = "a link to outside the source folder: not followed"
SPECIAL = "not a regular file (a pipe, socket or device): not read"


def local_model(path: Path, repo_id: str | None = None, root: Path | None = None) -> ModelRef:
    """A repo folder as a ModelRef; the revision is a hash of file names, sizes and mtimes.

    ``root`` is the folder links may point into (default: the repo folder, or the cache repo of a
    Hugging Face snapshot); files refused by that rule are listed in ``refused``, not in ``files``.

    Raises:
        RepoMissing: the folder does not exist.
    """
    path = Path(path)
    rid = repo_id or "/".join(path.resolve().parts[-2:])
    if not path.is_dir():
        raise RepoMissing(rid, None, None, f"no such folder: {path}")
    inside = os.path.realpath(root if root is not None else _default_root(path))
    if not _within(os.path.realpath(path), inside):
        return _refused_model(rid, path, "", f"the folder is {OUTSIDE}")
    try:
        return _read_model(path, rid, inside)
    except OSError as exc:  # a file that cannot be read fails this model, not the sweep listing it
        name = Path(exc.filename).name if isinstance(exc.filename, str) else ""
        return _refused_model(rid, path, name, f"cannot be read: {exc.strerror or type(exc).__name__}")


def _refused_model(repo_id: str, path: Path, name: str, reason: str) -> ModelRef:
    """A model that fails with one line when fingerprinted (check_refused), so the listing goes on."""
    return ModelRef(repo_id, "refused", (), source="local", local_dir=path, refused=((name, reason),))


def _read_model(path: Path, rid: str, inside: str) -> ModelRef:
    files, refused = _listing(path, inside)
    names = {f.name for f in files}
    card = parse_card(_head(path / "README.md", MAX_CARD_BYTES)) if "README.md" in names else {}
    config = _config(path / "config.json") if "config.json" in names else {}
    return ModelRef(
        repo_id=rid,
        revision=_folder_revision(path, files),
        files=files,
        source="local",
        base_models=base_models_from_card(card),
        license=license_from_card(card),
        tags=_card_tags(card),
        config=config,
        local_dir=path,
        license_name=license_from_card(card, "license_name"),
        refused=refused,
        card_relation=relation_from_card(card),
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
    """Every org/name repo folder under root, in name order (a folder linked out of root is refused)."""
    for org in sorted(p for p in Path(root).iterdir() if p.is_dir() and not p.name.startswith(".")):
        for repo in sorted(p for p in org.iterdir() if p.is_dir() and not p.name.startswith(".")):
            yield local_model(repo, f"{org.name}/{repo.name}", root=Path(root))


def check_refused(ref: ModelRef) -> None:
    """Fail a model that has a refused file, in one line naming the file (never its bytes).

    Raises:
        SourceError: a file of the folder is a link out of the source or a pipe or device.
    """
    if ref.refused:
        name, reason = ref.refused[0]
        more = f" ({len(ref.refused) - 1} more refused)" if len(ref.refused) > 1 else ""
        raise SourceError(ref.repo_id, ref.revision, name or None, reason + more)


def confined_file(folder: Path, name: str, repo_id: str, revision: str | None) -> Path | None:
    """The real path of file ``name`` of a recorded local repo folder, under the listing's rule
    (links only into the folder's root, regular files only); None when the file is gone.

    Raises:
        SourceError: the name is not a path inside the repo, the file is a link out of the
            folder's root, or it is a pipe, socket or device.
    """
    try:
        check_filename(name)
    except BadName as exc:
        raise SourceError(repo_id, revision, name, str(exc)) from None
    path = Path(folder) / name
    if not os.path.lexists(path):
        return None
    real = os.path.realpath(path)
    if not _within(real, os.path.realpath(_default_root(Path(folder)))):
        raise SourceError(repo_id, revision, name, OUTSIDE)
    try:
        info = os.stat(real)
    except OSError:  # a dangling link: the file is gone
        return None
    if not stat.S_ISREG(info.st_mode):
        raise SourceError(repo_id, revision, name, SPECIAL)
    return Path(real)


def _default_root(path: Path) -> Path:
    """A Hugging Face cache snapshot may link into its repo's blobs/; any other folder only into itself."""
    repo = path.parent.parent
    if path.parent.name == "snapshots" and (repo / "blobs").is_dir():
        return repo
    return path


def _within(real: str, inside: str) -> bool:
    return real == inside or real.startswith(inside.rstrip(os.sep) + os.sep)


def _listing(path: Path, inside: str) -> tuple[tuple[FileRef, ...], tuple[tuple[str, str], ...]]:
    """Regular files of the folder (links resolved inside the root), and the refused ones with why."""
    files: list[FileRef] = []
    refused: list[tuple[str, str]] = []
    for folder, _dirs, names in os.walk(path):  # links to folders are not descended
        # hidden folders are listed as before (a --local-dir download keeps .cache/ there): the revision
        # hashes the listing, so a stored folder keeps its revision
        for name in sorted(names):
            if name.startswith("."):
                continue
            full = os.path.join(folder, name)
            relative = Path(full).relative_to(path).as_posix()
            info = os.lstat(full)
            if stat.S_ISLNK(info.st_mode):
                real = os.path.realpath(full)
                if not _within(real, inside):
                    refused.append((relative, OUTSIDE))
                    continue
                try:
                    info = os.stat(real)
                except OSError:  # a dangling link: nothing to read, as before
                    continue
            if not stat.S_ISREG(info.st_mode):
                refused.append((relative, SPECIAL))
                continue
            files.append(FileRef(relative, info.st_size))
    return tuple(sorted(files, key=lambda f: PurePosixPath(f.name).parts)), tuple(refused)


def _card_tags(card: dict[str, Any]) -> tuple[str, ...]:
    """The card's tags when they are a list; ``tags: 5`` stopped the sweep, ``tags: abc`` gave a, b, c."""
    tags = card.get("tags")
    return tuple(t for t in tags if isinstance(t, str)) if isinstance(tags, list) else ()


def _head(path: Path, limit: int) -> str:
    """The first ``limit`` bytes of a (regular) text file."""
    with path.open("rb") as fh:
        return fh.read(limit).decode("utf-8", "replace")


def _config(path: Path) -> dict[str, Any]:
    """config.json within the Hub path's JSON caps (size, nesting); {} when absent, too big or unparsable."""
    if path.stat().st_size > MAX_JSON_BYTES:
        return {}
    try:
        config = loads_bounded(path.read_bytes(), MAX_JSON_BYTES)
    except ValueError:
        return {}
    return config if isinstance(config, dict) else {}


def _folder_revision(path: Path, files: tuple[FileRef, ...]) -> str:
    h = hashlib.sha1()
    for f in files:
        h.update(f"{f.name}|{f.size}|{(path / f.name).stat().st_mtime_ns}\n".encode())
    return h.hexdigest()
