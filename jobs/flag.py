"""`hubscan flag`: read the known-unrelated file, then run the flag engine (pipeline/flagging/engine.py)."""

from __future__ import annotations

from pathlib import Path

from hubscan.pipeline.config import Settings
from hubscan.pipeline.flagging import engine
from hubscan.pipeline.flagging.engine import FlagResult


def run(
    settings: Settings,
    q_level: float,
    known_unrelated: Path | None = None,
    runner: str = "auto",
    incremental: bool = False,
) -> FlagResult:
    """Flag the store's pairs, with the pairs of ``known_unrelated`` (a file) in the background.

    Raises:
        QueryError: a shipped query failed (e.g. the folder is not a store).
        StoreError: the store cannot be written, or its marker is not hubscan's.
    """
    unrelated = read_known_unrelated(known_unrelated) if known_unrelated is not None else []
    return engine.run(
        settings, q_level=q_level, known_unrelated=unrelated, runner=runner, incremental=incremental
    )


def read_known_unrelated(path: Path) -> list[frozenset[str]]:
    """Pairs known to be unrelated, one 'repo_a repo_b' per line (# comments allowed)."""
    out = []
    for line in path.read_text().splitlines():
        parts = line.split("#", 1)[0].split()
        if len(parts) == 2:
            out.append(frozenset(parts))
    return out
