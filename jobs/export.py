"""`hubscan export`: the suspicious pairs of the last flag run, with provenance, as CSV, JSON or Parquet."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from hubscan.pipeline import __version__
from hubscan.pipeline.config import Settings
from hubscan.pipeline.errors import StoreError
from hubscan.pipeline.outputs.families import family_of, load_families
from hubscan.pipeline.outputs.values import json_safe
from hubscan.pipeline.storage.duckdb import connect, load_sql, run_sql, scored_pair_keys, use_candidates
from hubscan.pipeline.storage.parquet import Store, write_table

EXPORT_FORMATS = ("csv", "json", "parquet")


def run(
    settings: Settings,
    fmt: str,
    output: Path,
    include_all: bool = False,
    undeclared_only: bool = False,
    min_score: float = 0.0,
) -> int:
    """Write the export to ``output``; returns the number of pairs written.

    Raises:
        StoreError: the store has no scored pairs (run `hubscan flag` first).
        QueryError: the query failed.
    """
    store = Store(settings.store).init()
    con = connect(store)
    keys = scored_pair_keys(con)
    if not keys:
        raise StoreError(None, None, store.uri, "no scored pairs: run `hubscan flag` first")
    # Export what the last flag run scored: the default candidates view would list every same-size pair.
    use_candidates(con, keys)
    params = {"include_all": include_all, "undeclared_only": undeclared_only, "min_score": float(min_score)}
    rel = run_sql(con, load_sql("export_suspicious_pairs"), params)
    assert rel is not None
    table = _with_families(rel.to_arrow_table(), family_of(load_families(con)))
    table = _with_provenance(table, str(settings.store), _sweep_ids(store))
    _write(table, fmt, output)
    return table.num_rows


def _with_families(table: pa.Table, families: dict[str, int]) -> pa.Table:
    """A family column (queries/families.sql number; null for unflagged pairs) after the pair key."""
    column = pa.array([families.get(a) if flagged else None for a, flagged in
                       zip(table.column("a_repo_id").to_pylist(), table.column("flagged").to_pylist(), strict=True)],
                      pa.int64())  # fmt: skip
    return table.add_column(
        table.schema.get_field_index("b_revision") + 1, pa.field("family", pa.int64()), column
    )


def _with_provenance(table: pa.Table, store: str, sweep_ids: str) -> pa.Table:
    """Append who/what/when columns, so an exported file stands on its own."""
    n = table.num_rows
    now = datetime.now(UTC)
    extra = {
        "store": pa.array([store] * n, pa.string()),
        "sweep_ids": pa.array([sweep_ids] * n, pa.string()),
        "hubscan_version": pa.array([__version__] * n, pa.string()),
        "exported_at": pa.array([now] * n, pa.timestamp("us", tz="UTC")),
    }
    for name, column in extra.items():
        table = table.append_column(name, column)
    return table


def _sweep_ids(store: Store) -> str:
    """The sweeps that fingerprinted the store's models, comma-separated (empty for local runs)."""
    ids = store.dataset("models").to_table(columns=["sweep_id"]).column("sweep_id")
    return ",".join(sorted(set(pc.drop_null(ids).to_pylist())))


def _write(table: pa.Table, fmt: str, output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        write_table(output, table)
        return
    rows = table.to_pylist()
    tmp = output.with_name(f".{output.name}.tmp")
    with tmp.open("w", newline="") as fh:
        if fmt == "json":
            json.dump(json_safe(rows), fh, indent=2, default=str, allow_nan=False)
            fh.write("\n")
        else:
            writer = csv.writer(fh)
            writer.writerow(table.column_names)
            writer.writerows([[_cell(r[c]) for c in table.column_names] for r in rows])
    tmp.replace(output)


def _cell(value: Any) -> Any:
    """CSV cells: lists and structs (the layer map) as JSON, everything else as is."""
    if isinstance(value, list | dict):
        return json.dumps(value, default=str)
    return "" if value is None else value
