"""The store at hub scale: a synthetic store in the sweep's own layout (one file per model per table),
timed for the listing skip check, `hubscan flag` on loose files, compaction, and flag on the compacted
store. Every step runs in its own process, so peak memory (max RSS) belongs to that step alone.

    python -m bench.store_scale 10000 100000     # loose store written, flagged, compacted, flagged
    python -m bench.store_scale --skip 1000000 5000   # skip check: 1M compacted models + 5,000 loose

Models and families come from bench.detection_synth (its mixed layout: 2-6 layer blocks of
hidden 48-128); its chunk files are split into per-model files exactly as `Store.write_model` names them.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench.detection_synth import build_store
from bench.results import recorded
from hubscan.pipeline.storage.parquet import Store, model_key
from hubscan.pipeline.storage.schema import FILES, MODELS

SIZES = (1000, 3000, 10000)
# Flag on loose files binds its views over every per-model file: at 10,000 models it did not finish in
# 6.5 min before flag read by homes (docs/store.md, "At hub scale"). A sweep compacts every 5,000
# models, so the loose-store cell is run up to 10,000 models only.
FLAG_LOOSE_MAX = 10_000
WRITERS = 2  # processes splitting chunks into per-model files: one per core here  # 100k+ models do not fit in one run on this shared 2-core machine


def write_loose_store(root: Path, n: int, workers: int = WRITERS) -> None:
    """``n`` synthetic models, one tensors/files/models file each (what a sweep leaves behind)."""
    chunked = root.with_name(root.name + "-chunks")
    build_store(chunked, n)
    Store(root).init()
    chunks = sorted((chunked / "models").glob("chunk*.parquet"))
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_split_chunk, chunks, [root] * len(chunks)))
    shutil.rmtree(chunked)


def _split_chunk(chunk: Path, root: Path) -> None:
    """One chunk's models written as Store.write_model names them (tensors, files, then the models marker)."""
    models = pq.read_table(chunk)
    tensors = pq.read_table(chunk.parent.parent / "tensors" / chunk.name)
    empty_files = FILES.empty_table()
    # build_store appends each model's rows together: one slice per model instead of a filter per model
    repos = tensors["repo_id"].to_numpy(zero_copy_only=False)
    starts = np.flatnonzero(np.r_[True, repos[1:] != repos[:-1]])
    ends = np.r_[starts[1:], len(repos)]
    at = {repos[s]: (int(s), int(e - s)) for s, e in zip(starts, ends, strict=True)}
    for i, repo in enumerate(models["repo_id"].to_pylist()):
        key = model_key(repo, "r0")
        start, length = at[repo]
        # written in place: a bench store has no concurrent reader, so Store.write's temp+rename is skipped
        pq.write_table(tensors.slice(start, length), root / "tensors" / f"{key}.parquet", compression="zstd")
        pq.write_table(empty_files, root / "files" / f"{key}.parquet", compression="zstd")
        pq.write_table(models.slice(i, 1), root / "models" / f"{key}.parquet", compression="zstd")


def _step(store: str, step: str) -> None:
    """Child process: run one step, print seconds and peak RSS as JSON."""
    t0 = time.perf_counter()
    extra: dict[str, Any] = {}
    if step == "skip":
        from hubscan.pipeline.storage.index import StoreIndex

        index = StoreIndex.load(Store(store))
        listing = [(f"syn/m{i:06d}", "r0") for i in range(2 * len(index.models))]  # half stored, half new
        extra["skipped"] = sum(index.has_model(r, v) for r, v in listing)
    elif step == "compact":
        from hubscan.pipeline.storage.compact import compact

        extra["models"] = compact(Store(store)).models
    else:
        from hubscan.pipeline.config import Settings
        from hubscan.pipeline.flagging import engine as flag

        extra["flagged"] = flag.run(Settings(store=store), exhaustive_max=0).flagged
    seconds = time.perf_counter() - t0
    print(
        json.dumps(
            {"seconds": seconds, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, **extra}
        )
    )


def run_step(module: str, store: Path, step: str) -> dict[str, Any]:
    """One measured step in a process of its own (its peak RSS is its own): the JSON line it prints."""
    out = subprocess.run([sys.executable, "-m", module, "--step", str(store), step],
                         capture_output=True, text=True)  # fmt: skip
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["no output"])[-1][:100]}
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def write_compacted_models(root: Path, n: int, loose: int) -> None:
    """A store whose models table holds ``n`` models in compacted form (parts per block and a manifest,
    as compaction leaves them) plus ``loose`` loose models: what a skip check loads at hub scale."""
    from hubscan.pipeline.storage.compact import _BlockWriters
    from hubscan.pipeline.storage.manifest import MANIFEST, Manifest

    store = Store(root).init()
    hidden = pa.array(np.array([64, 96, 128, 48, 80])[np.arange(n) % 5])
    writers = _BlockWriters(store, 1)
    for start in range(0, n, 100_000):  # the same appends compaction makes, one group at a time
        count = min(100_000, n - start)
        repos = pa.array([f"syn/m{i:06d}" for i in range(start, start + count)])
        rows = {"repo_id": repos, "revision": pa.array(["r0"] * count), "hidden": hidden.slice(start, count)}
        full = pa.table({f.name: rows.get(f.name, pa.nulls(count, f.type)) for f in MODELS})
        writers.add("models", full)
    store.write_bytes(MANIFEST, Manifest(1, writers.close()).to_json())
    for i in range(n, n + loose):
        one = {f.name: [f"syn/m{i:06d}" if f.name == "repo_id" else "r0" if f.name == "revision" else None]
               for f in MODELS}  # fmt: skip
        store.write(f"models/{model_key(f'syn/m{i:06d}', 'r0')}.parquet", pa.table(one, MODELS))


def skip_at_scale(n: int, loose: int) -> None:
    """The listing skip check against an ``n``-model compacted store: 2n listed, half of them stored."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "store"
        t0 = time.perf_counter()
        write_compacted_models(root, n, loose)
        built = time.perf_counter() - t0
        skip = run_step("bench.store_scale", root, "skip")
        print(
            "| stored models (compacted + loose) | build s | skip check s (2n listed) | peak MB | skipped |"
        )
        print("|---|---|---|---|---|")
        print(
            f"| {n:,} + {loose:,} | {built:.0f} | {skip['seconds']:.1f} | {skip['rss_mb']:.0f} | {skip['skipped']:,} |"
        )


def main(sizes: tuple[int, ...]) -> None:
    print("| models | write loose s | files | skip check s (2n listed) | flag loose s / MB | compact s / MB "
          "| compact ms per model | flag compacted s / MB |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "store"
            t0 = time.perf_counter()
            write_loose_store(root, n)
            wrote = time.perf_counter() - t0
            files = sum(1 for _ in root.rglob("*.parquet"))
            skip = run_step("bench.store_scale", root, "skip")
            no_run = {"error": f"not run above {FLAG_LOOSE_MAX:,} models"}
            loose = run_step("bench.store_scale", root, "flag") if n <= FLAG_LOOSE_MAX else no_run
            comp = run_step("bench.store_scale", root, "compact")
            flagged = run_step("bench.store_scale", root, "flag")
            per_model = 1000 * comp.get("seconds", float("nan")) / n

            def fmt(r: dict[str, Any]) -> str:
                return r.get("error") or f"{r['seconds']:.1f} / {r['rss_mb']:.0f}"

            print(f"| {n:,} | {wrote:.0f} | {files:,} | {skip.get('seconds', float('nan')):.2f} | {fmt(loose)} | "
                  f"{fmt(comp)} | {per_model:.2f} | {fmt(flagged)} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    if sys.argv[1:2] == ["--step"]:
        _step(sys.argv[2], sys.argv[3])
    elif sys.argv[1:2] == ["--skip"]:
        with recorded("Skip check at hub scale"):
            skip_at_scale(int(sys.argv[2]), int(sys.argv[3]))
    else:
        with recorded("The store at hub scale"):
            main(tuple(int(a) for a in sys.argv[1:]) or SIZES)
