"""Find Parquet files in a store that cannot be read, and move them aside.

A full disk, a killed copy or another tool can leave a truncated or corrupt file; DuckDB
then fails every query over that table. Every ``*.parquet`` under the store is checked
(compacted folders included), by reading it whole: a readable footer says nothing of the
pages behind it. Links, pipes and devices are listed without being opened, as are a marker or
manifest hubscan did not write. Quarantined files keep their relative path under ``quarantine/``.
"""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from hubscan.pipeline.errors import StoreError, one_line
from hubscan.pipeline.storage.homes import SHARED_FOLDER
from hubscan.pipeline.storage.manifest import MANIFEST, MANIFEST_FOREIGN, Manifest
from hubscan.pipeline.storage.own_files import marker_version, read_own
from hubscan.pipeline.storage.parquet import MARKER

QUARANTINE = "quarantine"
# A model's rows live in these tables under the same file name as its models row (the commit).
PER_MODEL_TABLES = ("tensors", "files")


@dataclass(frozen=True)
class BadFile:
    """An unreadable Parquet file and why, relative to the store."""

    path: Path
    reason: str
    movable: bool = True  # the marker and the manifest stay: without them the store cannot be opened


def find_bad_files(root: Path) -> list[BadFile]:
    """Everything under the store (quarantine and flag's homes excepted) that is not what hubscan reads.

    A ``*.parquet`` that does not read back whole, or is a folder; a link (hubscan does not follow
    links in its store); a pipe or device (reading one hangs). Nothing is opened but regular files.
    """
    bad = []
    for folder, dirs, files in os.walk(root):
        here = Path(folder).relative_to(root)
        if here.parts and here.parts[0] in (QUARANTINE, SHARED_FOLDER):  # set aside, or a flag's homes
            dirs.clear()
            continue
        dirs.sort()
        for name in sorted(dirs + files):
            reason = _why_bad(Path(folder) / name)
            if reason:
                bad.append(BadFile(here / name, reason))
        dirs[:] = [d for d in dirs if not (Path(folder) / d).is_symlink() and not d.endswith(".parquet")]
    return sorted(bad + _own_json(root), key=lambda b: b.path)


def _own_json(root: Path) -> list[BadFile]:
    """The marker and the compaction manifest, when they are plain files but not what hubscan writes."""
    bad = []
    for relative in (MARKER, MANIFEST):
        path = Path(root) / relative
        if path.is_symlink() or not path.is_file():  # absent is fine; links and pipes are listed by the walk
            continue
        try:
            data = read_own(str(root), str(root), relative) or b""
            if relative == MARKER:
                marker_version(str(root), MARKER, data)
            else:
                Manifest.from_json(data)
        except StoreError as exc:
            bad.append(BadFile(Path(relative), exc.reason, movable=False))
        except (ValueError, KeyError, TypeError, AttributeError):
            bad.append(BadFile(Path(relative), MANIFEST_FOREIGN, movable=False))
    return bad


def _why_bad(path: Path) -> str | None:
    """Why one entry of the store is unusable, or None when it is fine (or not one hubscan reads)."""
    mode = path.lstat().st_mode
    if stat.S_ISLNK(mode):
        return "a link: hubscan does not follow links in its store"
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        return "not a regular file (a pipe, socket or device)"
    if not path.name.endswith(".parquet"):
        return None
    if stat.S_ISDIR(mode):
        return "a folder, not a Parquet file"
    try:
        pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        return one_line(exc)
    return None


def quarantine(root: Path, bad: list[BadFile]) -> list[Path]:
    """Move bad files under quarantine/; a model missing rows loses its commit too, so the next sweep redoes it."""
    moved = []
    for item in (b for b in bad if b.movable):
        targets = [item.path]
        if item.path.parts[0] in PER_MODEL_TABLES:
            targets.append(Path("models") / item.path.name)
        for relative in targets:
            source = Path(root) / relative
            if not os.path.lexists(source):
                continue
            destination = Path(root) / QUARANTINE / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(source, destination)
            moved.append(relative)
    return moved
