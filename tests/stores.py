"""Stores the flag tests share: testbed repos fingerprinted locally into a fresh store."""

from pathlib import Path

import pytest

from jobs import fingerprint
from pipeline.config import Settings


def fingerprinted_store(testbed: Path, repos, tmp_path_factory, name: str) -> Path:
    """A store of ``repos`` from the testbed; skips when this testbed lacks one of them."""
    missing = [r for r in repos if not (testbed / r).is_dir()]
    if missing:
        pytest.skip(f"not in this testbed: {missing}")
    root = tmp_path_factory.mktemp(name) / "store"
    summary = fingerprint.run(Settings(store=root), [str(testbed / r) for r in repos])
    assert summary.failed == 0, summary.messages
    return root


def pair_row(result, a: str, b: str) -> dict:
    """The one scored row of the pair {a, b} in a flag result."""
    found = [r for r in result.rows if {r["a_repo_id"], r["b_repo_id"]} == {a, b}]
    assert len(found) == 1, f"{a} / {b}: {len(found)} rows"
    return found[0]
