"""The owners of stored weight files, loaded once per run: in-process for `hubscan fingerprint` and
`compare`, in one Ray actor that a sweep's tasks ask.

A sweep task learns its files' content hashes only after resolving the revision, so the driver cannot hand
it the owners up front; asking the actor costs one message, where opening the store's `files` table
costs a scan of every per-model file.
"""

from __future__ import annotations

from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from hubscan.pipeline.fingerprints.tensor import TensorFingerprint
from hubscan.pipeline.keys import ModelKey
from hubscan.pipeline.storage.index import load_owners, pick
from hubscan.pipeline.storage.parquet import Store


class StoreKnownFiles:
    """The `pipeline.chain.model_task.KnownFiles` protocol in one process: owners loaded on first use, once per run."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.known: dict[str, ModelKey] | None = None

    def owners(self, hashes: list[str]) -> dict[str, ModelKey]:
        """sha256 → (repo_id, revision) for hashes already fingerprinted."""
        if self.known is None:
            self.known = load_owners(self.store)
        return pick(self.known, hashes)

    def rows(self, repo_id: str, revision: str, sha256: str) -> list[TensorFingerprint]:
        """Stored fingerprints of that file in its owner (one model's files, not a table scan)."""
        return list(self.store.rows(repo_id, revision, sha256))

    def add(self, owner: ModelKey, hashes: list[str]) -> None:
        """A model committed in this run: its files are owned by it unless an earlier model owns them."""
        if self.known is not None:
            for h in hashes:
                self.known.setdefault(h, owner)


# An owners answer slower than this is skipped: the task reads its files itself instead.
ACTOR_TIMEOUT_S = 30.0


# A worker killed under it (OOM killer, a lost process) restarts it, reloaded from the store:
# without a restart every later task of the sweep would fail on its dead handle (found by bench.soak).
@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class OwnersActor:
    """sha256 → owning (repo_id, revision): loaded from the store once, extended as models commit."""

    def __init__(self, store_uri: str) -> None:
        self.owners = load_owners(Store(store_uri))

    def owners_of(self, hashes: list[str]) -> dict[str, ModelKey]:
        """The owners of just these hashes."""
        return pick(self.owners, hashes)

    def add(self, owner: ModelKey, hashes: list[str]) -> None:
        """A model committed: its files are owned by it unless an earlier model owns them."""
        for h in hashes:
            self.owners.setdefault(h, owner)

    def size(self) -> int:
        """Hashes known (for tests and progress)."""
        return len(self.owners)


class RayKnownFiles:
    """The `pipeline.chain.model_task.KnownFiles` protocol over an OwnersActor (picklable, so tasks get it)."""

    def __init__(self, actor: ray.actor.ActorHandle, store_uri: str) -> None:
        self.actor = actor
        self.store_uri = store_uri

    def owners(self, hashes: list[str]) -> dict[str, ModelKey]:
        """sha256 → (repo_id, revision) for hashes already fingerprinted.

        While the actor restarts, none are known: the task reads its files (more bytes, never a failure).
        """
        try:
            return dict(ray.get(self.actor.owners_of.remote(hashes), timeout=ACTOR_TIMEOUT_S))
        except (
            ray.exceptions.RayActorError,
            ray.exceptions.ActorUnavailableError,
            ray.exceptions.GetTimeoutError,
        ):
            return {}

    def rows(self, repo_id: str, revision: str, sha256: str) -> list[TensorFingerprint]:
        """Stored fingerprints of that file in its owner (one model's files, not a table scan)."""
        return list(Store(self.store_uri).rows(repo_id, revision, sha256))

    def add(self, owner: ModelKey, hashes: list[str]) -> None:
        """Record a committed model's files (fire and forget: the driver calls it in result order)."""
        self.actor.add.remote(owner, hashes)


def start_known_files(store: Store, runtime_env: dict[str, Any] | None) -> RayKnownFiles:
    """An OwnersActor on the driver's node (it lives as long as the sweep), loaded from the store."""
    here = ray.get_runtime_context().get_node_id()
    actor = OwnersActor.options(  # type: ignore[attr-defined]
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=here, soft=True), runtime_env=runtime_env
    ).remote(store.uri)
    return RayKnownFiles(actor, store.uri)
