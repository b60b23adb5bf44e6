"""Compaction: committed per-model files merged into large files per comparability block.

Per-model files stay the crash-safe commit unit of a sweep; compaction folds the committed ones into
``compacted/<table>/block-<hidden>/part-<generation>-<id>.parquet`` sorted by model, then swaps the
manifest in one atomic write, then deletes the loose files it folded in. Killed at any point:
- before the swap, the new part files are named by no manifest, so nothing reads them (the next run
  deletes them);
- after the swap, a model is both loose and compacted; the views and the next run take the loose
  copy, which is the same rows, so nothing is counted twice.
A model re-written while compaction runs keeps its newer loose file (its modification time changed),
and the next compaction replaces its compacted rows.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from pipeline.storage.manifest import COMPACT_TABLES, COMPACTED, MANIFEST, Manifest
from pipeline.storage.parquet import Store, model_key
from pipeline.storage.schema import TABLES

# Rows per row group: a model's rows (one block, sorted by model) then sit in one or two row groups,
# so a look-up of one model (copy reuse) reads little more than its own rows.
ROW_GROUP_ROWS = 64_000
KEY = ["repo_id", "revision"]


@dataclass(frozen=True)
class CompactResult:
    """What one compaction did; ``models == 0`` means there was nothing to do."""

    models: int
    parts: int
    generation: int
    removed_files: int


def compact(store: Store) -> CompactResult:
    """Fold every committed loose model into the compacted files (a no-op when there is none)."""
    manifest = store.manifest()
    removed = _drop_unlisted_parts(store, manifest)
    loose = _loose_models(store)
    if not loose:
        removed += _drop_leftovers(store, manifest)
        return CompactResult(0, 0, manifest.generation, removed)
    generation = manifest.generation + 1
    stems = sorted(loose)
    tables = {t: _read_loose(store, t, stems) for t in COMPACT_TABLES}
    # Models compacted before and loose again (re-fingerprinted, or a killed clean-up): their old rows go.
    # Only then are the compacted parts opened; the usual run just adds parts.
    replaced = _replaced(store, manifest, tables["models"])
    parts: dict[str, list[str]] = {}
    for table in COMPACT_TABLES:
        kept, rewritten = (
            _without(store, manifest.files(table), replaced, generation)
            if len(replaced)
            else (manifest.files(table), [])
        )
        new = tables[table] if table == "models" else _with_hidden(tables[table], tables["models"])
        parts[table] = kept + rewritten + _write_blocks(store, table, new, generation)
    store.write_bytes(MANIFEST, Manifest(generation, parts).to_json())  # the commit
    return CompactResult(
        len(stems), sum(map(len, parts.values())), generation, removed + _drop_loose(store, loose)
    )


def _loose_models(store: Store) -> dict[str, int]:
    """stem → modification time (ns) of every committed loose model (its models file exists)."""
    infos = store.fs.get_file_info(pafs.FileSelector(store._path("models")))
    return {
        i.base_name.removesuffix(".parquet"): int(i.mtime_ns or 0)
        for i in infos
        if i.base_name.endswith(".parquet") and not i.base_name.startswith(("_", "."))
    }


def _read_loose(store: Store, table: str, stems: list[str]) -> pa.Table:
    """The rows of these models in one table, sorted by model."""
    paths = [store._path(table, f"{s}.parquet") for s in stems]
    present = [
        p for p, i in zip(paths, store.fs.get_file_info(paths), strict=True) if i.type == pafs.FileType.File
    ]
    rows = ds.dataset(present, filesystem=store.fs, format="parquet", schema=TABLES[table]).to_table()
    return rows.sort_by([(k, "ascending") for k in KEY])


def _keys(rows: pa.Table) -> pa.Array:
    """repo_id@revision of every row (revisions never contain '@')."""
    return pc.binary_join_element_wise(rows["repo_id"], rows["revision"], "@")


def _with_hidden(rows: pa.Table, models: pa.Table) -> pa.Table:
    """Rows with their model's hidden size (the block they are filed under)."""
    where = pc.index_in(_keys(rows), value_set=_keys(models))
    return rows.append_column("hidden", pc.take(models["hidden"], where))


def _replaced(store: Store, manifest: Manifest, models: pa.Table) -> pa.Array:
    """Keys (repo_id@revision) of these models that the compacted files already hold."""
    paths = [store._path(p) for p in manifest.files("models")]
    if not paths:
        return pa.array([], pa.string())
    compacted = ds.dataset(paths, filesystem=store.fs, format="parquet").to_table(columns=KEY)
    keys = _keys(models)
    return keys.filter(pc.is_in(keys, value_set=_keys(compacted)))


def _without(store: Store, files: list[str], keys: pa.Array, generation: int) -> tuple[list[str], list[str]]:
    """Compacted files kept as they are, plus rewrites of those holding a model being replaced."""
    kept: list[str] = []
    rewritten: list[str] = []
    for rel in files:
        part = pq.read_table(store._path(rel), filesystem=store.fs, columns=KEY)
        hit = pc.is_in(_keys(part), value_set=keys)
        if not pc.any(hit).as_py():
            kept.append(rel)
            continue
        rows = pq.read_table(store._path(rel), filesystem=store.fs).filter(pc.invert(hit))
        if rows.num_rows:
            new = f"{rel.rsplit('/', 1)[0]}/part-{generation:06d}-{uuid.uuid4().hex[:8]}.parquet"
            _write_part(store, new, rows)
            rewritten.append(new)
    return kept, rewritten


def _write_blocks(store: Store, table: str, rows: pa.Table, generation: int) -> list[str]:
    """One new part file per comparability block, sorted by model."""
    written = []
    hidden = rows["hidden"]
    for block in pc.unique(hidden).to_pylist():
        mask = pc.is_null(hidden) if block is None else pc.equal(hidden, block)
        part = rows.filter(mask).select(TABLES[table].names).sort_by([(k, "ascending") for k in KEY])
        rel = f"{COMPACTED}/{table}/block-{block if block is not None else 'none'}/part-{generation:06d}-{uuid.uuid4().hex[:8]}.parquet"
        _write_part(store, rel, part.cast(TABLES[table]))
        written.append(rel)
    return written


def _write_part(store: Store, rel: str, rows: pa.Table) -> None:
    store.fs.create_dir(store._path(rel.rsplit("/", 1)[0]), recursive=True)
    store.write(rel, rows, row_group_size=ROW_GROUP_ROWS)


def _drop_loose(store: Store, loose: dict[str, int]) -> int:
    """Delete the loose files of compacted models: the commit marker first, and only if unchanged."""
    removed = 0
    # the same listing call as when they were read: object stores give listings and HEADs other precisions
    now = _loose_models(store)
    for stem, mtime in loose.items():
        if now.get(stem) != mtime:
            continue  # re-written since it was read: the newer loose copy stays and wins
        store.fs.delete_file(store._path("models", f"{stem}.parquet"))
        removed += 1
        for table in ("tensors", "files"):
            removed += _delete_if_present(store, store._path(table, f"{stem}.parquet"))
    return removed


def _drop_unlisted_parts(store: Store, manifest: Manifest) -> int:
    """Delete compacted files no manifest names (left by a compaction killed before its swap)."""
    listed = {store._path(p) for t in COMPACT_TABLES for p in manifest.files(t)}
    removed = 0
    for table in COMPACT_TABLES:
        selector = pafs.FileSelector(store._path(COMPACTED, table), allow_not_found=True, recursive=True)
        for info in store.fs.get_file_info(selector):
            if info.type == pafs.FileType.File and info.path not in listed:
                removed += _delete_if_present(store, info.path)
    return removed


def _drop_leftovers(store: Store, manifest: Manifest) -> int:
    """Loose tensors/files of compacted models whose commit marker a killed clean-up already deleted."""
    compacted = _compacted_stems(store, manifest)
    removed = 0
    for table in ("tensors", "files"):
        for info in store.fs.get_file_info(pafs.FileSelector(store._path(table))):
            stem = info.base_name.removesuffix(".parquet")
            if stem in compacted:
                removed += _delete_if_present(store, info.path)
    return removed


def _compacted_stems(store: Store, manifest: Manifest) -> set[str]:
    paths = [store._path(p) for p in manifest.files("models")]
    if not paths:
        return set()
    keys = ds.dataset(paths, filesystem=store.fs, format="parquet").to_table(columns=KEY)
    return {
        model_key(r, v)
        for r, v in zip(keys["repo_id"].to_pylist(), keys["revision"].to_pylist(), strict=True)
    }


def _delete_if_present(store: Store, path: str) -> int:
    try:
        store.fs.delete_file(path)
    except FileNotFoundError:
        return 0
    return 1
