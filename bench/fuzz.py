"""Coverage-guided fuzzing of every parser with atheris (libFuzzer), one child process per target.

    python -m bench.fuzz [--runs 100000] [--target NAME ...]

Each child instruments pipeline/ and jobs/, starts from the seeds in bench/fuzz_targets.py,
and keeps going past a crash (the input is saved under --out and counted), so one run reports
every distinct crash. The parent prints one table: inputs, coverage (libFuzzer's edge count),
crashes, slowest input, peak memory. Run it with `nice`: it keeps one core busy.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.results import recorded

# 100k inputs per parser (the figure); a few minutes per parser on one core.
DEFAULT_RUNS = 100_000
# Inputs are capped like a header probe: bigger ones only slow the fuzzer down.
MAX_INPUT_BYTES = 256 * 1024
# A single input slower than this is reported by libFuzzer as a timeout (a hang).
INPUT_TIMEOUT_S = 10
# Memory one child may use before libFuzzer calls it an out-of-memory crash.
RSS_LIMIT_MB = 2048
# Progress of a child is written to its stats file this often (libFuzzer exits without atexit).
STATS_EVERY = 500


def child(name: str, runs: int, out: Path) -> None:
    """Fuzz one target in this process (called through --child)."""
    import atheris

    with atheris.instrument_imports(include=["pipeline", "jobs"]):
        from bench.fuzz_targets import TARGETS, run_one
    target = TARGETS[name]
    corpus = out / name / "corpus"
    crashes = out / name / "crashes"
    corpus.mkdir(parents=True, exist_ok=True)
    crashes.mkdir(parents=True, exist_ok=True)
    for seed in target.seeds():
        (corpus / hashlib.sha1(seed).hexdigest()).write_bytes(seed[:MAX_INPUT_BYTES])
    stats = {"inputs": 0, "crashes": {}, "slowest_s": 0.0}

    def one(data: bytes) -> None:
        started = time.perf_counter()
        exc = run_one(target, data)
        spent = time.perf_counter() - started
        stats["inputs"] += 1
        if spent > stats["slowest_s"]:
            stats["slowest_s"] = spent
            (out / name / "slowest").write_bytes(data)
        if exc is not None:
            where = _where(exc)
            if where not in stats["crashes"]:
                (crashes / hashlib.sha1(where.encode()).hexdigest()[:12]).write_bytes(data)
            stats["crashes"][where] = stats["crashes"].get(where, 0) + 1
        if stats["inputs"] % STATS_EVERY == 0 or exc is not None:
            stats["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            (out / name / "stats.json").write_text(json.dumps(stats))

    atheris.Setup(
        [
            sys.argv[0],
            f"-runs={runs}",
            "-seed=1",
            f"-max_len={MAX_INPUT_BYTES}",
            f"-timeout={INPUT_TIMEOUT_S}",
            f"-rss_limit_mb={RSS_LIMIT_MB}",
            f"-artifact_prefix={out / name}/",  # libFuzzer's own slow-unit/oom files, not in the cwd
            str(corpus),
        ],
        one,
    )
    atheris.Fuzz()


def _where(exc: BaseException) -> str:
    """Exception class and the innermost hubscan frame: one key per distinct bug."""
    tb, frame = exc.__traceback__, "?"
    while tb is not None:
        code = tb.tb_frame.f_code
        if "/pipeline/" in code.co_filename or "/jobs/" in code.co_filename:
            frame = f"{Path(code.co_filename).name}:{tb.tb_lineno}"
        tb = tb.tb_next
    return f"{type(exc).__name__} at {frame}"


def main() -> None:
    """Fuzz each target in a child process and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS)
    parser.add_argument("--target", action="append")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "hubscan-fuzz")
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.runs, args.out)
        return
    from bench.fuzz_targets import TARGETS

    rows = []
    for name in args.target or list(TARGETS):
        started = time.monotonic()
        cmd = [
            sys.executable,
            "-m",
            "bench.fuzz",
            "--child",
            name,
            "--runs",
            str(args.runs),
            "--out",
            str(args.out),
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        coverage = re.findall(r"cov: (\d+)", done.stderr)
        stats = json.loads((args.out / name / "stats.json").read_text())
        rows.append(
            (name, stats, coverage[-1] if coverage else "?", time.monotonic() - started, done.returncode)
        )
    print(
        f"{'parser':<12} {'inputs':>8} {'coverage':>8} {'crashes':>7} {'slowest':>9} {'peak MB':>8} {'wall s':>7}"
    )
    for name, stats, cov, wall, code in rows:
        crashes = sum(stats["crashes"].values())
        print(
            f"{name:<12} {stats['inputs']:>8,} {cov:>8} {crashes:>7} {stats['slowest_s'] * 1000:>7.1f}ms "
            f"{stats.get('peak_mb', 0):>8.0f} {wall:>7.0f}" + ("" if code == 0 else f"  (exit {code})")
        )
        for where, count in stats["crashes"].items():
            print(f"    {count:>6} × {where}")
    print(f"inputs, slowest and crashes under {args.out}/<parser>/")


if __name__ == "__main__":
    if "--child" in sys.argv:
        main()
    else:
        with recorded("Fuzzing the parsers"):
            main()
