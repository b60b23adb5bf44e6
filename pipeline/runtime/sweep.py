"""`hubscan sweep`: enumerate a source, fingerprint every new model revision as Ray tasks, resumably.

Ray does the scheduling, retries and fault tolerance; the driver only lists, skips what the
store already has, keeps at most ``max_in_flight`` tasks outstanding (backpressure, so a
100k-model listing never piles up in memory), and persists the listing cursor once every
model of a page is finished, so a stopped sweep resumes where it was.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ray

from hubscan.pipeline import __version__
from hubscan.pipeline.bounded_json import JsonLimit, loads_bounded
from hubscan.pipeline.chain.known_files import RayKnownFiles, start_known_files
from hubscan.pipeline.config import HUB_QUOTA_TIERS, QUOTA_WINDOW_S, Settings
from hubscan.pipeline.errors import (
    BadListing,
    HubscanError,
    RepoGated,
    SourceError,
    StoreError,
    one_line,
    permanent_categories,
)
from hubscan.pipeline.http import HubHttp
from hubscan.pipeline.names import BadName, check_commit, check_repo_id
from hubscan.pipeline.request_counts import RequestCounts
from hubscan.pipeline.runtime.budget import start_budget
from hubscan.pipeline.runtime.ray_session import ray_init
from hubscan.pipeline.runtime.sweep_inflight import InFlight
from hubscan.pipeline.runtime.sweep_progress import SweepProgress
from hubscan.pipeline.runtime.sweep_state import ListingFilters, Projection, SweepState
from hubscan.pipeline.runtime.sweep_task import Candidate, TaskResult, fingerprint_task
from hubscan.pipeline.sources import hf
from hubscan.pipeline.sources.hf_cache import cached_models
from hubscan.pipeline.sources.listing_pages import followable
from hubscan.pipeline.sources.local import local_models
from hubscan.pipeline.storage.compact import compact
from hubscan.pipeline.storage.file_names import check_sweep_id
from hubscan.pipeline.storage.index import StoreIndex
from hubscan.pipeline.storage.lock import sweep_lock
from hubscan.pipeline.storage.parquet import Store
from hubscan.pipeline.storage.remote import storage_env
from hubscan.pipeline.storage.sweep_record import SweepRecord
from hubscan.pipeline.summary import RunSummary

# Failures that the same bytes will always reproduce: a sweep does not fetch such a revision again.
PERMANENT_FAILURES = permanent_categories()
# A saved cursor is one next-page URL and a count, well under a kilobyte; the Hub's longest
# next links (every filter repeated) stay far below this.
MAX_CURSOR_BYTES = 1 << 20
# What a user does about a cursor hubscan cannot use: the sweep lists again, skipping what is stored.
RESTART = "remove it to list from the start"


@dataclass
class _Page:
    """Tasks of one listing page; its next-URL is persisted once all are finished."""

    next_url: str | None
    outstanding: set[ray.ObjectRef] = field(default_factory=set)
    listed_all: bool = False


def run(
    settings: Settings,
    source: str = "hub",
    filters: ListingFilters | None = None,
    sweep_id: str | None = None,
    plan_only: bool = False,
) -> RunSummary:
    """Sweep a source into the store ("hub", "local:PATH" or "cache:PATH").

    Raises:
        SourceError: the listing could not be had.
        StoreLocked: another sweep is running on the same (local) store.
        StoreError: the sweep id is not a plain file name.
    """
    if sweep_id is not None:
        check_sweep_id(str(settings.store), sweep_id)
    store = Store(settings.store).init()
    state = SweepState(sweep_id or _new_id(), source, filters or ListingFilters())
    exclusive = store.local and not plan_only
    with sweep_lock(store.root, f"sweep {state.sweep_id}") if exclusive else nullcontext():
        return _run(store, settings, state, plan_only)


def _run(store: Store, settings: Settings, state: SweepState, plan_only: bool) -> RunSummary:
    cursor = _load_cursor(store, settings, state)
    progress = SweepProgress(state, total=state.filters.limit)
    _save_record(store, state, settings, "running")
    try:
        with progress:
            if plan_only:
                _plan(store, settings, state, cursor, progress)
            else:
                _sweep(store, settings, state, cursor, progress)
    except HubscanError:
        _save_record(store, state, settings, "failed")  # the listing ended it: not left "running"
        raise
    except KeyboardInterrupt:
        _save_record(store, state, settings, "interrupted")
        print(f"interrupted: re-run with --sweep-id {state.sweep_id} to resume", file=sys.stderr)
        raise
    _save_record(store, state, settings, "done")
    progress.summary(_projection(state, settings))
    return RunSummary(
        done=state.done,
        failed=state.failed,
        skipped=state.skipped,
        bytes_read=state.counts.bytes_read,
        requests=state.counts.requests,
        messages=state.failures,
    )


def _sweep(
    store: Store, settings: Settings, state: SweepState, cursor: str | None, progress: SweepProgress
) -> None:
    ray_init(settings)
    quotas = {"api": settings.quota_api, "resolvers": settings.quota_resolvers}
    budget = start_budget(quotas, settings.quota_window_s)
    task = fingerprint_task.options(num_cpus=settings.task_cpus, runtime_env=_worker_env(store))
    index = StoreIndex.load(store)
    compacted_at = [state.done]
    known = start_known_files(store, _worker_env(store)) if settings.reuse_known_files else None
    pages: deque[_Page] = deque()
    running: InFlight[_Page] = InFlight(settings, store)

    def finish() -> None:
        for ref, page, result in running.finish_one():
            page.outstanding.discard(ref)
            state.add(result)
            _remember(index, known, result)
            progress.update()
        if state.done - compacted_at[0] >= settings.compact_every:
            compact(store)  # blocks dispatch for a moment; keeps the loose file count bounded
            compacted_at[0] = state.done
        _advance_cursor(store, state, pages)

    try:
        for page_next, candidates in _candidates(settings, state, cursor):
            page = _Page(page_next)
            pages.append(page)
            for candidate in candidates:
                state.listed += 1
                if _skip_or_refuse(store, index, settings, state, candidate):
                    progress.update()
                    continue
                ref = task.remote(candidate, settings, budget, state.sweep_id, known)
                page.outstanding.add(ref)
                running.add(ref, candidate, page)
                if len(running) >= settings.max_in_flight:
                    finish()
            page.listed_all = True
            _advance_cursor(store, state, pages)
    except HubscanError:
        # A listing that fails part-way (a refused link, a quota) still lets every model already
        # handed out finish and commit; the listing's error then ends the sweep in one line.
        while running:
            finish()
        raise
    while running:
        finish()
    compact(store)


def _plan(
    store: Store, settings: Settings, state: SweepState, cursor: str | None, progress: SweepProgress
) -> None:
    """List and count what a sweep would fingerprint, without fetching a byte of weights."""
    index = StoreIndex.load(store)
    for _, candidates in _candidates(settings, state, cursor):
        for candidate in candidates:
            state.listed += 1
            revision = candidate.ref.revision if candidate.ref else candidate.revision
            if revision and index.has_model(candidate.repo_id, revision):
                state.skipped += 1
            else:
                state.planned += 1
            progress.update()


def _skip_or_refuse(
    store: Store, index: StoreIndex, settings: Settings, state: SweepState, c: Candidate
) -> bool:
    """True when the candidate needs no task: stored, failing for good, or gated and we have no token."""
    revision = c.ref.revision if c.ref else c.revision
    if revision and index.has_model(c.repo_id, revision):
        state.skipped += 1
        return True
    if revision and index.failure_categories(c.repo_id, revision) & PERMANENT_FAILURES:
        state.skipped += 1  # a new revision is tried again; this one would fail the same way
        return True
    if c.refused is not None:
        _record(store, index, state, c.refused)
        return True
    if c.gated and not settings.token:
        # Without a token every file request would answer 401: record it without spending requests.
        _record(
            store,
            index,
            state,
            RepoGated(c.repo_id, revision, None, "gated repo: pass HF_TOKEN with access to fingerprint it"),
        )
        return True
    return False


def _record(store: Store, index: StoreIndex, state: SweepState, error: HubscanError) -> None:
    """A failures row written by the driver, for a model no task is spent on."""
    repo_id, revision = error.repo_id or "<listing>", error.revision or "unresolved"
    store.write_failures(repo_id, revision, [error])
    index.add_failure(repo_id, revision, error.category)
    state.failed += 1
    state.failed_by[error.category] += 1
    state.failures.append(str(error))


def _candidates(
    settings: Settings, state: SweepState, cursor: str | None
) -> Iterator[tuple[str | None, list[Candidate]]]:
    """(next-page URL, candidates) per listing page; local sources come as one page."""
    limit = state.filters.limit
    if state.source.startswith(("local:", "cache:")):
        kind, _, path = state.source.partition(":")
        refs = local_models(_path(path)) if kind == "local" else cached_models(_path(path))
        yield None, [Candidate(r.repo_id, r.revision, r) for r in _take(refs, limit)]
        return
    if state.source != "hub":
        raise SourceError(state.source, None, None, "unknown source: use hub, local:PATH or cache:PATH")
    http = HubHttp(settings)
    seen = position = 0  # models taken; entries read (what names an entry without an id)
    for entries, next_url in hf.list_pages(http, state.filters.params(), start_url=cursor):
        batch = []
        for entry in entries:
            position += 1
            candidate = _candidate(entry, position)
            if candidate.repo_id.split("/")[0] in state.filters.exclude_authors:
                continue
            if limit is not None and seen >= limit:
                break
            seen += 1
            batch.append(candidate)
        state.counts += RequestCounts(requests=1, api_requests=1)
        yield (None if limit is not None and seen >= limit else next_url), batch
        if limit is not None and seen >= limit:
            return


def _candidate(entry: object, number: int) -> Candidate:
    """The ``number``-th listing entry of this run as a candidate; one that breaks the Hub's shape is a refused candidate (a
    failures row), never a KeyError that ends the sweep."""
    try:
        if not isinstance(entry, dict):
            raise BadName(f"listing entry is a {type(entry).__name__}, not an object")
        if entry.get("id") is None:
            raise BadName("listing entry has no id")
        repo_id = check_repo_id(entry.get("id"))
    except BadName as exc:
        # No id to file it under: the entry's place in the listing names it.
        where = f"<listing entry {number}>"
        return Candidate(where, refused=BadListing(where, None, None, str(exc)))
    sha = entry.get("sha")
    gated = entry.get("gated") not in (None, False, "false")
    try:
        if sha is not None:
            check_commit(sha)
        # An expanded entry is a whole ModelRef; file sizes and hashes come from each file's resolve.
        ref = hf.model_ref_from_info(entry) if sha and "siblings" in entry else None
    except BadName as exc:
        return Candidate(repo_id, refused=BadListing(repo_id, None, None, str(exc)))
    except HubscanError as exc:
        return Candidate(repo_id, refused=exc)
    return Candidate(repo_id, sha, ref=ref, gated=gated)


def _advance_cursor(store: Store, state: SweepState, pages: deque[_Page]) -> None:
    """Persist the listing position past every page whose models are all finished."""
    moved = False
    while pages and pages[0].listed_all and not pages[0].outstanding:
        page = pages.popleft()
        moved = True
        cursor = {"next_url": page.next_url, "listed": state.listed}
    if moved:
        path = f"sweeps/{state.sweep_id}.cursor.json"
        _bookkeeping(path, lambda: store.write_bytes(path, json.dumps(cursor).encode()))


def _load_cursor(store: Store, settings: Settings, state: SweepState) -> str | None:
    """The next-page URL a stopped sweep saved, checked as the listing checks a ``Link`` header.

    The file sits in the store, which anyone with write access can edit: a next URL to another
    origin, another scheme or another path than the listing would be requested with the token.

    Raises:
        StoreError: the cursor is not what hubscan writes, or its link is not this endpoint's listing.
    """
    name = f"sweeps/{state.sweep_id}.cursor.json"
    raw = store.read_bytes(name)
    if not raw:
        return None
    try:
        saved = loads_bounded(raw, MAX_CURSOR_BYTES)
    except ValueError as exc:
        reason = str(exc) if isinstance(exc, JsonLimit) else "not JSON"
        raise StoreError(store.uri, None, name, f"not what hubscan writes ({reason}): {RESTART}") from None
    if not isinstance(saved, dict):
        raise StoreError(store.uri, None, name, f"not what hubscan writes (not a JSON object): {RESTART}")
    next_url = saved.get("next_url")
    if next_url is not None and not isinstance(next_url, str):
        raise StoreError(
            store.uri, None, name, f"not what hubscan writes (next_url is not a string): {RESTART}"
        )
    if next_url is None or state.source != "hub":
        return None  # a local source lists in one page and never resumes mid-listing
    try:
        return followable(settings.endpoint, next_url, what="saved next-page link")
    except BadListing as exc:
        raise StoreError(store.uri, None, name, f"{exc.reason}: {RESTART}") from None


def _save_record(store: Store, state: SweepState, settings: Settings, status: str) -> None:
    models = max(1, state.done + state.failed)
    projection = _projection(state, settings)
    record = SweepRecord(
        sweep_id=state.sweep_id,
        source=state.source,
        filters=json.dumps(asdict(state.filters)),
        started_at=state.started_at,
        ended_at=None if status == "running" else datetime.now(UTC),
        status=status,
        listed=state.listed,
        done=state.done,
        skipped=state.skipped,
        copies=state.copies,
        failed=state.failed,
        requests=state.counts.requests,
        api_requests=state.counts.api_requests,
        resolver_requests=state.counts.resolver_requests,
        cdn_requests=state.counts.cdn_requests,
        bytes_read=state.counts.bytes_read,
        requests_per_model=state.counts.requests / models,
        bytes_per_model=state.counts.bytes_read / models,
        quota=json.dumps(projection.quota),
        projected_hub_hours=projection.hours,
        hub_models=settings.hub_model_count,
        projected_hours_anonymous=projection.tiers["anonymous"],
        projected_hours_free=projection.tiers["free"],
        projected_hours_pro=projection.tiers["pro"],
        hubscan_version=__version__,
    )
    # One record per run: a resumed or nightly sweep id keeps the history of every run.
    run_key = f"{state.sweep_id}-{state.started_at:%Y%m%dT%H%M%S%f}"
    path = f"sweeps/{run_key}.parquet"
    _bookkeeping(path, lambda: store.write(path, SweepRecord.as_arrow([record])))


def _bookkeeping(path: str, write: Callable[[], None]) -> None:
    """A sweep record or cursor that cannot be written (a full disk) is a warning, not the end of
    the sweep: models are committed on their own, and a lost cursor only means re-listing."""
    try:
        write()
    except OSError as exc:
        print(f"hubscan: {path} not written: {one_line(exc)}", file=sys.stderr)


def _projection(state: SweepState, settings: Settings) -> Projection:
    """Hours a whole-hub sweep would take under the quota the Hub announced (else the anonymous one)."""
    quota = {
        "api": state.policy.get("api", (settings.quota_api, int(settings.quota_window_s))),
        "resolvers": state.policy.get("resolvers", (settings.quota_resolvers, int(settings.quota_window_s))),
    }
    per_model = state.counts.per(state.done + state.failed)
    tiers = {
        tier: whole_hub_hours(
            per_model, {"api": (api, QUOTA_WINDOW_S), "resolvers": (res, QUOTA_WINDOW_S)}, settings
        )
        for tier, (api, res) in HUB_QUOTA_TIERS.items()
    }
    hours = whole_hub_hours(per_model, quota, settings)
    # The CDN is in no quota, but the projection needs it to keep up: its request rate at the PRO pace.
    cdn_rate = per_model["cdn"] * settings.hub_model_count / max(1.0, tiers["pro"] * 3600)
    return Projection(quota, per_model, hours, tiers, cdn_rate)


def whole_hub_hours(
    per_model: dict[str, float], quota: dict[str, tuple[int, int]], settings: Settings
) -> float:
    """Hours to sweep every model on the Hub when the slowest quota bucket sets the pace."""
    seconds = max(per_model[b] * settings.hub_model_count / q * w for b, (q, w) in quota.items())
    return seconds / 3600


def _remember(index: StoreIndex, known: RayKnownFiles | None, result: TaskResult) -> None:
    """Keep the sweep's view of the store current: what committed, what failed, which files it owns."""
    if result.status in ("done", "copy"):
        index.add_model(result.repo_id, result.revision)
        if known is not None:
            known.add((result.repo_id, result.revision), result.file_hashes)
    elif result.status == "failed":
        index.add_failure(result.repo_id, result.revision, result.category)


def _worker_env(store: Store) -> dict[str, Any] | None:
    """Workers write an object-storage store with the driver's storage settings (endpoint, keys)."""
    env = storage_env()
    return None if store.local or not env else {"env_vars": env}


def _new_id() -> str:
    return datetime.now(UTC).strftime("sweep-%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:6]


def _take(items: Iterator[Any], limit: int | None) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if limit is not None and len(out) >= limit:
            break
        out.append(item)
    return out


def _path(raw: str) -> Path:
    return Path(raw).expanduser()
