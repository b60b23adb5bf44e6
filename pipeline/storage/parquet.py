"""The Parquet store: one file per model revision and table, on local disk or object storage.

One file per (repo, revision) makes a re-run idempotent: writing the same model again
replaces its files instead of appending rows, so nothing is counted twice. The ``models``
file is written last and is the commit marker: views only show tensors of models that have
it, so a run killed between the writes leaves nothing half-visible. Locally a file is
written to a temporary name and renamed; on s3:// or gs:// a single PUT is already atomic.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from hubscan.pipeline import __version__
from hubscan.pipeline.errors import HubscanError, StoreError
from hubscan.pipeline.fingerprints.tensor import TensorFingerprint
from hubscan.pipeline.storage.file_names import MAX_NAME_BYTES
from hubscan.pipeline.storage.manifest import COMPACT_TABLES, MANIFEST, MANIFEST_FOREIGN, Manifest
from hubscan.pipeline.storage.own_files import check_own_path, check_writable, marker_version, read_own
from hubscan.pipeline.storage.remote import open_filesystem, storage_error
from hubscan.pipeline.storage.schema import FAILURES, FILES, MODELS, SCHEMA_VERSION, TABLES, TENSORS

MARKER = "_hubscan.json"


# A stem goes into "<stem>.parquet" (at most MAX_NAME_BYTES), so the readable part gets what the
# suffix, the "--" and the 16-digit hash leave. Keys within it are what every earlier store used.
_KEY_PREFIX_BYTES = MAX_NAME_BYTES - len(".parquet") - len("--") - 16
# pyarrow datasets and compaction skip names starting with these (hidden and metadata files).
_HIDDEN_LEADS = "_."


def model_key(repo_id: str, revision: str) -> str:
    """File stem for one model revision: readable prefix plus a hash that cannot collide.

    The prefix is cut to whole characters within the byte budget (80 CJK characters are 240 bytes)
    and never starts with ``_`` or ``.``, which readers take for hidden files: such a model would
    be re-read on every sweep. Ids that met both rules keep the key earlier stores used.
    """
    digest = hashlib.sha1(f"{repo_id}@{revision}".encode()).hexdigest()[:16]
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in repo_id)[:80].lstrip(_HIDDEN_LEADS)
    while len(safe.encode()) > _KEY_PREFIX_BYTES:
        safe = safe[:-1]
    return f"{safe or 'model'}--{digest}"


class Store:
    """Tables models/, tensors/, failures/, files/, sweeps/ under a folder or an s3:// / gs:// prefix."""

    def __init__(self, root: Path | str) -> None:
        self.uri = str(root)
        self.fs, self.base = _filesystem(self.uri)
        self.local = isinstance(self.fs, pafs.LocalFileSystem)

    @property
    def root(self) -> Path:
        """The local folder of a local store."""
        return Path(self.base)

    @property
    def location(self) -> str:
        """Where DuckDB finds the store: the absolute folder, or scheme://bucket/prefix."""
        return self.base if self.local else f"{self.scheme}://{self.base}"

    @property
    def scheme(self) -> str:
        """``file``, ``s3``, ``gs``, ... (the URI scheme the store was opened with)."""
        return self.uri.split("://", 1)[0] if "://" in self.uri else "file"

    def init(self) -> Store:
        """Create the tables, the schema marker and an empty file per table (so views always bind).

        Raises:
            StoreError: the store holds a newer schema version, or storage refused (no bucket,
                no credentials, access denied).
        """
        try:
            return self._init()
        except (OSError, pa.ArrowException) as exc:  # GCS raises ArrowException for unreadable credentials
            raise StoreError(self.uri, None, None, storage_error(exc)) from None

    def _init(self) -> Store:
        # GCS's create_dir makes a missing bucket (S3's refuses): a mistyped bucket must be an error
        self._check_bucket()
        self.fs.create_dir(self.base, recursive=True)
        data = self.read_bytes(MARKER)
        if data is not None:
            found = marker_version(self.uri, MARKER, data)
            if found > SCHEMA_VERSION:
                raise StoreError(
                    self.uri, None, MARKER, f"store schema {found} is newer than {SCHEMA_VERSION}"
                )
        else:
            self.write_bytes(
                MARKER, json.dumps({"schema_version": SCHEMA_VERSION, "created_by": __version__}).encode()
            )
        for name, schema in TABLES.items():
            self.fs.create_dir(self._path(name), recursive=True)
            if self.local:  # a table folder that is a link would take every write out of the store
                check_own_path(self.uri, self.base, f"{name}/_empty.parquet")
            empty = self._path(name, "_empty.parquet")
            # a store written before a column was added gets the new empty file, so views bind to it
            if not self._exists(empty) or pq.read_schema(empty, filesystem=self.fs).names != schema.names:
                self.write(f"{name}/_empty.parquet", schema.empty_table())
        return self

    def writable(self) -> Store:
        """This store, if it can be written: commands that write say so in one line before any work.

        Raises:
            StoreError: a local store that refuses a new file (read-only mount, permissions).
        """
        if self.local:
            check_writable(self.uri, self.base)
        return self

    def open(self) -> Store:
        """An initialised store, for a sweep task: no marker, folder or schema requests (48 per model on S3).

        A local folder may be node-local on a multi-node cluster, so its table folders are created.
        """
        if self.local:
            for name in TABLES:
                os.makedirs(self._path(name), exist_ok=True)
        return self

    def has_model(self, repo_id: str, revision: str) -> bool:
        """True when this revision was fingerprinted (its commit marker exists, loose or compacted).

        One look-up, not for loops over a listing: a sweep asks its StoreIndex instead.
        """
        if self._exists(self._path("models", f"{model_key(repo_id, revision)}.parquet")):
            return True
        return self._compacted("models", repo_id, revision).num_rows > 0

    def write_model(
        self,
        model_row: dict[str, object],
        tensor_rows: Sequence[dict[str, object]],
        file_rows: Sequence[dict[str, object]] = (),
    ) -> None:
        """Write one model's tensors and file hashes, then its models row (the commit), then clear old failures."""
        key = model_key(str(model_row["repo_id"]), str(model_row["revision"]))
        stamped = {**model_row, "hubscan_version": __version__, "schema_version": SCHEMA_VERSION}
        self.write(f"tensors/{key}.parquet", pa.Table.from_pylist(list(tensor_rows), TENSORS))
        self.write(f"files/{key}.parquet", pa.Table.from_pylist(list(file_rows), FILES))
        self.write(f"models/{key}.parquet", pa.Table.from_pylist([stamped], MODELS))
        stale = self._path("failures", f"{key}.parquet")
        if self._exists(stale):
            self.fs.delete_file(stale)

    def write_failures(self, repo_id: str, revision: str, errors: Sequence[HubscanError]) -> None:
        """Record why a model revision could not be fingerprinted (replacing earlier attempts)."""
        now = datetime.now(UTC)
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
        self.write(f"failures/{key}.parquet", pa.Table.from_pylist(rows, FAILURES))

    def failure_categories(self, repo_id: str, revision: str) -> set[str]:
        """Categories of the recorded failures of one model revision (empty when none)."""
        path = self._path("failures", f"{model_key(repo_id, revision)}.parquet")
        if not self._exists(path):
            return set()
        return set(
            pq.read_table(path, filesystem=self.fs, columns=["category"]).column("category").to_pylist()
        )

    def rows(self, repo_id: str, revision: str, sha256: str) -> list[TensorFingerprint]:
        """The stored tensor fingerprints of the file with that content hash in one model revision."""
        key = model_key(repo_id, revision)
        if self._exists(self._path("models", f"{key}.parquet")):
            files = pq.read_table(self._path("files", f"{key}.parquet"), filesystem=self.fs)
            tensors = pq.read_table(self._path("tensors", f"{key}.parquet"), filesystem=self.fs)
        else:
            files = self._compacted("files", repo_id, revision)
            tensors = self._compacted("tensors", repo_id, revision)
        names = {f["file"] for f in files.to_pylist() if f["sha256"] == sha256}
        return [t for t in TensorFingerprint.from_arrow(tensors) if t.file in names]

    def dataset(self, table: str) -> ds.Dataset:
        """A pyarrow dataset over one table: its loose files plus its compacted files.

        Between a compaction's manifest swap and its clean-up a model can be in both: readers
        that must count a model once use the views (loose wins), or sets and dicts keyed by model.
        """
        loose = ds.dataset(self._path(table), filesystem=self.fs, format="parquet", schema=TABLES[table])
        compacted = self.manifest().files(table) if table in COMPACT_TABLES else []
        if not compacted:
            return loose
        parts = ds.dataset(
            [self._path(p) for p in compacted], filesystem=self.fs, format="parquet", schema=TABLES[table]
        )
        return ds.dataset([loose, parts])

    def manifest(self) -> Manifest:
        """The compacted files of the store (empty before the first compaction).

        Raises:
            StoreError: the manifest is not what hubscan writes (every command would otherwise die on it).
        """
        try:
            return Manifest.from_json(self.read_bytes(MANIFEST))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise StoreError(self.uri, None, MANIFEST, MANIFEST_FOREIGN) from None

    def _compacted(self, table: str, repo_id: str, revision: str) -> pa.Table:
        """One model's rows in the compacted files (files are sorted by model: row groups are skipped)."""
        paths = [self._path(p) for p in self.manifest().files(table)]
        if not paths:
            return TABLES[table].empty_table()
        where = (ds.field("repo_id") == repo_id) & (ds.field("revision") == revision)
        parts = ds.dataset(paths, filesystem=self.fs, format="parquet", schema=TABLES[table])
        return parts.to_table(filter=where)

    def write(self, relative: str, table: pa.Table, row_group_size: int | None = None) -> None:
        """Write Parquet atomically: temp file + rename locally, one PUT on object storage."""
        path = self._path(relative)
        if not self.local:
            with self.fs.open_output_stream(path) as out:
                pq.write_table(table, out, compression="zstd", row_group_size=row_group_size)
            return
        check_own_path(self.uri, self.base, relative)
        tmp = f"{os.path.dirname(path)}/.{uuid.uuid4().hex}.tmp"
        try:
            pq.write_table(table, tmp, compression="zstd", row_group_size=row_group_size)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def write_bytes(self, relative: str, data: bytes) -> None:
        """Write a small non-Parquet file (marker, cursor) atomically."""
        path = self._path(relative)
        if not self.local:
            with self.fs.open_output_stream(path) as out:
                out.write(data)
            return
        check_own_path(self.uri, self.base, relative)
        tmp = f"{os.path.dirname(path)}/.{uuid.uuid4().hex}.tmp"
        Path(tmp).write_bytes(data)
        os.replace(tmp, path)

    def read_bytes(self, relative: str) -> bytes | None:
        """A small file's bytes, or None when absent; locally never through a link.

        Raises:
            StoreError: locally, the file is a link or not a regular file.
        """
        if self.local:
            return read_own(self.uri, self.base, relative)
        path = self._path(relative)
        if not self._exists(path):
            return None
        with self.fs.open_input_stream(path) as fh:
            return bytes(fh.read())

    def _path(self, *parts: str) -> str:
        return "/".join([self.base.rstrip("/"), *parts])

    def _exists(self, path: str) -> bool:
        return bool(self.fs.get_file_info(path).type != pafs.FileType.NotFound)

    def _check_bucket(self) -> None:
        """Raises StoreError when an object store's bucket does not exist (a local folder has none)."""
        bucket = self.base.split("/", 1)[0]
        if not self.local and not self._exists(bucket):
            raise StoreError(self.uri, None, None, f"bucket {bucket} does not exist")

    def open_existing(self) -> Store:
        """This store, if one was created here; writes nothing, so a mistyped location stays absent.

        Commands that only read call this first: ``init()`` alone would create an empty store there.

        Raises:
            StoreError: no schema marker at the location (not a hubscan store), or storage refused.
        """
        try:
            found = self._exists(self._path(MARKER))
            if not found:
                self._check_bucket()  # the more useful of the two messages for a mistyped bucket
        except (OSError, pa.ArrowException) as exc:
            raise StoreError(self.uri, None, None, storage_error(exc)) from None
        if not found:
            raise StoreError(self.uri, None, None, "no hubscan store here (no _hubscan.json)")
        return self


def _filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """pyarrow filesystem and base path: s3://, gs:// and other URIs, else a local folder."""
    if "://" in uri:
        try:
            return open_filesystem(uri)
        except (pa.ArrowInvalid, OSError) as exc:
            raise StoreError(uri, None, None, f"cannot open store: {storage_error(exc)}") from None
    return pafs.LocalFileSystem(), str(Path(uri).resolve())


def write_table(path: Path, table: pa.Table) -> None:
    """Write one Parquet file atomically to a local path (used outside a Store, e.g. exports)."""
    Store(path.parent).write(path.name, table)
