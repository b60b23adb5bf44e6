"""What a sweep needs to know about the store, loaded once: stored models, failures, file owners.

Looking these up per listed model (a HEAD per model, a scan of every files/*.parquet per model) grows
with the store, so a hub-wide sweep grows quadratically. The driver loads them in one scan per table
and keeps them current as results arrive.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from hubscan.pipeline.keys import ModelKey
from hubscan.pipeline.storage.parquet import Store


@dataclass
class StoreIndex:
    """Committed model keys and recorded failure categories of a store."""

    models: set[ModelKey] = field(default_factory=set)
    failures: dict[ModelKey, set[str]] = field(default_factory=dict)

    @classmethod
    def load(cls, store: Store) -> StoreIndex:
        """One scan of the models and failures tables."""
        index = cls(models=set(_rows(store, "models", "repo_id", "revision")))
        for repo_id, revision, category in _rows(store, "failures", "repo_id", "revision", "category"):
            index.failures.setdefault((repo_id, revision), set()).add(category)
        return index

    def has_model(self, repo_id: str, revision: str) -> bool:
        """True when this revision is committed in the store."""
        return (repo_id, revision) in self.models

    def failure_categories(self, repo_id: str, revision: str) -> set[str]:
        """Categories of the failures recorded for one revision (empty when none)."""
        return self.failures.get((repo_id, revision), set())

    def add_model(self, repo_id: str, revision: str) -> None:
        """A model was committed: a committed model has no failures (its writer cleared them)."""
        self.models.add((repo_id, revision))
        self.failures.pop((repo_id, revision), None)

    def add_failure(self, repo_id: str, revision: str, category: str) -> None:
        """A model failed: its failures file was replaced by this attempt's."""
        self.failures[(repo_id, revision)] = {category}


def load_owners(store: Store) -> dict[str, ModelKey]:
    """sha256 → (repo_id, revision) of a committed model, for every stored weight file (one scan)."""
    committed = StoreIndex.load(store).models
    owners: dict[str, ModelKey] = {}
    for sha, repo_id, revision in _rows(store, "files", "sha256", "repo_id", "revision"):
        if sha and sha not in owners and (repo_id, revision) in committed:
            owners[sha] = (repo_id, revision)
    return owners


def pick(owners: dict[str, ModelKey], hashes: Iterable[str]) -> dict[str, ModelKey]:
    """The owners of just these hashes."""
    return {h: owners[h] for h in hashes if h in owners}


def _rows(store: Store, table: str, *columns: str) -> Iterator[tuple[Any, ...]]:
    """Tuples of a few columns of a whole table (column-wise reads: no per-row dicts)."""
    data = store.dataset(table).to_table(columns=list(columns))
    return zip(*(data.column(c).to_pylist() for c in columns), strict=True)
