"""Reading many small Parquet files into one table, as compaction reads a group of loose models:
a pyarrow dataset over the file list, DuckDB's read_parquet over the list (multithreaded), a thread
pool of pq.read_table, and compaction's own reader (pipeline/storage/small_files.py: DuckDB for a
local store, cast to the table's schema; the pool of 8 on S3). Local folder and an S3 store (moto's
standalone server on 127.0.0.1); the tensors files (~30 rows of float lists) and the models files
(1 row, 40 columns) of the same models.

    python -m bench.read_many 2000 500     # local models, S3 models
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from bench.results import recorded
from bench.store_scale import write_loose_store
from hubscan.pipeline.storage.parquet import Store
from hubscan.pipeline.storage.remote import register
from hubscan.pipeline.storage.schema import TABLES
from hubscan.pipeline.storage.small_files import read_files

Reader = Callable[[pafs.FileSystem, list[str], str, pa.Schema], pa.Table]


def by_dataset(fs: pafs.FileSystem, paths: list[str], scheme: str, schema: pa.Schema) -> pa.Table:
    """What compaction did first: one pyarrow dataset over the list."""
    return ds.dataset(paths, filesystem=fs, format="parquet", schema=schema).to_table()


def by_compaction(fs: pafs.FileSystem, paths: list[str], scheme: str, schema: pa.Schema) -> pa.Table:
    """What compaction does now: DuckDB locally (rows cast to the schema), the pool of 8 on S3."""
    return read_files(fs, paths, schema)


def by_duckdb(fs: pafs.FileSystem, paths: list[str], scheme: str, schema: pa.Schema) -> pa.Table:
    """DuckDB's multithreaded read_parquet over the list (S3 through the store's pyarrow filesystem)."""
    con = duckdb.connect()
    if scheme != "file":
        register(con, fs, scheme)
        paths = [f"{scheme}://{p}" for p in paths]
    return con.sql("SELECT * FROM read_parquet($p)", params={"p": paths}).to_arrow_table()


def by_threads(threads: int) -> Reader:
    """A pool of whole-file reads."""

    def read(fs: pafs.FileSystem, paths: list[str], scheme: str, schema: pa.Schema) -> pa.Table:
        with ThreadPoolExecutor(threads) as pool:
            return pa.concat_tables(pool.map(lambda p: pq.read_table(p, filesystem=fs, schema=schema), paths))

    return read


# threads first: the first reader pays no colder cache than the others (the files were just written)
READERS: dict[str, Reader] = {
    "threads x4": by_threads(4),
    "threads x8": by_threads(8),
    "threads x16": by_threads(16),
    "duckdb read_parquet": by_duckdb,
    "compaction's read_files": by_compaction,
    "pyarrow dataset": by_dataset,
}


def _moto() -> tuple[subprocess.Popen[bytes], str]:
    """moto's S3 server on a free port (as tests/storage/test_s3.py starts it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    os.environ.update({"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "test",
                       "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
                       "AWS_EC2_METADATA_DISABLED": "true"})  # fmt: skip
    while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
        time.sleep(0.2)
    return server, f"http://127.0.0.1:{port}"


def _time(
    reader: Reader, fs: pafs.FileSystem, paths: list[str], scheme: str, schema: pa.Schema
) -> tuple[float, int]:
    t0 = time.perf_counter()
    rows = reader(fs, paths, scheme, schema).num_rows
    return time.perf_counter() - t0, rows


def main(local_n: int, s3_n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "store"
        write_loose_store(root, max(local_n, s3_n))
        server, endpoint = _moto()
        try:
            import boto3

            boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="bench")
            s3 = Store("s3://bench/store")
            print(f"| table | reader | local, {local_n:,} files (s) | S3 (moto), {s3_n:,} files (s) |")
            print("|---|---|---|---|")
            for table in ("tensors", "models"):
                files = sorted(str(p) for p in (root / table).glob("[!_]*.parquet"))
                local = (pafs.LocalFileSystem(), files[:local_n], "file", TABLES[table])
                for path in files[:s3_n]:  # one PUT per file, as a sweep's workers write them
                    with s3.fs.open_output_stream(f"bench/store/{table}/{Path(path).name}") as out:
                        out.write(Path(path).read_bytes())
                keys = [f"bench/store/{table}/{Path(p).name}" for p in files[:s3_n]]
                remote = (s3.fs, keys, "s3", TABLES[table])
                for name, reader in READERS.items():
                    (a, rows_a), (b, rows_b) = _time(reader, *local), _time(reader, *remote)
                    print(
                        f"| {table} | {name} | {a:.2f} ({rows_a:,} rows) | {b:.2f} ({rows_b:,} rows) |",
                        flush=True,
                    )
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    with recorded("Reading many small Parquet files"):
        main(*(int(a) for a in sys.argv[1:3]))
