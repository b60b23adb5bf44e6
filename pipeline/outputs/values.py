"""Values as people read them: p-values never as long floats, infinities in JSON as strings."""

from __future__ import annotations

import math
from typing import Any

from hubscan.pipeline.comparison.scoring import MIN_P


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
