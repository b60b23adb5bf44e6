"""`hubscan flag` in one process vs its signal SQL as Ray tasks per batch of a unit (pipeline/flagging/flag_blocks.py),
on the testbed store and on compacted synthetic stores. Each run is its own process (the Ray one
includes starting and stopping local Ray, as `hubscan flag` pays it); a digest of the pairs table
(run stamps dropped) shows both wrote the same pairs.

    python -m bench.flag_ray                     # testbed + 10k synthetic models
    python -m bench.flag_ray --synthetic 10000 30000
    python -m bench.flag_ray --no-testbed --synthetic 3000

Peak RSS is the driver's; Ray's workers are separate processes, each under DuckDB's 2 GB limit.
"""

from __future__ import annotations

import hashlib
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

from bench.detection_synth import build_store
from bench.results import recorded
from bench.store_scale import run_step
from hubscan.jobs import fingerprint
from hubscan.pipeline.config import Settings
from hubscan.pipeline.flagging import engine as flag
from hubscan.pipeline.storage.compact import compact
from hubscan.pipeline.storage.parquet import Store
from hubscan.testbed.demohub.realmodels import default_cache
from hubscan.testbed.demohub.testbed import build_testbed

SYNTHETIC = (10_000,)  # 100k takes several minutes a run on this shared 2-core machine
RUNNERS = ("local", "ray")


def testbed_store(tmp: Path) -> Path:
    """The testbed (every repo but the bad inputs) fingerprinted and compacted."""
    root = tmp / "testbed"
    build_testbed(root, default_cache())
    repos = [k for k in json.loads((root / "manifest.json").read_text()) if not k.startswith("badhub")]
    store = tmp / "testbed-store"
    fingerprint.run(Settings(store=store), [str(root / r) for r in repos])
    compact(Store(store))
    return store


def synthetic_store(tmp: Path, n: int) -> Path:
    """``n`` synthetic models in five blocks (bench.detection_synth), compacted into block parts."""
    store = tmp / f"synthetic-{n}"
    build_store(store, n)
    compact(Store(store))
    return store


def _step(store: str, runner: str) -> None:
    """Child process: one flag run; prints seconds, peak RSS and the digest of the pairs written."""
    t0 = time.perf_counter()
    result = flag.run(Settings(store=store), runner=runner)
    seconds = time.perf_counter() - t0
    rows = result.pairs.drop_columns(["flag_id", "flagged_at"]).to_pylist()
    digest = hashlib.sha256(repr(sorted(repr(sorted(r.items())) for r in rows)).encode()).hexdigest()[:12]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "rss_mb": rss, "pairs": result.candidates, "flagged": result.flagged,
                      "digest": digest}))  # fmt: skip


def main(testbed: bool, sizes: tuple[int, ...]) -> None:
    print("| store | pairs | flagged | one process s / MB | Ray tasks s / MB (driver) | ratio | same pairs |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        stores = [("testbed", testbed_store(Path(tmp)))] if testbed else []
        stores += [(f"synthetic {n:,}", synthetic_store(Path(tmp), n)) for n in sizes]
        for name, store in stores:
            local, on_ray = (run_step("bench.flag_ray", store, r) for r in RUNNERS)
            if "error" in local or "error" in on_ray:
                print(f"| {name} | {local.get('error', '')} | {on_ray.get('error', '')} |", flush=True)
                continue
            print(f"| {name} | {local['pairs']:,} | {local['flagged']:,} | {local['seconds']:.1f} / {local['rss_mb']:.0f} | "
                  f"{on_ray['seconds']:.1f} / {on_ray['rss_mb']:.0f} | {on_ray['seconds'] / local['seconds']:.2f} | "
                  f"{'yes' if local['digest'] == on_ray['digest'] else 'NO'} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--step"]:
        _step(args[1], args[2])
    else:
        sizes = tuple(int(a) for a in args if a.isdigit()) or SYNTHETIC
        with recorded("Flag on Ray tasks against one process"):
            main("--no-testbed" not in args, sizes)
