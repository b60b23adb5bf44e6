"""Hostile uploads against a real sweep (real Ray, the fake Hub on 127.0.0.1): whatever one model's
bytes do, it ends as one failures row naming repo, revision and file, and the sweep goes on."""

import contextlib
import os
import struct
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import ray

from hubscan.pipeline.config import Settings
from hubscan.pipeline.runtime import sweep
from hubscan.pipeline.runtime.sweep_inflight import InFlight
from hubscan.pipeline.runtime.sweep_task import Candidate
from hubscan.pipeline.storage.duckdb import connect
from hubscan.pipeline.storage.parquet import Store
from hubscan.testbed.fakehub import FakeHub
from hubscan.testbed.writers.safetensors_write import write_safetensors

# Deep enough to overflow CPython's recursion limit inside json.loads (the crash).
NESTING = 100_000


def nested_header(depth: int) -> bytes:
    """A safetensors file whose valid-length header is `depth` nested JSON arrays."""
    body = b'{"__metadata__":' + b"[" * depth + b"]" * depth + b"}"
    return struct.pack("<Q", len(body)) + body


@pytest.fixture(scope="module")
def small_hub(tmp_path_factory):
    """A good tiny checkpoint, a 16 MB one, and one with the deeply nested header."""
    root = tmp_path_factory.mktemp("hostile-hub")
    rng = np.random.default_rng(0)
    write_safetensors(root / "org/good/model.safetensors", {"a.weight": rng.random((16, 16), np.float32)})
    write_safetensors(root / "org/big/model.safetensors", {"a.weight": rng.random((2048, 2048), np.float32)})
    (root / "org/nested").mkdir(parents=True)
    (root / "org/nested/model.safetensors").write_bytes(nested_header(NESTING))
    with FakeHub(root) as hub:
        yield hub


def _settings(hub: FakeHub, tmp_path: Path, **changes) -> Settings:
    return Settings(
        endpoint=hub.url, store=tmp_path / "store", backoff_base_s=0.01, backoff_max_s=0.05
    ).with_(**changes)


def _failures(store):
    return (
        connect(store).execute("SELECT repo_id, category, message FROM failures ORDER BY repo_id").fetchall()
    )


def test_a_deeply_nested_header_is_a_failure_row_and_the_sweep_goes_on(ray_session, small_hub, tmp_path):
    settings = _settings(small_hub, tmp_path)
    summary = sweep.run(settings, "hub")
    assert (summary.done, summary.failed) == (2, 1)
    ((repo, category, message),) = _failures(settings.store)
    assert repo == "org/nested"
    assert category == "MalformedHeader"
    assert message.endswith(":model.safetensors: header JSON nests deeper than 64 levels")
    assert message.startswith("org/nested@")


def test_a_model_over_its_memory_cap_is_recorded_and_the_worker_lives_on(ray_session, small_hub, tmp_path):
    # Exact mode decodes the whole 16 MB matrix: more than a 20 MB cap once copies are counted.
    settings = _settings(small_hub, tmp_path, exact=True, max_model_memory_bytes=20_000_000)
    summary = sweep.run(settings, "hub")
    assert (summary.done, summary.failed) == (1, 2)
    rows = {r: (c, m) for r, c, m in _failures(settings.store)}
    category, message = rows["org/big"]
    assert category == "ResourceLimit"
    assert message.endswith(":model.safetensors: out of memory under the per-model cap (MemoryError)")
    # The same workers, the cap lifted: the big model lands.
    assert sweep.run(settings.with_(max_model_memory_bytes=0), "hub").done == 1


def test_a_model_over_its_time_budget_is_stopped_and_recorded(ray_session, small_hub, tmp_path):
    # The scripted read alone would take 120 s; the bound leaves 90 s for Ray and the other
    # models, far above what a loaded machine adds, so only a budget that never fired fails it.
    small_hub.slow_seconds = 120.0
    small_hub.script("model.safetensors", ["slow"], repo_id="org/good")
    settings = _settings(small_hub, tmp_path, max_model_seconds=4.0)
    started = time.monotonic()
    summary = sweep.run(settings, "hub")
    small_hub.reset()
    assert time.monotonic() - started < 90
    rows = {r: (c, m) for r, c, m in _failures(settings.store)}
    assert rows["org/good"][0] == "ResourceLimit"
    # The file is named when the alarm fires inside its read (the usual case); on a loaded
    # machine it may fire while the model is still being resolved.
    assert rows["org/good"][1].startswith("org/good@")
    assert rows["org/good"][1].endswith(": exceeded the 4 s per-model budget")
    assert summary.failed >= 2  # the nested header fails as ever


@ray.remote(max_retries=0)
def _dies() -> None:
    os._exit(1)


@ray.remote(max_retries=0)
def _hangs_in_c() -> None:
    time.sleep(600)  # one C call the task's own alarm would not be armed for


def test_a_dead_or_stuck_task_is_a_driver_written_row_not_a_crash(ray_session, tmp_path):
    store = Store(tmp_path / "store").init()
    running: InFlight[str] = InFlight(Settings(store=store.root), store)
    running.hard_limit_s = 1.0
    running.add(_dies.remote(), Candidate("org/dies", "a" * 40), "page")
    running.add(_hangs_in_c.remote(), Candidate("org/hangs", "b" * 40), "page")
    results = [r for _ in range(2) for _, _, r in running.finish_one()]
    by_repo = {r.repo_id: r for r in results}
    assert by_repo["org/dies"].category == "internal"
    assert by_repo["org/dies"].message.startswith("org/dies@aaaaaaa: WorkerCrashedError")
    assert by_repo["org/hangs"].category == "ResourceLimit"
    assert by_repo["org/hangs"].message == (
        "org/hangs@bbbbbbb: killed after 1 s: stuck past the per-model time budget"
    )
    assert {r[0] for r in _failures(store.root)} == {"org/dies", "org/hangs"}


@pytest.fixture
def tiny_disk(tmp_path):
    """A 4 MB tmpfs (needs root; skipped elsewhere), unmounted after the test."""
    mount = tmp_path / "tiny-disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4M", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not root)")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_commits_no_half_model_and_the_next_sweep_retries(ray_session, tmp_path, tiny_disk):
    repos = tmp_path / "repos"
    rng = np.random.default_rng(2)
    write_safetensors(repos / "org/tiny/model.safetensors", {"w.weight": rng.random((64, 64), np.float32)})
    settings = Settings(store=tiny_disk / "store")
    Store(settings.store).init()
    filler = tiny_disk / "filler"
    with open(filler, "wb", buffering=0) as fill, contextlib.suppress(OSError):
        while True:
            fill.write(b"\0" * 4096)
    summary = sweep.run(settings, f"local:{repos}")
    assert (summary.done, summary.failed) == (0, 1)
    assert "store disk full, retried by the next sweep" in summary.messages[0]
    store = Path(settings.store)
    for table in ("models", "tensors", "files"):  # nothing half-written of the model itself
        assert [p.name for p in (store / table).iterdir()] == ["_empty.parquet"]
    filler.unlink()
    assert sweep.run(settings, f"local:{repos}").done == 1
