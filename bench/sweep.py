"""Sweep throughput on the fake Hub over loopback: 1 vs 2 Ray workers, 0 vs 50 ms latency.

Real checkpoints are replicated to N repos (hard links, so no disk is spent) and swept with
file reuse off, so every replica is really read. Each configuration runs in its own process
with its own local Ray, side by side in one invocation. Prints one table.

    python -m bench.sweep [--repos 200] [--model sentence-transformers/paraphrase-MiniLM-L3-v2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.results import recorded
from hubscan.testbed.demohub.realmodels import default_cache
from hubscan.testbed.demohub.testbed import build_testbed

CONFIGS = [(1, 0.0), (2, 0.0), (1, 0.05), (2, 0.05)]  # (workers, injected latency in seconds)


def replicate(testbed: Path, model: str, root: Path, n: int) -> None:
    """N repos holding the model's files as hard links under distinct ids."""
    src = testbed / model
    for i in range(n):
        dst = root / "bench" / f"replica-{i:04d}"
        dst.mkdir(parents=True, exist_ok=True)
        for f in src.iterdir():
            if f.is_file() and not (dst / f.name).exists():
                os.link(f, dst / f.name)


def one_config(
    root: Path, workers: int, latency: float, store: Path, per_worker: int = 1
) -> dict[str, float]:
    """Run in a child process: local Ray with ``workers`` CPUs, ``per_worker`` tasks per CPU.

    A task spends most of its time waiting for the Hub, so more than one per CPU hides latency.
    """
    import ray

    from hubscan.pipeline.config import Settings
    from hubscan.pipeline.runtime import sweep
    from hubscan.testbed.fakehub import FakeHub

    ray.init(address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False)
    with FakeHub(root, page_size=1000, latency=latency) as hub:
        settings = Settings(
            endpoint=hub.url,
            store=store,
            task_cpus=1.0 / per_worker,
            max_in_flight=2 * workers * per_worker,
            reuse_known_files=False,
            # The fake Hub enforces no quota: measure our throughput, not the anonymous budget.
            quota_api=10**9,
            quota_resolvers=10**9,
        )
        started = time.perf_counter()
        summary = sweep.run(settings, "hub")
        seconds = time.perf_counter() - started
    ray.shutdown()
    return {"models": summary.done, "failed": summary.failed, "seconds": seconds, "bytes": summary.bytes_read}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repos", type=int, default=200)
    parser.add_argument("--model", default="sentence-transformers/paraphrase-MiniLM-L3-v2")
    parser.add_argument("--tasks-per-worker", type=int, default=1, help="concurrent Ray tasks per CPU")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        root, workers, latency, store, per_worker = args.child
        print(json.dumps(one_config(Path(root), int(workers), float(latency), Path(store), int(per_worker))))
        return
    cache = default_cache()
    testbed = cache.parent / "demo-hub"
    build_testbed(testbed, cache)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "hub"
        replicate(testbed, args.model, root, args.repos)
        results = {}
        for workers, latency in CONFIGS:
            store = Path(tmp) / f"store-{workers}-{latency}"
            env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
            env.pop("RAY_ADDRESS", None)
            out = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "bench.sweep",
                    "--child",
                    str(root),
                    str(workers),
                    str(latency),
                    str(store),
                    str(args.tasks_per_worker),
                ],
                capture_output=True,
                text=True,
                env=env,
                check=True,
            )
            results[(workers, latency)] = json.loads(out.stdout.strip().splitlines()[-1])
    print(
        f"\nsweep of {args.repos} replicas of {args.model} on the fake Hub (loopback), file reuse off, "
        f"{args.tasks_per_worker} task(s) per worker"
    )
    print(
        f"{'workers':>7} {'latency':>8} {'models':>6} {'seconds':>8} {'models/min':>10} {'MB/s':>7} {'vs 1 worker':>11} {'vs 0 ms':>8}"
    )
    for (workers, latency), r in results.items():
        rate = r["models"] / r["seconds"] * 60
        base_w = results[(1, latency)]
        base_l = results[(workers, 0.0)]
        speedup = rate / (base_w["models"] / base_w["seconds"] * 60)
        kept = rate / (base_l["models"] / base_l["seconds"] * 60)
        print(
            f"{workers:>7} {latency * 1000:>6.0f}ms {r['models']:>6} {r['seconds']:>8.1f} {rate:>10.1f} "
            f"{r['bytes'] / r['seconds'] / 1e6:>7.2f} {speedup:>10.2f}x {kept:>7.0%}"
        )
    two = results[(2, 0.0)]["seconds"]
    one = results[(1, 0.0)]["seconds"]
    lat = results[(2, 0.0)]["seconds"] / results[(2, 0.05)]["seconds"]
    print(f"target 2 workers >= 1.8x one: {one / two:.2f}x {'PASS' if one / two >= 1.8 else 'MISS'}")
    print(f"target 50 ms latency keeps >= 80 %: {lat:.0%} {'PASS' if lat >= 0.8 else 'MISS'}")


if __name__ == "__main__":
    if "--child" in sys.argv:
        main()
    else:
        per_worker = (
            sys.argv[sys.argv.index("--tasks-per-worker") + 1] if "--tasks-per-worker" in sys.argv else "1"
        )
        with recorded(f"Sweeping: models per minute, {per_worker} task(s) per worker"):
            main()
