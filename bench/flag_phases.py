"""Where `hubscan flag` spends time and memory: one in-process run on a store, phase by phase.

    python -m bench.flag_phases STORE            # a store built by bench.detection_synth.build_store
    python -m bench.flag_phases --build 100000 STORE

Each phase is timed where flag calls it (candidate SQL, signal SQL, scoring, layer maps, the
`pairs` table and its write); after each, the process's current RSS (what the driver still holds)
and its peak so far. Run it in its own process: the peak is the whole process's.
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
from jobs import flag, layer_maps
from pipeline.config import Settings

MB = 1024 * 1024
# (module, function name, phase): the functions flag.run calls, in the order it calls them
PHASES = (
    (flag, "candidate_pairs", "candidate SQL"),
    (flag, "fetch_rows", "candidate SQL"),
    (flag, "add_signals", "signal SQL"),
    (flag, "score_pairs", "scoring"),
    (layer_maps, "map_pairs", "layer maps"),
    (flag, "judge_pairs", "verdicts"),
    (flag, "pairs_table", "pairs table"),
)
TIMES: dict[str, float] = {}


def _rss_mb() -> float:
    """The resident set now (the peak, ru_maxrss, never falls)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / MB


def _timed(phase: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        # add_signals calls fetch_rows too: only the candidate queries are that phase
        if fn.__name__ == "fetch_rows" and "candidate" not in args[1]:
            return fn(*args, **kwargs)
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        TIMES[phase] = TIMES.get(phase, 0.0) + time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"  {phase}: {TIMES[phase]:.1f} s so far, rss {_rss_mb():.0f} MB, peak {peak:.0f} MB", flush=True
        )
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
    for phase, seconds in TIMES.items():
        print(f"| {phase} | {seconds:.1f} s |")


if __name__ == "__main__":
    main()
