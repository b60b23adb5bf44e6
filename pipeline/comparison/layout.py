"""Unknown architectures: the comparability block of a pair and the words its verdict carries.

A model none of whose tensors the roles table knows has no hidden size to block on, so it is
blocked by its tensor layout (queries/compute_layout_candidate_pairs.sql) and scored on roles-free
signals (queries/compute_layout_scores.sql) that fill the sketch and sorted columns; backgrounds,
the chance prior, the false discovery rate and the verdict rules are those of every other block.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

UNKNOWN = "architecture: unknown"


def block_key(row: Mapping[str, Any]) -> int | str:
    """The block a candidate pair belongs to: its layout when the architecture is unknown, else its hidden size."""
    layout = row.get("layout")
    return str(layout) if layout else int(row.get("hidden") or 0)


def with_compared(row: Mapping[str, Any], reason: str) -> str:
    """A verdict's reason, followed for an unknown architecture by what was compared."""
    if not row.get("layout"):
        return reason
    return f"{reason} ({row.get('compared') or UNKNOWN + '; no tensors compared'})"


def match_lines(row: Mapping[str, Any]) -> list[str]:
    """One line per matched matrix (A name <- B name, r, tries), for `hubscan compare`."""
    out = []
    for m in row.get("matches") or []:
        how = "same name" if m["a_name"] == m["b_name"] else f"by shape, best of {m['tries']}"
        out.append(f"  {m['a_name']} <-> {m['b_name']}  (r {m['r']:.4f}; {how})")
    return out
