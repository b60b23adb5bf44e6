"""Run by tests/test_sweep.py in its own process: a 3-node Ray cluster on this machine, a sweep of
the fake Hub, one worker node killed mid-sweep. Prints one JSON line with the store's counts."""

import json
import sys
import threading
import time
from pathlib import Path

import ray
from ray.cluster_utils import Cluster

from hubscan.pipeline.config import Settings
from hubscan.pipeline.runtime import sweep
from hubscan.pipeline.storage.duckdb import connect
from hubscan.testbed.fakehub import FakeHub

# Ray forwards raylet log lines to stdout, before and after ours: the result line carries a prefix.
RESULT_PREFIX = "cluster-kill-result: "


def main(testbed: Path, store: Path) -> None:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    ray.init(address=cluster.address, log_to_driver=False)
    killed = threading.Event()
    with FakeHub(testbed, latency=0.005) as hub:
        settings = Settings(
            endpoint=hub.url, store=store, backoff_base_s=0.01, backoff_max_s=0.05, max_in_flight=4
        )

        def kill_when_started() -> None:
            while not list((store / "models").glob("[!_]*.parquet")):
                time.sleep(0.05)
            cluster.remove_node(workers[0], allow_graceful=False)
            killed.set()

        threading.Thread(target=kill_when_started, daemon=True).start()
        sweep.run(settings, "hub", sweep.ListingFilters(exclude_authors=("badhub",)))
    con = connect(store)
    models = con.execute("SELECT count(*), count(DISTINCT (repo_id, revision)) FROM models").fetchone()
    tensors = con.execute(
        "SELECT count(*), count(DISTINCT (repo_id, revision, name)) FROM tensors"
    ).fetchone()
    # what went wrong, when something did: the test prints it with its assertion
    failures = con.execute(
        "SELECT category, count(*), any_value(message) FROM failures GROUP BY category"
    ).fetchall()
    print(
        RESULT_PREFIX
        + json.dumps(
            {
                "killed_node": killed.is_set(),
                "models": models[0],
                "distinct_models": models[1],
                "tensors": tensors[0],
                "distinct_tensors": tensors[1],
                "failures": [list(f) for f in failures],
            }
        )
    )
    ray.shutdown()
    cluster.shutdown()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
