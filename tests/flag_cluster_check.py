"""Run by tests/test_flag_ray.py in its own process: `hubscan flag` on a 3-node Ray cluster on this
machine (a head with no CPUs, two 1-CPU workers), so every block task runs on a worker node. Prints
one line with the flag run's counts and the nodes the cluster had."""

import json
import sys
from pathlib import Path

import ray
from ray.cluster_utils import Cluster

from hubscan.pipeline.config import Settings
from hubscan.pipeline.flagging import engine as flag

# Ray forwards raylet log lines to stdout, before and after ours: the result line carries a prefix.
RESULT_PREFIX = "flag-cluster-result: "


def main(store: Path) -> None:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    for _ in range(2):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    # RAY_ADDRESS set: "auto" takes the cluster, however small the store
    result = flag.run(Settings(store=store, ray_address=cluster.address), runner="auto")
    nodes = sum(1 for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU"))
    print(
        RESULT_PREFIX
        + json.dumps({"pairs": result.candidates, "flagged": result.flagged, "cpu_nodes": nodes})
    )
    ray.shutdown()
    cluster.shutdown()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
