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
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from hubscan.pipeline.errors import StoreError
from hubscan.pipeline.keys import ModelKey
from hubscan.pipeline.storage.lock import compaction_lock
from hubscan.pipeline.storage.manifest import COMPACT_TABLES, COMPACTED, MANIFEST, Manifest
from hubscan.pipeline.storage.parquet import Store, model_key
from hubscan.pipeline.storage.remote import storage_error
from hubscan.pipeline.storage.schema import TABLES
from hubscan.pipeline.storage.small_files import read_files

# Rows per row group: a model's rows (one block, sorted by model) then sit in one or two row groups,
# so a look-up of one model (copy reuse) reads little more than its own rows.
ROW_GROUP_ROWS = 64_000
KEY = ["repo_id", "revision"]
# Loose models read and written per step: peak memory is one group's rows, whatever the loose count.
# 2,000 synthetic 2-6-layer models are 61k tensors rows, 99 MB in memory (measured); 32-layer models
# have ~7x the rows, so a group stays under ~1 GB with its sorted copy, far below 8 GiB per process.
GROUP_MODELS = 2000
# A part is closed and a new one started past this many uncompressed bytes, so a rewrite (a replaced
# model, a merge) never holds more than one part in memory.
PART_MAX_BYTES = 512 << 20
# A block with more parts than this has its small parts merged into one in the same manifest swap: a
# sweep compacts every 5,000 models, so 1M models would otherwise leave ~200 parts per block.
MERGE_PARTS = 8
# Parts at least this large on disk are left alone by a merge (each is already a long sequential read).
MERGE_BELOW_BYTES = 64 << 20


@dataclass(frozen=True)
class CompactResult:
    """What one compaction did; ``models == 0`` means there was nothing to do."""

    models: int
    parts: int
    generation: int
    removed_files: int


def compact(store: Store, group_models: int = GROUP_MODELS, merge_parts: int = MERGE_PARTS) -> CompactResult:
    """Fold every committed loose model into the compacted files (a no-op when there is none).

    One compaction at a time per local store (it waits for the compaction lock); an object store has
    no lock, so compact it from one place (the sweep's driver, or `hubscan compact` between sweeps).

    Raises:
        StoreError: a file of the store cannot be read, written or deleted (nothing is committed).
    """
    try:
        if not store.local:
            return _compact(store, group_models, merge_parts)
        with compaction_lock(store.root):
            return _compact(store, group_models, merge_parts)
    except (OSError, pa.ArrowException) as exc:  # a damaged store (a folder named like a part): one line
        reason = f"compaction stopped: {storage_error(exc)} (`hubscan check` lists what is damaged)"
        raise StoreError(store.uri, None, None, reason) from None


def _compact(store: Store, group_models: int, merge_parts: int) -> CompactResult:
    manifest = store.manifest()
    removed = _drop_unlisted_parts(store, manifest)
    loose = _loose_models(store)
    generation = manifest.generation + 1
    if not loose:
        removed += _drop_leftovers(store, manifest)
        merged = {
            t: merge_small_parts(store, manifest.files(t), generation, merge_parts) for t in COMPACT_TABLES
        }
        if all(merged[t] == manifest.files(t) for t in COMPACT_TABLES):
            return CompactResult(0, 0, manifest.generation, removed)
        store.write_bytes(MANIFEST, Manifest(generation, merged).to_json())  # a crowded block merged
        return CompactResult(0, sum(map(len, merged.values())), generation, removed)
    stems = sorted(loose)
    writers = _BlockWriters(store, generation)
    keys: list[pa.Array] = []
    for start in range(0, len(stems), group_models):
        group = stems[start : start + group_models]
        models = _read_loose(store, "models", group)
        keys.append(_keys(models))
        writers.add("models", models)
        ordered = _in_block_order(group, models)
        for table in ("tensors", "files"):
            writers.add(table, _with_hidden(_read_loose(store, table, ordered), models))
    new = writers.close()
    # Models compacted before and loose again (re-fingerprinted, or a killed clean-up): their old rows go.
    # Only then are the compacted parts opened; the usual run just adds parts.
    replaced = _replaced(store, manifest, pa.chunked_array(keys, pa.string()).combine_chunks())
    parts: dict[str, list[str]] = {}
    for table in COMPACT_TABLES:
        kept, rewritten = (
            _without(store, manifest.files(table), replaced, generation)
            if len(replaced)
            else (manifest.files(table), [])
        )
        parts[table] = merge_small_parts(store, kept + rewritten + new[table], generation, merge_parts)
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
    """The rows of these models in one table (in stem order; the block writers sort them).

    Raises:
        StoreError: a loose file cannot be read; nothing is written or deleted.
    """
    paths = [store._path(table, f"{s}.parquet") for s in stems]
    present = [
        p for p, i in zip(paths, store.fs.get_file_info(paths), strict=True) if i.type == pafs.FileType.File
    ]
    return read_files(store.fs, present, TABLES[table])


def _in_block_order(stems: list[str], models: pa.Table) -> list[str]:
    """Stems in the order their rows go into the parts (block, then model; a stem with no models row last).

    Read in this order, a group's rows come back already sorted and the writers skip reordering the
    rows (0.2 s of copying list columns per 2,000 models); the writers still check the order.
    """
    rank = {
        model_key(r, v): (h is None, h or 0, r, v)
        for r, v, h in zip(*(models[c].to_pylist() for c in ("repo_id", "revision", "hidden")), strict=True)
    }
    last = (True, 0, "", "")
    return sorted(stems, key=lambda s: rank.get(s, last))


def _keys(rows: pa.Table) -> pa.Array:
    """repo_id@revision of every row (revisions never contain '@')."""
    return pc.binary_join_element_wise(rows["repo_id"], rows["revision"], "@")


def _with_hidden(rows: pa.Table, models: pa.Table) -> pa.Table:
    """Rows with their model's hidden size (the block they are filed under)."""
    where = pc.index_in(_keys(rows), value_set=_keys(models))
    return rows.append_column("hidden", pc.take(models["hidden"], where))


def _replaced(store: Store, manifest: Manifest, keys: pa.Array) -> pa.Array:
    """Those of these keys (repo_id@revision) that the compacted files already hold."""
    paths = [store._path(p) for p in manifest.files("models")]
    if not paths:
        return pa.array([], pa.string())
    compacted = ds.dataset(paths, filesystem=store.fs, format="parquet").to_table(columns=KEY)
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
            new = _part_name(rel.split("/")[1], _block(rel), generation)
            _write_part(store, new, rows)
            rewritten.append(new)
    return kept, rewritten


def block_folder(hidden: int | None) -> str:
    """The folder of a comparability block's compacted parts: block-<hidden> (block-none: no hidden size)."""
    return f"block-{hidden if hidden is not None else 'none'}"


def hidden_sizes(store: Store) -> dict[ModelKey, int | None]:
    """Each stored model's hidden size, which names the block folder its compacted parts live in."""
    table = store.dataset("models").to_table(columns=["repo_id", "revision", "hidden"])
    return {(r["repo_id"], r["revision"]): r["hidden"] for r in table.to_pylist()}


def _block(rel: str) -> str:
    """The block folder (block-<hidden>) a compacted file lives in."""
    return rel.rsplit("/", 2)[-2]


def _part_name(table: str, block: str, generation: int) -> str:
    return f"{COMPACTED}/{table}/{block}/part-{generation:06d}-{uuid.uuid4().hex[:8]}.parquet"


@dataclass
class _BlockWriters:
    """One open Parquet writer per table and block: groups of models append to it, so a compaction
    leaves one part per block (a new one past PART_MAX_BYTES) however many groups it read."""

    store: Store
    generation: int
    open: dict[tuple[str, str], tuple[str, pq.ParquetWriter, int]] = field(default_factory=dict)
    done: dict[str, list[str]] = field(default_factory=dict)

    def add(self, table: str, rows: pa.Table) -> None:
        """Append rows (in the table's schema plus ``hidden``) to the parts of their blocks, sorted by model.

        One sort by block then model and a slice per block: a filter and a sort per block cost 2.1 s
        of a 10k-model compaction's 32 s (cProfile), as each copies the rows' list columns.
        """
        # null hidden sorts last (the default placement), as _in_block_order puts it
        order = pc.sort_indices(rows, [("hidden", "ascending"), *((k, "ascending") for k in KEY)])
        if not np.array_equal(order.to_numpy(), np.arange(len(order))):
            rows = rows.take(order)
        blocks = pc.run_end_encode(rows["hidden"].combine_chunks())
        # a block's share of the group's bytes: `nbytes` of each slice walked the list offsets of
        # DuckDB's 2,000 chunks a group (0.5 s of a 10k compaction), and the size is only a threshold
        per_row = rows.get_total_buffer_size() / max(rows.num_rows, 1)
        ends = blocks.run_ends.to_pylist()
        runs = list(zip(blocks.values.to_pylist(), [0, *ends][:-1], ends, strict=True))
        # blocks start their parts in the order of their first model, as when each block was filtered
        # out of the model-sorted rows, so the manifest lists parts in the same order as before
        first = {
            start: (rows["repo_id"][start].as_py(), rows["revision"][start].as_py()) for _, start, _ in runs
        }
        for value, start, end in sorted(runs, key=lambda run: first[run[1]]):
            part = rows.slice(start, end - start).select(TABLES[table].names)
            if not part.schema.equals(TABLES[table]):  # rows built by hand (bench/); compaction's are exact
                part = part.cast(TABLES[table])
            block = block_folder(value)
            self.append(table, block, part, int(per_row * part.num_rows))

    def append(self, table: str, block: str, rows: pa.Table, nbytes: int | None = None) -> None:
        """Rows of one block (``nbytes`` in memory, when known); the part is closed once it holds PART_MAX_BYTES."""
        rel, writer, size = self.open.get((table, block)) or self._start(table, block)
        writer.write_table(rows, row_group_size=ROW_GROUP_ROWS)
        size += rows.get_total_buffer_size() if nbytes is None else nbytes
        self.open[(table, block)] = (rel, writer, size)
        if size >= PART_MAX_BYTES:
            writer.close()
            del self.open[(table, block)]

    def close(self) -> dict[str, list[str]]:
        """Close every part; the relative paths of all parts written, per table."""
        for _rel, writer, _size in self.open.values():
            writer.close()
        self.open.clear()
        return {t: list(self.done.get(t, [])) for t in COMPACT_TABLES}

    def _start(self, table: str, block: str) -> tuple[str, pq.ParquetWriter, int]:
        rel = _part_name(table, block, self.generation)
        self.store.fs.create_dir(self.store._path(rel.rsplit("/", 1)[0]), recursive=True)
        # written in place: a part no manifest names is never read, so a half-written one is harmless
        writer = pq.ParquetWriter(
            self.store._path(rel), TABLES[table], filesystem=self.store.fs, compression="zstd"
        )
        self.done.setdefault(table, []).append(rel)
        return rel, writer, 0


def merge_small_parts(store: Store, parts: list[str], generation: int, most: int = MERGE_PARTS) -> list[str]:
    """Parts of one table with the small parts of each crowded block (more than ``most``) merged into one.

    The merged-away parts stay on disk, named by no manifest, until the next compaction deletes them,
    so a reader still holding the previous manifest can finish.
    """
    sizes = {
        p: i.size for p, i in zip(parts, store.fs.get_file_info([store._path(p) for p in parts]), strict=True)
    }
    by_block: dict[str, list[str]] = {}
    for rel in parts:
        by_block.setdefault(_block(rel), []).append(rel)
    out: list[str] = []
    for block, rels in by_block.items():
        small = [r for r in rels if (sizes[r] or 0) < MERGE_BELOW_BYTES]
        if len(rels) <= most or len(small) < 2:
            out += rels
            continue
        table = rels[0].split("/")[1]
        writers = _BlockWriters(store, generation)
        for rel in small:  # one part in memory at a time
            writers.append(table, block, pq.read_table(store._path(rel), filesystem=store.fs))
        out += [r for r in rels if r not in small] + writers.close()[table]
    return out


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
            if info.type == pafs.FileType.File and stem in compacted:
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
