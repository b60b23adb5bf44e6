"""The sweep's owners actor: tasks ask it which weight files are already stored."""

import os
import signal
import time

import ray

from hubscan.pipeline.chain.known_files import start_known_files
from hubscan.pipeline.storage.parquet import Store


def test_the_owners_actor_comes_back_reloaded_after_its_worker_is_killed(ray_session, tmp_path):
    # Found by bench.soak: a killed owners actor failed every later task of the sweep as internal.
    store = Store(tmp_path / "store").init()
    model = {"repo_id": "org/a", "revision": "1", "layers": 2, "hidden": 8}
    store.write_model(model, [], [{"sha256": "aa", "repo_id": "org/a", "revision": "1", "file": "w"}])
    known = start_known_files(store, None)
    assert known.owners(["aa", "bb"]) == {"aa": ("org/a", "1")}
    pid = ray.get(known.actor.__ray_call__.remote(lambda self: os.getpid()))
    os.kill(pid, signal.SIGKILL)  # as the OOM killer or a lost process does
    while os.path.exists(f"/proc/{pid}"):
        time.sleep(0.05)
    assert known.owners(["aa", "bb"]) == {"aa": ("org/a", "1")}
