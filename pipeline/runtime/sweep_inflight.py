"""The driver's view of a sweep's running tasks: hard deadlines, and Ray's own failures as rows.

The task enforces its time budget itself (pipeline/chain/task_limits.py); a task stuck inside one C
call never sees that signal, so the driver cancels it with ``ray.cancel(force=True)`` (which
kills its worker process) once a deadline that no honest task can reach has passed. A worker
that died past Ray's retries, a task Ray's memory monitor killed, or one the driver
cancelled, becomes a failures row written by the driver: it never ends the sweep.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Generic, TypeVar

import ray
from ray.exceptions import OutOfMemoryError, RayError, TaskCancelledError

from hubscan.pipeline.config import Settings
from hubscan.pipeline.errors import HubscanError, InternalError, ResourceLimit
from hubscan.pipeline.runtime.sweep_task import Candidate, TaskResult
from hubscan.pipeline.storage.parquet import Store

# How often the driver looks for overdue tasks while it waits for one to finish.
DEADLINE_CHECK_S = 5.0
# Slack past the budget for a task to write its rows and return after its own alarm fired.
DEADLINE_GRACE_S = 60.0

P = TypeVar("P")


@dataclass
class _Task(Generic[P]):
    candidate: Candidate
    page: P
    deadline: float


class InFlight(Generic[P]):
    """Tasks submitted and not yet counted, each with the page it belongs to and a hard deadline."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.tasks: dict[ray.ObjectRef, _Task[P]] = {}
        self.cancelled: set[ray.ObjectRef] = set()
        self.hard_limit_s = _hard_limit(settings)

    def __len__(self) -> int:
        return len(self.tasks)

    def add(self, ref: ray.ObjectRef, candidate: Candidate, page: P) -> None:
        """Track a submitted task."""
        self.tasks[ref] = _Task(candidate, page, time.monotonic() + self.hard_limit_s)

    def finish_one(self) -> list[tuple[ray.ObjectRef, P, TaskResult]]:
        """Wait until at least one task ends (cancelling overdue ones meanwhile); their results."""
        while True:
            check = min(DEADLINE_CHECK_S, self.hard_limit_s / 4)
            ready, _ = ray.wait(list(self.tasks), num_returns=1, timeout=check)
            if ready:
                return [self._collect(ref) for ref in ready]
            self._cancel_overdue()

    def _cancel_overdue(self) -> None:
        now = time.monotonic()
        for ref, task in self.tasks.items():
            if task.deadline < now and ref not in self.cancelled:
                ray.cancel(ref, force=True)
                self.cancelled.add(ref)

    def _collect(self, ref: ray.ObjectRef) -> tuple[ray.ObjectRef, P, TaskResult]:
        task = self.tasks.pop(ref)
        try:
            return ref, task.page, ray.get(ref)
        except RayError as exc:
            error = self._ray_failure(ref, task.candidate, exc)
        self.cancelled.discard(ref)
        revision = error.revision or "unresolved"
        repo_id = error.repo_id or task.candidate.repo_id
        try:
            self.store.write_failures(repo_id, revision, [error])
        except OSError as exc:  # a full disk: the model stays unstored and the next sweep retries it
            error.reason += f" (failures row not written: {exc})"
        result = TaskResult(repo_id, revision, "failed", message=str(error), category=error.category)
        return ref, task.page, result

    def _ray_failure(self, ref: ray.ObjectRef, c: Candidate, exc: RayError) -> HubscanError:
        revision = c.ref.revision if c.ref else c.revision
        if ref in self.cancelled or isinstance(exc, TaskCancelledError):
            reason = f"killed after {self.hard_limit_s:g} s: stuck past the per-model time budget"
            return ResourceLimit(c.repo_id, revision, None, reason)
        if isinstance(exc, OutOfMemoryError):
            return ResourceLimit(
                c.repo_id, revision, None, "killed by Ray's memory monitor (node out of memory)"
            )
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return InternalError(c.repo_id, revision, None, f"{type(exc).__name__}: {first}")


def _hard_limit(settings: Settings) -> float:
    """Seconds from submission after which a task can only be stuck.

    Tasks queue behind at most ``max_in_flight`` others, which run ``slots`` at a time, each
    stopped by its own budget: ceil(in_flight / slots) rounds of waiting plus its own run.
    """
    cpus = float(ray.cluster_resources().get("CPU", 1.0)) if ray.is_initialized() else 1.0
    slots = max(1, int(cpus / max(settings.task_cpus, 1e-6)))
    rounds = math.ceil(settings.max_in_flight / slots) + 1
    return rounds * settings.max_model_seconds + DEADLINE_GRACE_S
