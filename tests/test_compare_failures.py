"""`hubscan compare` on a repo whose sweep failed: the stored failure, what and when, and no trip to the Hub."""

import os
import subprocess
import sys

from hubscan.pipeline.runtime import sweep
from hubscan.pipeline.storage.parquet import Store

BROKEN = "badhub/malicious-pickle"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
# What the fake Hub's malicious pickle is refused for (tests/test_cli.py checks the same line on fingerprint).
REFUSED = "archive/data.pkl: pickle calls os.system; refused, never executed"


def _compare(settings, *targets: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_ENDPOINT": settings.endpoint, "HUBSCAN_DEBUG": ""}
    return subprocess.run(
        [sys.executable, "-m", "hubscan.jobs.cli", "compare", *targets, "--store", str(settings.store)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip


def test_compare_on_a_stored_failure_says_what_failed_and_when(ray_session, settings, hub):
    summary = sweep.run(settings, "hub", sweep.ListingFilters(search=BROKEN.split("/")[1]))
    assert (summary.done, summary.failed) == (0, 1), summary.messages
    (failure,) = Store(settings.store).dataset("failures").to_table().to_pylist()
    assert failure["repo_id"] == BROKEN and failure["category"] == "UnsafeContent"
    hub.log.clear()
    for targets in ((BROKEN, MINILM), (MINILM, BROKEN)):
        done = _compare(settings, *targets)
        assert done.returncode == 1, done.stderr
        assert done.stderr == (
            f"hubscan: {BROKEN}@{failure['revision'][:7]}:pytorch_model.bin: not in the store: fingerprinting "
            f"failed on {failure['failed_at']:%Y-%m-%d %H:%M} UTC (UnsafeContent: {REFUSED}); "
            f"`hubscan fingerprint {BROKEN}` tries again\n"
        )
        # the stored failure answered: the broken repo was not asked for again
        assert not [r for r in hub.log.snapshot() if r.repo_id == BROKEN]


def test_without_a_stored_failure_compare_goes_to_the_hub(settings, hub):
    # the control: the same repo in a store that never swept it is fetched, and fails as it did in the sweep
    done = _compare(settings, BROKEN, MINILM)
    assert done.returncode == 1 and done.stderr.endswith(f"{REFUSED}\n"), done.stderr
    assert "not in the store" not in done.stderr
    assert [r for r in hub.log.snapshot() if r.repo_id == BROKEN and r.filename]
