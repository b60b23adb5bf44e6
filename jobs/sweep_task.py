"""The per-model unit of a sweep, run as a Ray task: resolve, fingerprint, write to the store.

Workers write their own Parquet files, so fingerprints never travel through the driver; the
task returns a small result for the progress bar and the sweep record. Writes are
idempotent per (repo, revision), so a task Ray retries after a lost worker cannot count a
model twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import ray

from jobs.model_task import KnownFiles, fingerprint_model
from pipeline.config import Settings
from pipeline.errors import HubscanError, RevisionMissing
from pipeline.http import Budget, HubHttp, RequestLog
from pipeline.sources import hf
from pipeline.sources.refs import ModelRef
from pipeline.storage.parquet import Store


@dataclass(frozen=True)
class Candidate:
    """A listed model: a Hub id pinned to the listed sha, or a local ref already resolved."""

    repo_id: str
    revision: str | None = None
    ref: ModelRef | None = None
    gated: bool = False


@dataclass
class TaskResult:
    """What the driver needs to know about one model."""

    repo_id: str
    revision: str
    status: str  # done, copy, failed, skipped
    bytes_read: int = 0
    requests: int = 0
    api_requests: int = 0
    resolver_requests: int = 0
    cdn_requests: int = 0
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
    """Fingerprint one candidate into the store; a HubscanError becomes a failures row.

    ``known`` answers which weight files are already stored (the sweep's owners actor); None reuses nothing.
    """
    store = Store(settings.store).init()
    http = HubHttp(settings, log=RequestLog(), budget=budget)
    revision = candidate.revision or "unresolved"
    try:
        ref = candidate.ref or _resolve_pinned(http, candidate)
    except HubscanError as exc:
        store.write_failures(candidate.repo_id, revision, [exc])
        return _result(candidate.repo_id, revision, "failed", http, error=exc)
    # The driver skip-checked the listed revision; only a repo that moved on since listing needs a look-up.
    if ref.revision != candidate.revision and store.has_model(ref.repo_id, ref.revision):
        return _result(ref.repo_id, ref.revision, "skipped", http)
    outcome = fingerprint_model(ref, settings, http, known=known)
    if candidate.ref is not None and any(isinstance(e, RevisionMissing) for e in outcome.errors):
        # The repo moved on since it was listed: fingerprint its current revision instead.
        try:
            ref = hf.resolve(http, candidate.repo_id, "main")
        except HubscanError as exc:
            store.write_failures(candidate.repo_id, revision, [exc])
            return _result(candidate.repo_id, revision, "failed", http, error=exc)
        if store.has_model(ref.repo_id, ref.revision):
            return _result(ref.repo_id, ref.revision, "skipped", http)
        outcome = fingerprint_model(ref, settings, http, known=known)
    if not outcome.ok or outcome.model_row is None:
        store.write_failures(ref.repo_id, ref.revision, outcome.errors)
        return _result(ref.repo_id, ref.revision, "failed", http, error=outcome.errors[0])
    outcome.model_row["sweep_id"] = sweep_id
    store.write_model(outcome.model_row, outcome.tensor_rows, outcome.file_rows)
    row = outcome.model_row
    result = _result(ref.repo_id, ref.revision, "copy" if row["copy_of"] else "done", http)
    result.bytes_read = int(row["bytes_read"])
    result.requests += int(row["requests"])
    result.api_requests += int(row["api_requests"])
    result.resolver_requests += int(row["resolver_requests"])
    result.cdn_requests += int(row["cdn_requests"])
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


def _result(
    repo_id: str, revision: str, status: str, http: HubHttp, error: HubscanError | None = None
) -> TaskResult:
    return TaskResult(
        repo_id=repo_id,
        revision=revision,
        status=status,
        requests=sum(http.log.requests.values()),
        api_requests=http.log.requests["api"],
        resolver_requests=http.log.requests["resolvers"],
        cdn_requests=http.log.requests["cdn"],
        message=str(error) if error else "",
        category=error.category if error else "",
        policy=dict(http.log.policy),
    )
