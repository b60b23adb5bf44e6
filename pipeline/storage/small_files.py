"""Many small Parquet files read as one table in a given schema: how compaction reads loose models.

A local store is read by DuckDB's ``read_parquet`` over the explicit path list (2.5x faster than a
pool of pyarrow reads, bench/read_many.py); an object store keeps the pool, because DuckDB reaches it
only through an fsspec wrapper (its network extensions are downloaded at run time), which measured
2-3x slower than the pool there. Both give exactly the rows and schema ``TABLES`` declares, and a
file that cannot be read is one ``StoreError`` naming it.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import duckdb
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from hubscan.pipeline.errors import StoreError, one_line

# Parallel reads of small files on an object store: each costs a GET more than its bytes.
READ_THREADS = 8
# DuckDB only streams the scan here (the rows land in Arrow, outside its buffer pool), so a small
# limit suffices and leaves the 8 GiB per process to the group's Arrow rows and the writer.
DUCKDB_MEMORY = "1GB"


def read_files(fs: pafs.FileSystem, paths: list[str], schema: pa.Schema) -> pa.Table:
    """The files' rows, in path order, as exactly ``schema`` (columns a file lacks are null).

    Raises:
        StoreError: a file cannot be read (truncated, not Parquet); the message names it.
    """
    if not paths:
        return schema.empty_table()
    if isinstance(fs, pafs.LocalFileSystem):
        return read_with_duckdb(paths, schema)
    return read_with_threads(fs, paths, schema)


def read_with_duckdb(paths: list[str], schema: pa.Schema) -> pa.Table:
    """Local files through one DuckDB scan over the list, its threads on every core.

    Raises:
        StoreError: a file cannot be read (found again by the pool, so the message is the same).
    """
    # a connection per read, not one cached per process: a forked process (a ProcessPoolExecutor)
    # inheriting a DuckDB connection hangs on its first query
    con = duckdb.connect(config={"threads": os.cpu_count() or 1, "memory_limit": DUCKDB_MEMORY})
    try:
        # Without union_by_name DuckDB takes the first file's columns (0.2 ms per model faster, as
        # it skips reading every footer first): a later file lacking one fails, and a first file
        # lacking one drops it for all, so either case reads again with the union of all columns.
        rows = _scan(con, paths, union=False)
        if rows is None or not set(schema.names) <= set(rows.column_names):
            rows = _scan(con, paths, union=True)
    finally:
        con.close()
    if rows is None:
        return read_with_threads(pafs.LocalFileSystem(), paths, schema)
    return conform(rows, schema)


def _scan(con: duckdb.DuckDBPyConnection, paths: list[str], union: bool) -> pa.Table | None:
    """One read_parquet over the paths (rows in path order), or None when DuckDB cannot read them."""
    query = f"SELECT * FROM read_parquet($paths, union_by_name = {'true' if union else 'false'})"
    try:
        return con.sql(query, params={"paths": paths}).to_arrow_table()
    except duckdb.Error:
        return None


def conform(rows: pa.Table, schema: pa.Schema) -> pa.Table:
    """Rows in exactly this schema: its column order and types, nulls for a column no file had.

    DuckDB hands back ``Etc/UTC`` timestamps and lists whose item field is named ``l``; the cast
    makes them the store's types, so a compacted part matches the views' empty files.
    """
    columns = [
        rows[f.name].cast(f.type) if f.name in rows.column_names else pa.nulls(rows.num_rows, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema)


def read_with_threads(fs: pafs.FileSystem, paths: list[str], schema: pa.Schema) -> pa.Table:
    """A pool of whole-file pyarrow reads (the object-store path).

    Raises:
        StoreError: a file cannot be read; the message names it.
    """

    def one(path: str) -> pa.Table:
        try:
            return pq.read_table(path, filesystem=fs, schema=schema)
        except (pa.ArrowException, OSError) as exc:
            reason = one_line(exc).removeprefix(f"Could not open Parquet input source '{path}': ")
            raise StoreError(None, None, path, f"unreadable loose file: {reason}") from None

    with ThreadPoolExecutor(READ_THREADS) as pool:
        return pa.concat_tables(pool.map(one, paths))
