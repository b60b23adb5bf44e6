"""Unknown architectures: the words a verdict of a pair blocked by tensor layout carries.

A model none of whose tensors the roles table knows has no hidden size to block on, so it is
blocked by its tensor layout (queries/compute_layout_candidate_pairs.sql) and scored on roles-free
signals (queries/compute_layout_scores.sql) that fill the sketch and sorted columns; backgrounds,
the chance prior, the false discovery rate and the verdict rules are those of every other block.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

UNKNOWN = "architecture: unknown"


def with_compared(reason: str, layout: str | None, compared: str | None) -> str:
    """A verdict's reason, followed for an unknown architecture (a pair blocked by ``layout``) by what was compared."""
    if not layout:
        return reason
    return f"{reason} ({compared or UNKNOWN + '; no tensors compared'})"


def match_lines(row: Mapping[str, Any]) -> list[str]:
    """One line per matched matrix (A name <- B name, r, tries), for `hubscan compare`."""
    out = []
    for m in row.get("matches") or []:
        how = "same name" if m["a_name"] == m["b_name"] else f"by shape, best of {m['tries']}"
        out.append(f"  {m['a_name']} <-> {m['b_name']}  (r {m['r']:.4f}; {how})")
    return out
