"""The per-model unit of a sweep, run as a Ray task: resolve, fingerprint, write to the store.

Workers write their own Parquet files, so fingerprints never travel through the driver; the
task returns a small result for the progress bar and the sweep record. Writes are
idempotent per (repo, revision), so a task Ray retries after a lost worker cannot count a
model twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import ray

from hubscan.pipeline.chain.model_task import KnownFiles, fingerprint_model
from hubscan.pipeline.chain.task_limits import ModelTimeout, as_failure, model_budget
from hubscan.pipeline.config import Settings
from hubscan.pipeline.errors import HubscanError, RevisionMissing
from hubscan.pipeline.http import Budget, HubHttp, RequestLog
from hubscan.pipeline.request_counts import RequestCounts
from hubscan.pipeline.sources import hf
from hubscan.pipeline.sources.refs import ModelRef
from hubscan.pipeline.storage.parquet import Store


@dataclass(frozen=True)
class Candidate:
    """A listed model: a Hub id pinned to the listed sha, or a local ref already resolved."""

    repo_id: str
    revision: str | None = None
    ref: ModelRef | None = None
    gated: bool = False
    refused: HubscanError | None = None  # a listing entry that broke the Hub's shape: recorded, not run


@dataclass
class TaskResult:
    """What the driver needs to know about one model."""

    repo_id: str
    revision: str
    status: str  # done, copy, failed, skipped
    counts: RequestCounts = field(default_factory=RequestCounts)
    message: str = ""
    category: str = ""
    policy: dict[str, tuple[int, int]] = field(default_factory=dict)
    file_hashes: list[str] = field(default_factory=list)  # of a committed model: the driver's owners index


def process(
    candidate: Candidate,
    settings: Settings,
    budget: Budget | None,
    sweep_id: str,
    known: KnownFiles | None,
) -> TaskResult:
    """Fingerprint one candidate into the store; nothing but a TaskResult leaves, whatever the bytes do.

    Every exception (a HubscanError, a decoder's RecursionError, MemoryError under the cap,
    the time budget, a bug) becomes a failures row naming repo, revision and file. ``known``
    answers which weight files are already stored (the sweep's owners actor); None reuses nothing.
    """
    http = HubHttp(settings, log=RequestLog(), budget=budget)
    revision = candidate.revision or "unresolved"
    try:
        store = Store(settings.store).open()
        with model_budget(settings.max_model_seconds, settings.max_model_memory_bytes):
            ref = candidate.ref or _resolve_pinned(http, candidate)
            revision = ref.revision
            # The driver skip-checked the listed revision; only a repo that moved on needs a look-up.
            if ref.revision != candidate.revision and store.has_model(ref.repo_id, ref.revision):
                return _result(ref.repo_id, ref.revision, "skipped", http)
            outcome = fingerprint_model(ref, settings, http, known=known)
            if candidate.ref is not None and any(isinstance(e, RevisionMissing) for e in outcome.errors):
                # Listed with its sha (no model-info call): the repo moved on since; take its current revision.
                ref = hf.resolve(http, candidate.repo_id, "main")
                revision = ref.revision
                if store.has_model(ref.repo_id, ref.revision):
                    return _result(ref.repo_id, ref.revision, "skipped", http)
                outcome = fingerprint_model(ref, settings, http, known=known)
        if outcome.model is None:
            return _failed(settings, candidate.repo_id, revision, outcome.errors, http)
        model = replace(outcome.model, sweep_id=sweep_id)
        # Outside the budget: the time alarm must never interrupt a write half-way.
        store.write_model(model.as_row(), outcome.tensor_rows, outcome.file_rows)
    except (Exception, ModelTimeout) as exc:
        error = as_failure(exc, candidate.repo_id, revision, None)
        return _failed(settings, candidate.repo_id, revision, [error], http)
    result = _result(ref.repo_id, ref.revision, "copy" if model.copy_of else "done", http)
    # the task's own requests (resolving the revision) and the model's
    result.counts += model.counts
    result.file_hashes = sorted({str(f["sha256"]) for f in outcome.file_rows if f.get("sha256")})
    return result


# Ray retries a task whose worker died (default 3 times); application errors are data, not retries.
fingerprint_task = ray.remote(max_retries=3)(process)


def _resolve_pinned(http: HubHttp, candidate: Candidate) -> ModelRef:
    """The listed revision; if the repo moved on since listing, its current revision instead."""
    try:
        return hf.resolve(http, candidate.repo_id, candidate.revision or "main")
    except RevisionMissing:
        return hf.resolve(http, candidate.repo_id, "main")


def _failed(
    settings: Settings, repo_id: str, revision: str, errors: list[HubscanError], http: HubHttp
) -> TaskResult:
    """Record the failures row; if even that write fails (a full disk), the result still says why."""
    note = ""
    try:
        Store(settings.store).open().write_failures(repo_id, revision, errors)
    except Exception as exc:  # the model stays unstored, so the next sweep retries it
        note = f" (failures row not written: {as_failure(exc, repo_id, revision, None).reason})"
    result = _result(repo_id, revision, "failed", http, error=errors[0])
    result.message += note
    return result


def _result(
    repo_id: str, revision: str, status: str, http: HubHttp, error: HubscanError | None = None
) -> TaskResult:
    return TaskResult(
        repo_id=repo_id,
        revision=revision,
        status=status,
        counts=RequestCounts.by_bucket(http.log.requests),
        message=str(error) if error else "",
        category=error.category if error else "",
        policy=dict(http.log.policy),
    )
