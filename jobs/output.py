"""Data to stdout as a table, CSV or JSON; the same options for every command."""

from __future__ import annotations

import csv
import json
import sys
from typing import Any

import pyarrow as pa
from rich.console import Console
from rich.table import Table

from hubscan.pipeline.outputs.values import format_p, is_probability, json_safe

FORMATS = ("table", "csv", "json")


def emit(table: pa.Table, fmt: str = "table", title: str | None = None) -> None:
    """Print an Arrow table to stdout in the chosen format."""
    rows = table.to_pylist()
    if fmt == "json":
        json.dump(json_safe(rows), sys.stdout, indent=2, default=str, allow_nan=False)
        sys.stdout.write("\n")
    elif fmt == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(table.column_names)
        writer.writerows([[_cell(r[c], c) for c in table.column_names] for r in rows])
    else:
        out = Table(title=title, show_lines=False)
        for name in table.column_names:
            out.add_column(name, overflow="fold")
        for r in rows:
            out.add_row(*[_cell(r[c], c) for c in table.column_names])
        Console(width=200).print(out)


def _cell(value: Any, column: str = "") -> str:
    if value is None:
        return ""
    if isinstance(value, float) and is_probability(column):
        return format_p(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list) and len(value) > 8:
        return f"[{len(value)} values]"
    return str(value)
