"""A candidate pair: two model revisions to score, the comparability block they share, and why they were chosen.

The candidate queries (compute_*candidate_pairs.sql) return these columns; pipeline/storage/duckdb.py turns
their rows into records once, and every later step (homes, the signal SQL, Ray tasks, scoring, the maps)
passes the records on. ``candidate_table`` is the way back: the `candidates` view the SQL files read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from hubscan.pipeline.keys import ModelKey, PairKey

# The columns of the `candidates` view every compute_*.sql file joins to (a pair's keys, its block, how chosen).
CANDIDATES_SCHEMA = pa.schema(
    [("a_repo_id", pa.string()), ("a_revision", pa.string()), ("b_repo_id", pa.string()),
     ("b_revision", pa.string()), ("hidden", pa.int64()), ("via", pa.string())]
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class CandidatePair:
    """Two model revisions in one comparability block, a before b in key order."""

    a_repo_id: str
    a_revision: str
    b_repo_id: str
    b_revision: str
    hidden: int | None = None  # the block: a hidden size, or None for an unknown architecture
    via: str | None = None  # how it was proposed: exhaustive, lsh, background, copy_of, requested, ...
    layout: str | None = None  # unknown architecture: the block is its matrices' shapes
    # every pair of the block: flags control the false discovery rate over all of them
    block_pairs: int | None = None

    @classmethod
    def of(cls, key: PairKey, hidden: int | None, via: str, layout: str | None = None) -> CandidatePair:
        """A pair named by its key (a copy link, a requested pair) rather than by a candidate query."""
        return cls(key[0], key[1], key[2], key[3], hidden, via, layout)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> CandidatePair:
        """One row of a candidate query as a record (`from_columns`)."""
        return cls.from_columns({column: [value] for column, value in row.items()})[0]

    @classmethod
    def from_columns(cls, columns: Mapping[str, Sequence[Any]]) -> list[CandidatePair]:
        """A candidate query's rows, column by column, as records: the one place their columns are read.

        Each distinct name (repo, revision, via, layout) is one string object shared by every pair that
        holds it, so a pair is its 96-byte record: with a string per pair and column, a 100k-model hub's
        458,837 candidates were 588 bytes each (270 MB; 2.7 GB at 1M models), and a dict per row on the
        way held them all once more.
        """
        rows = len(columns["a_repo_id"])
        names: dict[str | None, str | None] = {}

        def shared(column: str) -> list[Any]:
            return [names.setdefault(v, v) for v in columns.get(column) or [None] * rows]

        def plain(column: str) -> Sequence[Any]:
            return columns.get(column) or [None] * rows

        return [
            cls(*row)
            for row in zip(
                shared("a_repo_id"), shared("a_revision"), shared("b_repo_id"), shared("b_revision"),
                plain("hidden"), shared("via"), shared("layout"), plain("block_pairs"),
                strict=True,
            )
        ]  # fmt: skip

    @property
    def key(self) -> PairKey:
        """(a_repo_id, a_revision, b_repo_id, b_revision)."""
        return (self.a_repo_id, self.a_revision, self.b_repo_id, self.b_revision)

    @property
    def a(self) -> ModelKey:
        """Model a's (repo_id, revision)."""
        return (self.a_repo_id, self.a_revision)

    @property
    def b(self) -> ModelKey:
        """Model b's (repo_id, revision)."""
        return (self.b_repo_id, self.b_revision)

    @property
    def block(self) -> int | str:
        """The block the pair belongs to (`block_of`)."""
        return block_of(self.hidden, self.layout)


def block_of(hidden: int | None, layout: str | None) -> int | str:
    """A comparability block: the layout when the architecture is unknown, else the hidden size."""
    return str(layout) if layout else int(hidden or 0)


def candidate_table(pairs: Iterable[CandidatePair]) -> pa.Table:
    """The pairs as the `candidates` view's Arrow table."""
    listed = list(pairs)
    columns = [[getattr(p, f.name) for p in listed] for f in CANDIDATES_SCHEMA]
    return pa.Table.from_arrays([pa.array(c, f.type) for c, f in zip(columns, CANDIDATES_SCHEMA, strict=True)],
                                schema=CANDIDATES_SCHEMA)  # fmt: skip
