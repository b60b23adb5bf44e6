"""Find Parquet files in a store that cannot be read, and move them aside.

A full disk, a killed copy or another tool can leave a truncated or corrupt file; DuckDB
then fails every query over that table. Every ``*.parquet`` under the store is checked
(compacted folders included), by reading it whole: a readable footer says nothing of the
pages behind it. Quarantined files keep their relative path under ``quarantine/``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.storage.homes import SHARED_FOLDER

QUARANTINE = "quarantine"
# A model's rows live in these tables under the same file name as its models row (the commit).
PER_MODEL_TABLES = ("tensors", "files")


@dataclass(frozen=True)
class BadFile:
    """An unreadable Parquet file and why, relative to the store."""

    path: Path
    reason: str


def find_bad_files(root: Path) -> list[BadFile]:
    """Every Parquet file under the store (quarantine and flag's homes excepted) that does not read back whole."""
    bad = []
    for path in sorted(Path(root).rglob("*.parquet")):
        relative = path.relative_to(root)
        if relative.parts[0] in (QUARANTINE, SHARED_FOLDER):  # set aside, or a running flag's homes
            continue
        try:
            pq.read_table(path)
        except (pa.ArrowException, OSError) as exc:
            bad.append(BadFile(relative, " ".join(str(exc).split())))
    return bad


def quarantine(root: Path, bad: list[BadFile]) -> list[Path]:
    """Move bad files under quarantine/; a model missing rows loses its commit too, so the next sweep redoes it."""
    moved = []
    for item in bad:
        targets = [item.path]
        if item.path.parts[0] in PER_MODEL_TABLES:
            targets.append(Path("models") / item.path.name)
        for relative in targets:
            source = Path(root) / relative
            if not source.exists():
                continue
            destination = Path(root) / QUARANTINE / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(source, destination)
            moved.append(relative)
    return moved
