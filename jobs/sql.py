"""`hubscan sql`: run a shipped query file or an ad hoc statement over the store's views."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from hubscan.pipeline.config import Settings
from hubscan.pipeline.errors import QueryError, StoreError
from hubscan.pipeline.storage.duckdb import (
    SqlFile,
    SqlValue,
    coerce_param,
    connect,
    load_sql,
    run_sql,
    shipped_sql,
)
from hubscan.pipeline.storage.manifest import COMPACT_TABLES, MANIFEST
from hubscan.pipeline.storage.parquet import Store

# The duckdb CLI's program name: the `duckdb-cli` package (in the demo and test extras) puts it on PATH.
DUCKDB_CLI = "duckdb"
# The SQL files a hubscan connection runs (pipeline/storage/duckdb.py connect), in that order.
SHELL_SQL = ("views", "number_candidates")


def run(settings: Settings, query: str, raw_params: dict[str, str]) -> pa.Table:
    """Result of a query: ``query`` is a queries/ name, a .sql path, or SQL text.

    Raises:
        QueryError: missing/unknown parameters or a failing statement.
    """
    Store(settings.store).init()
    sql = _as_sql(query)
    params: dict[str, SqlValue] = {k: coerce_param(sql, k, v) for k, v in raw_params.items()}
    con = connect(settings.store)
    rel = run_sql(con, sql, params)
    return rel.to_arrow_table() if rel is not None else pa.table({})


def views_path() -> Path:
    """Where views.sql is in this install: the one place the demo and `hubscan sql --views-path` ask."""
    return Path(str(shipped_sql("views")))


@dataclass(frozen=True)
class Shell:
    """The duckdb CLI started on a store: its arguments, and the folder it starts in (the store's)."""

    argv: tuple[str, ...]
    cwd: Path


def shell(settings: Settings) -> Shell:
    """The duckdb CLI on a local store with the views of `hubscan sql` loaded, ready for the user's SQL.

    The CLI starts in the store folder with the store variable unset, so views.sql reads the tables
    relative to it and no path is spliced into SQL; the compacted files are taken from the manifest
    by SQL too, for each table the manifest (checked by Store.manifest) names parts of.

    Raises:
        QueryError: the duckdb CLI is not installed.
        StoreError: the store is not a local folder, or no store is there.
    """
    program = shutil.which(DUCKDB_CLI)
    if program is None:
        raise QueryError(
            None, None, None, "the duckdb CLI is not installed: python -m pip install duckdb-cli"
        )
    store = Store(settings.store)
    if not store.local:
        # the CLI reads s3:// and gs:// through httpfs, an extension it would download at run time
        raise StoreError(None, None, store.uri, "sql --shell opens a local store folder only")
    store.open_existing()
    manifest = store.manifest()
    commands = [_compacted(table) for table in COMPACT_TABLES if manifest.files(table)]
    commands += [f".read '{Path(str(shipped_sql(name)))}'" for name in SHELL_SQL]
    return Shell((program, *(arg for c in commands for arg in ("-cmd", c))), store.root.resolve())


def _compacted(table: str) -> str:
    """The CLI line that points the views at a table's compacted parts, read from the manifest in SQL."""
    # SET VARIABLE takes no parameters in its name; the table names are our own constants
    return f"SET VARIABLE compacted_{table} = (SELECT parts.{table} FROM read_json('{MANIFEST}'))"


def _as_sql(query: str) -> SqlFile:
    looks_like_file = query.endswith(".sql") or shipped_sql(query).is_file()
    if looks_like_file or Path(query).is_file():
        return load_sql(query)
    return SqlFile(name="<command line>", text=query, params={}, defaults={})
