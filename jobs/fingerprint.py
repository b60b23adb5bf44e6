"""`hubscan fingerprint`: fingerprint models given as Hub ids, local repo folders or files into the store."""

from __future__ import annotations

import pyarrow as pa
from rich.console import Console

from hubscan.pipeline.chain.commit import commit
from hubscan.pipeline.chain.known_files import StoreKnownFiles
from hubscan.pipeline.chain.model_task import ModelOutcome, fingerprint_model
from hubscan.pipeline.chain.task_limits import as_failure
from hubscan.pipeline.config import Settings
from hubscan.pipeline.errors import HubscanError
from hubscan.pipeline.http import HubHttp
from hubscan.pipeline.sources.targets import resolve_target
from hubscan.pipeline.storage.parquet import Store
from hubscan.pipeline.summary import RunSummary


def run(settings: Settings, targets: list[str], revision: str = "main", force: bool = False) -> RunSummary:
    """Fingerprint each target (a folder or a Hub repo id); skip revisions already in the store."""
    store = Store(settings.store).init().writable()
    http = HubHttp(settings)
    summary = RunSummary()
    err = Console(stderr=True, soft_wrap=True)
    known = StoreKnownFiles(store)  # one scan of the files table per run, not one per model
    for target in targets:
        try:
            ref = resolve_target(target, http, revision)
        except HubscanError as exc:
            store.write_failures(exc.repo_id or target, exc.revision or "unresolved", [exc])
            _failed(summary, err, exc)
            continue
        if not force and store.has_model(ref.repo_id, ref.revision):
            summary.skipped += 1
            # Names are data, never markup: a repo id with "[/x]" in it was a MarkupError traceback.
            err.print(f"skip {ref.repo_id}@{ref.revision[:7]}: already in the store", markup=False)
            continue
        record(store, fingerprint_model(ref, settings, http, known=known), summary, err, known)
    return summary


def record(
    store: Store,
    outcome: ModelOutcome,
    summary: RunSummary,
    err: Console,
    known: StoreKnownFiles | None = None,
) -> None:
    """Write an outcome to the store and count it; a failed model's errors are a line each."""
    try:
        committed = commit(store, outcome, summary, err, known)
    except (OverflowError, pa.ArrowException) as unstorable:
        # A value of this model that its column cannot hold (an int past int64): this model's
        # failures row, as a sweep task records it, not a traceback that ends the command.
        outcome.model, outcome.errors = (
            None,
            [as_failure(unstorable, outcome.repo_id, outcome.revision, None)],
        )
        committed = commit(store, outcome, summary, err, known)
    if not committed:
        for exc in outcome.errors:
            _failed(summary, err, exc)


def _failed(summary: RunSummary, err: Console, exc: HubscanError) -> None:
    summary.failed += 1
    summary.messages.append(str(exc))
    err.print(f"fail {exc}", markup=False, highlight=False)
