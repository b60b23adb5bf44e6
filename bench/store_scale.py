"""The store at hub scale: a synthetic store in the sweep's own layout (one file per model per table),
timed for the listing skip check, `hubscan flag` on loose files, compaction, and flag on the compacted
store. Every step runs in its own process, so peak memory (max RSS) belongs to that step alone.

    python -m bench.store_scale 1000 3000 10000

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
import pyarrow.parquet as pq

from bench.detection_synth import build_store
from pipeline.storage.parquet import Store, model_key
from pipeline.storage.schema import FILES

SIZES = (1000, 3000, 10000)
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
        from pipeline.storage.index import StoreIndex

        index = StoreIndex.load(Store(store))
        listing = [(f"syn/m{i:06d}", "r0") for i in range(2 * len(index.models))]  # half stored, half new
        extra["skipped"] = sum(index.has_model(r, v) for r, v in listing)
    elif step == "compact":
        from pipeline.storage.compact import compact

        extra["models"] = compact(Store(store)).models
    else:
        from jobs import flag
        from pipeline.config import Settings

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


def main(sizes: tuple[int, ...]) -> None:
    print(
        "| models | write loose s | files | skip check s (2n listed) | flag loose s / MB | compact s / MB | flag compacted s / MB |"
    )
    print("|---|---|---|---|---|---|---|")
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "store"
            t0 = time.perf_counter()
            write_loose_store(root, n)
            wrote = time.perf_counter() - t0
            files = sum(1 for _ in root.rglob("*.parquet"))
            skip, loose = (
                run_step("bench.store_scale", root, "skip"),
                run_step("bench.store_scale", root, "flag"),
            )
            comp, flagged = (
                run_step("bench.store_scale", root, "compact"),
                run_step("bench.store_scale", root, "flag"),
            )

            def fmt(r: dict[str, Any]) -> str:
                return r.get("error") or f"{r['seconds']:.1f} / {r['rss_mb']:.0f}"

            print(f"| {n:,} | {wrote:.0f} | {files:,} | {skip.get('seconds', float('nan')):.2f} | {fmt(loose)} | "
                  f"{fmt(comp)} | {fmt(flagged)} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    if sys.argv[1:2] == ["--step"]:
        _step(sys.argv[2], sys.argv[3])
    else:
        main(tuple(int(a) for a in sys.argv[1:]) or SIZES)
