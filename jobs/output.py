"""Data to stdout as a table, CSV or JSON; the same options for every command."""

from __future__ import annotations

import csv
import json
import math
import sys
from typing import Any

import pyarrow as pa
from rich.console import Console
from rich.table import Table

from pipeline.comparison.scoring import MIN_P

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


def json_safe(value: Any) -> Any:
    """``value`` with infinite and NaN floats as the strings "inf", "-inf", "nan".

    A byte-identical copy scores inf (its p is exactly 0); JSON has no such number, and
    ``Infinity`` is read by Python but refused by strict parsers (jq, JavaScript's JSON.parse).
    """
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    return value


def format_p(value: float | None) -> str:
    """A p- or q-value for people: '< 1e-300' where the double was floored, never a long float."""
    if value is None:
        return ""
    return f"< {MIN_P:.0e}" if value <= MIN_P else f"{value:.2g}"


def is_probability(column: str) -> bool:
    """Columns holding p- or q-values (p, q, <signal>_p), printed through format_p."""
    return column in ("p", "q") or column.endswith("_p")


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
