"""Where `hubscan flag` spends time and memory: one in-process run on a store, phase by phase.

    python -m bench.flag_phases STORE            # a store built by bench.detection_synth.build_store
    python -m bench.flag_phases --build 100000 STORE

Each phase is timed where flag calls it (candidate SQL, homes, signal SQL, scoring, reading the row
files back, layer maps, verdicts, the `pairs` table), with the largest resident set seen after one of
its calls (what the driver holds then). Run it in its own process: the peak is the whole process's.
"""

from __future__ import annotations

import argparse
import functools
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.detection_synth import build_store
from bench.results import recorded
from hubscan.pipeline.config import Settings
from hubscan.pipeline.flagging import engine as flag
from hubscan.pipeline.flagging import flag_rows, layer_maps
from hubscan.pipeline.storage import homes

MB = 1024 * 1024
# (module, function name, phase): the functions flag.run calls, in the order it calls them. Scoring's
# functions run once per row, so no phase prints per call: each keeps its seconds and the largest
# resident set seen when one of its calls returned.
PHASES = (
    (flag, "candidate_pairs", "candidate SQL"),
    (flag, "fetch_candidates", "candidate SQL"),
    (homes, "write_homes", "homes"),
    (flag, "batch_signals", "signal SQL"),
    (flag, "merge_rows", "scoring"),
    (flag_rows, "chance_z", "scoring"),
    (flag_rows, "fit_backgrounds", "scoring"),
    (flag_rows, "calibrate", "scoring"),
    (flag_rows, "log_benjamini_hochberg", "scoring"),
    (flag_rows, "set_flags", "scoring"),
    (flag_rows, "_load", "row files"),
    (layer_maps, "map_pairs", "layer maps"),
    (flag, "judge_pairs", "verdicts"),
    (flag, "pairs_table", "pairs table"),
)
TIMES: dict[str, float] = {}
RSS: dict[str, float] = {}


def _rss_mb() -> float:
    """The resident set now (the peak, ru_maxrss, never falls)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / MB


def _timed(phase: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        TIMES[phase] = TIMES.get(phase, 0.0) + time.perf_counter() - t0
        if phase != "scoring":  # per row: reading /proc each time would be the cost measured
            RSS[phase] = max(RSS.get(phase, 0.0), _rss_mb())
        return out

    return wrapper


def main() -> None:
    """Flag the store in this process and print the phase table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", type=Path)
    parser.add_argument("--build", type=int, default=0, help="first write this many synthetic models")
    args = parser.parse_args()
    if args.build:
        t0 = time.perf_counter()
        build_store(args.store, args.build)
        print(f"built {args.build:,} models in {time.perf_counter() - t0:.1f} s", flush=True)
    for module, name, phase in PHASES:
        setattr(module, name, _timed(phase, getattr(module, name)))
    t0 = time.perf_counter()
    result = flag.run(Settings(store=args.store), exhaustive_max=0, runner="local")
    total = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"flag: {total:.1f} s, peak RSS {peak:.0f} MB, {result.candidates:,} pairs, {result.flagged:,} flagged"
    )
    print("| phase | seconds | largest RSS after a call (MB) |")
    for phase, seconds in TIMES.items():
        print(f"| {phase} | {seconds:.1f} | {RSS.get(phase, float('nan')):.0f} |")
    print(f"| other (spill writes, model tables, Parquet writes) | {total - sum(TIMES.values()):.1f} | |")


if __name__ == "__main__":
    with recorded("Flag phases towards 1M models"):
        main()
