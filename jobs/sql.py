"""`hubscan sql`: run a shipped query file or an ad hoc statement over the store's views."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from pipeline.config import Settings
from pipeline.storage.duckdb import SqlFile, coerce_param, connect, load_sql, run_sql, shipped_sql
from pipeline.storage.parquet import Store


def run(settings: Settings, query: str, raw_params: dict[str, str]) -> pa.Table:
    """Result of a query: ``query`` is a queries/ name, a .sql path, or SQL text.

    Raises:
        QueryError: missing/unknown parameters or a failing statement.
    """
    Store(settings.store).init()
    sql = _as_sql(query)
    params: dict[str, Any] = {k: coerce_param(sql, k, v) for k, v in raw_params.items()}
    con = connect(settings.store)
    rel = run_sql(con, sql, params)
    return rel.to_arrow_table() if rel is not None else pa.table({})


def views_path() -> Path:
    """Where views.sql is in this install: the one place the demo and `hubscan sql --views-path` ask."""
    return Path(str(shipped_sql("views")))


def _as_sql(query: str) -> SqlFile:
    looks_like_file = query.endswith(".sql") or shipped_sql(query).is_file()
    if looks_like_file or Path(query).is_file():
        return load_sql(query)
    return SqlFile(name="<command line>", text=query, params={}, defaults={})
