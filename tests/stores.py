"""Stores the tests share: testbed repos fingerprinted into a fresh store, and object-storage servers' plumbing."""

import csv
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from hubscan.jobs import fingerprint
from hubscan.jobs.cli import app
from hubscan.pipeline.config import Settings


def fingerprinted_store(testbed: Path, repos, tmp_path_factory, name: str) -> Path:
    """A store of ``repos`` from the testbed; skips when this testbed lacks one of them."""
    missing = [r for r in repos if not (testbed / r).is_dir()]
    if missing:
        pytest.skip(f"not in this testbed: {missing}")
    root = tmp_path_factory.mktemp(name) / "store"
    summary = fingerprint.run(Settings(store=root), [str(testbed / r) for r in repos])
    assert summary.failed == 0, summary.messages
    return root


def corrupt_column(part: Path, column: str) -> None:
    """Overwrite the first page header of ``column`` (a list column: its element) in a Parquet file."""
    meta = pq.ParquetFile(part).metadata
    leaf = next(i for i in range(meta.num_columns) if meta.schema.column(i).path.split(".")[0] == column)
    chunk = meta.row_group(0).column(leaf)
    start = chunk.dictionary_page_offset or chunk.data_page_offset
    with part.open("r+b") as f:
        f.seek(start)
        f.write(b"\xff" * 32)


def pair_row(rows, a: str, b: str) -> dict:
    """The one scored row of the pair {a, b} among a flag run's rows (either order)."""
    found = [r for r in rows if {r["a_repo_id"], r["b_repo_id"]} == {a, b}]
    assert len(found) == 1, f"{a} / {b}: {len(found)} rows"
    return found[0]


def cli_sql(store: str, query: str) -> list[dict[str, str]]:
    """Rows of `hubscan sql QUERY --format csv` on a store, as the CLI prints them (strings)."""
    result = CliRunner().invoke(app, ["sql", query, "--store", store, "--format", "csv"])
    assert result.exit_code == 0, result.output
    return list(csv.DictReader(result.stdout.splitlines()))


def free_port() -> int:
    """A port nothing listens on now (for a server the test session starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, server: subprocess.Popen, seconds: float) -> None:
    """Return once the server accepts connections; fail if it exits or takes longer."""
    deadline = time.monotonic() + seconds
    while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
        assert time.monotonic() < deadline and server.poll() is None, f"server on {port} did not start"
        time.sleep(0.2)


@contextmanager
def environment(env: dict[str, str | None]) -> Iterator[None]:
    """These variables set (a None value unsets one) while the block runs, restored afterwards."""
    saved = {k: os.environ.get(k) for k in env}
    try:
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        yield
    finally:
        for k, old in saved.items():
            if old is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = old
