"""Delta Lake (the `deltalake` package) against our manifest as the compacted store's table format.

The same groups of loose models (compaction's GROUP_MODELS) are committed both ways: as Delta
appends partitioned by hidden size, and as compaction's parts per block plus a manifest swap. Then
Delta's optimize (its compaction) runs without a vacuum, and each table is read back by its format's
own reader and by readers that only see Parquet files (pyarrow over the folder, DuckDB's read_parquet
without its network-installed delta extension).

    python -m bench.delta_lake 10000
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
from deltalake import DeltaTable, write_deltalake

from bench.results import recorded
from bench.store_scale import write_loose_store
from hubscan.pipeline.storage.compact import (
    GROUP_MODELS,
    _BlockWriters,
    _read_loose,
    _with_hidden,
    merge_small_parts,
)
from hubscan.pipeline.storage.manifest import MANIFEST, Manifest
from hubscan.pipeline.storage.parquet import Store


def _groups(store: Store) -> list[pa.Table]:
    """Tensors rows with their block (hidden), one table per group of loose models."""
    stems = sorted(p.stem for p in (store.root / "models").glob("[!_]*.parquet"))
    out = []
    for start in range(0, len(stems), GROUP_MODELS):
        group = stems[start : start + GROUP_MODELS]
        out.append(_with_hidden(_read_loose(store, "tensors", group), _read_loose(store, "models", group)))
    return out


def _commit_delta(path: Path, groups: list[pa.Table]) -> float:
    t0 = time.perf_counter()
    for rows in groups:
        write_deltalake(str(path), rows, mode="append", partition_by=["hidden"])
    return time.perf_counter() - t0


def _commit_manifest(store: Store, groups: list[pa.Table]) -> float:
    t0 = time.perf_counter()
    parts: list[str] = []
    for generation, rows in enumerate(groups, start=1):  # one manifest swap per group, like an append
        writers = _BlockWriters(store, generation)
        writers.add("tensors", rows)
        parts += writers.close()["tensors"]
        store.write_bytes(MANIFEST, Manifest(generation, {"tensors": parts}).to_json())
    return time.perf_counter() - t0


def _duckdb_rows(folder: Path) -> int:
    sql = "SELECT count(*) FROM read_parquet($p)"
    return int(duckdb.sql(sql, params={"p": f"{folder}/**/*.parquet"}).fetchall()[0][0])


def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "store")
        write_loose_store(store.root, n)
        groups = _groups(store)
        rows = sum(g.num_rows for g in groups)
        delta, ours = Path(tmp) / "delta", Store(Path(tmp) / "ours").init()
        t_delta, t_ours = _commit_delta(delta, groups), _commit_manifest(ours, groups)
        t0 = time.perf_counter()
        DeltaTable(str(delta)).optimize.compact()
        t_opt = time.perf_counter() - t0
        t0 = time.perf_counter()
        merged = merge_small_parts(ours, ours.manifest().files("tensors"), len(groups) + 1, most=1)
        ours.write_bytes(MANIFEST, Manifest(len(groups) + 1, {"tensors": merged}).to_json())
        t_merge = time.perf_counter() - t0
        own = DeltaTable(str(delta)).to_pyarrow_dataset().count_rows()
        listed = [str(ours.root / p) for p in ours.manifest().files("tensors")]
        print(f"{n:,} models, {len(groups)} groups of {GROUP_MODELS:,}, {rows:,} tensors rows")
        print("| format | commit the groups (s) | compaction (s) | own reader rows | pyarrow over folder | "
              "DuckDB read_parquet over folder |")  # fmt: skip
        print("|---|---|---|---|---|---|")
        folder_rows = ds.dataset(str(delta), format="parquet", partitioning="hive").count_rows()
        print(f"| Delta (deltalake {__import__('deltalake').__version__}) | {t_delta:.2f} | {t_opt:.2f} "
              f"(optimize.compact, no vacuum) | {own:,} | {folder_rows:,} | {_duckdb_rows(delta):,} |")  # fmt: skip
        ours_rows = ds.dataset(listed, format="parquet").count_rows()
        print(f"| our manifest | {t_ours:.2f} | {t_merge:.2f} (merge_small_parts, merged-away parts kept until the next run) | {ours_rows:,} | "
              f"{ds.dataset(str(ours.root / 'compacted'), format='parquet', exclude_invalid_files=True).count_rows():,} | "
              f"{_duckdb_rows(ours.root / 'compacted'):,} |")  # fmt: skip


if __name__ == "__main__":
    with recorded("Delta Lake against the manifest"):
        main(int(sys.argv[1]) if sys.argv[1:] else 10_000)
