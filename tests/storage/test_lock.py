"""Two sweeps on one store at once: the second stops at once with a clear message; the first
stores each model once; the lock dies with its holder."""

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from hubscan.pipeline.config import Settings
from hubscan.pipeline.errors import StoreLocked
from hubscan.pipeline.runtime import sweep
from hubscan.pipeline.storage.duckdb import connect
from hubscan.pipeline.storage.lock import LOCK_FILE, sweep_lock
from hubscan.testbed.writers.safetensors_write import write_safetensors


def test_a_second_sweep_on_a_busy_store_stops_with_a_clear_message(tmp_path):
    repos = tmp_path / "repos"
    for name in ("a", "b"):
        write_safetensors(
            repos / "org" / name / "model.safetensors", {"w.weight": np.ones((8, 8), np.float32)}
        )
    store = tmp_path / "store"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    first = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hubscan.jobs.cli",
            "sweep",
            "--source",
            f"local:{repos}",
            "--store",
            str(store),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (store / LOCK_FILE).exists() or not (store / LOCK_FILE).read_text():
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.05)
    with pytest.raises(StoreLocked) as second:
        sweep.run(Settings(store=store), f"local:{repos}")
    assert str(second.value).startswith(
        f"{store}:{LOCK_FILE}: another sweep is running on this store (pid {first.pid}, sweep "
    )
    assert first.wait(timeout=300) == 0, first.stderr
    models = (
        connect(store).execute("SELECT count(*), count(DISTINCT (repo_id, revision)) FROM models").fetchone()
    )
    assert models == (2, 2)


def test_the_lock_is_released_when_its_holder_ends(tmp_path):
    with sweep_lock(tmp_path, "first"), pytest.raises(StoreLocked), sweep_lock(tmp_path, "second"):
        pass
    with sweep_lock(tmp_path, "third"):
        assert (tmp_path / LOCK_FILE).read_text() == f"pid {os.getpid()}, third"
