"""The Parquet store: one file per model revision and table, written atomically.

One file per (repo, revision) makes a re-run idempotent: writing the same model again
replaces its files instead of appending rows, so nothing is counted twice. The
``models`` file is written last and is the commit marker: views only show tensors of
models that have it, so a run killed between the two writes leaves nothing half-visible.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import __version__
from pipeline.errors import HubscanError
from pipeline.storage.schema import FAILURES, MODELS, SCHEMA_VERSION, TABLES, TENSORS

MARKER = "_hubscan.json"


class StoreError(HubscanError):
    """The store folder cannot be used (newer schema, not a store)."""


def model_key(repo_id: str, revision: str) -> str:
    """File stem for one model revision: readable prefix plus a hash that cannot collide."""
    digest = hashlib.sha1(f"{repo_id}@{revision}".encode()).hexdigest()[:16]
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in repo_id)[:80]
    return f"{safe}--{digest}"


class Store:
    """A folder of Parquet tables: models/, tensors/, failures/."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def init(self) -> Store:
        """Create the folders, the schema marker and an empty file per table (so views always bind).

        Raises:
            StoreError: the folder holds a store of a newer schema version.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        marker = self.root / MARKER
        if marker.exists():
            found = json.loads(marker.read_text()).get("schema_version", 0)
            if found > SCHEMA_VERSION:
                raise StoreError(
                    str(self.root), None, MARKER, f"store schema {found} is newer than {SCHEMA_VERSION}"
                )
        else:
            _atomic_bytes(
                marker, json.dumps({"schema_version": SCHEMA_VERSION, "created_by": __version__}).encode()
            )
        for name, schema in TABLES.items():
            folder = self.root / name
            folder.mkdir(exist_ok=True)
            empty = folder / "_empty.parquet"
            if not empty.exists():
                write_table(empty, schema.empty_table())
        return self

    def has_model(self, repo_id: str, revision: str) -> bool:
        """True when this revision was fingerprinted (its commit marker exists)."""
        return (self.root / "models" / f"{model_key(repo_id, revision)}.parquet").exists()

    def write_model(self, model_row: dict[str, object], tensor_rows: Sequence[dict[str, object]]) -> None:
        """Write one model's tensors, then its models row (the commit), then clear old failures."""
        repo_id, revision = str(model_row["repo_id"]), str(model_row["revision"])
        key = model_key(repo_id, revision)
        stamped = {**model_row, "hubscan_version": __version__, "schema_version": SCHEMA_VERSION}
        write_table(
            self.root / "tensors" / f"{key}.parquet", pa.Table.from_pylist(list(tensor_rows), TENSORS)
        )
        write_table(self.root / "models" / f"{key}.parquet", pa.Table.from_pylist([stamped], MODELS))
        (self.root / "failures" / f"{key}.parquet").unlink(missing_ok=True)

    def write_failures(self, repo_id: str, revision: str, errors: Sequence[HubscanError]) -> None:
        """Record why a model revision could not be fingerprinted (replacing earlier attempts)."""
        now = datetime.now(timezone.utc)
        rows = [
            {
                "repo_id": repo_id,
                "revision": revision,
                "file": e.filename or "",
                "category": e.category,
                "message": str(e),
                "failed_at": now,
                "hubscan_version": __version__,
            }
            for e in errors
        ]
        key = model_key(repo_id, revision or "unknown")
        write_table(self.root / "failures" / f"{key}.parquet", pa.Table.from_pylist(rows, FAILURES))


def write_table(path: Path, table: pa.Table) -> None:
    """Write Parquet to a temp file in the same folder, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    os.close(fd)
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _atomic_bytes(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)
