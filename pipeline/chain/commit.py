"""One fingerprinted model written to the store, for the commands that fingerprint in this process
(`hubscan fingerprint` and `compare`); a sweep's tasks write their own."""

from __future__ import annotations

from rich.console import Console

from hubscan.pipeline.chain.known_files import StoreKnownFiles
from hubscan.pipeline.chain.model_task import ModelOutcome
from hubscan.pipeline.storage.parquet import Store
from hubscan.pipeline.summary import RunSummary


def commit(
    store: Store, outcome: ModelOutcome, summary: RunSummary, err: Console, known: StoreKnownFiles | None
) -> bool:
    """Write the model (counted, one progress line; its files become known to the run) or its failures.

    Returns False when it failed: the caller reports its errors (a line each, or one raised).
    """
    model = outcome.model
    if model is None:
        store.write_failures(outcome.repo_id, outcome.revision, outcome.errors)
        return False
    store.write_model(model.as_row(), outcome.tensor_rows, outcome.file_rows)
    if known is not None:
        hashes = [str(f["sha256"]) for f in outcome.file_rows if f.get("sha256")]
        known.add((outcome.repo_id, outcome.revision), hashes)
    summary.done += 1
    summary.bytes_read += model.bytes_read
    summary.requests += model.requests
    err.print(
        f"done {outcome.repo_id}@{outcome.revision[:7]}: {len(outcome.tensors)} tensors, "
        f"{model.bytes_read:,} of {model.checkpoint_bytes:,} bytes read in {model.requests} requests",
        markup=False,  # a repo id or folder name is data: "[/x]" in it is no markup tag
    )
    return True
