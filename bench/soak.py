"""Soak: a sweep of thousands of small models through faults, worker kills and a killed driver.

A fake Hub serves ``--models`` distinct small models, ~5 % of them hostile files or scripted
to misbehave (429 storms, 5xx, cut bodies). The sweep driver runs as a child process on its
own local Ray; one Ray worker is SIGKILLed every ``--kill-every`` seconds, the driver is
SIGKILLed once mid-sweep and resumed with its sweep id. The store is then checked against
the hub: every listed model must be stored or a failures row (lost = 0), and none stored
twice (duplicated = 0). Prints one table, and the RSS of driver and workers over the run.

    python -m bench.soak [--models 2000] [--minutes 5] [--kill-every 15]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench.results import recorded
from bench.soak_hub import SoakHub, build_hub, script_faults
from bench.soak_procs import Watch, cmdline, descendants
from hubscan.testbed.demohub.badrepos import MALICIOUS_MARKER
from hubscan.testbed.fakehub import FakeHub
from hubscan.testbed.fakehub.repos import RepoStore

# Listing pages of 250: the cursor is saved several times, so the resumed driver starts mid-listing.
SOAK_PAGE = 250
# Compaction every 500 models: committed files are folded while workers are being killed.
SOAK_COMPACT_EVERY = 500
# The driver is killed once this share of the models is stored.
DRIVER_KILL_AT = 0.4
# RSS and the store are looked at this often.
SAMPLE_EVERY_S = 2.0
# The fake Hub enforces no quota here: the soak measures survival, not the anonymous budget.
NO_QUOTA = 10**9
# Seconds a killed driver's Ray processes get to go down with it before the soak kills them.
REAPER_GRACE_S = 10.0


@dataclass
class Tally:
    """The store checked against the hub's listing."""

    listed: int
    stored: int
    failed: Counter[str]
    examples: dict[str, str]
    lost: list[str]
    duplicated: int
    hostile_stored: list[str]


def run_driver(url: str, store: str, sweep_id: str) -> None:
    """Child process: one sweep driver, exactly as `hubscan sweep --sweep-id` runs it."""
    from hubscan.pipeline.config import Settings
    from hubscan.pipeline.runtime import sweep

    settings = Settings(
        endpoint=url,
        store=store,
        quota_api=NO_QUOTA,
        quota_resolvers=NO_QUOTA,
        compact_every=SOAK_COMPACT_EVERY,
    )
    summary = sweep.run(settings, "hub", sweep_id=sweep_id)
    print(json.dumps({"done": summary.done, "failed": summary.failed, "skipped": summary.skipped}))


def start_driver(url: str, store: Path, sweep_id: str, log: Path) -> subprocess.Popen[bytes]:
    """The driver as its own process, on a fresh local Ray (never a cluster in RAY_ADDRESS)."""
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    argv = [sys.executable, "-m", "bench.soak", "--driver", url, str(store), sweep_id]
    with log.open("ab") as err:
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, env=env)


def stored_count(store: Path) -> int:
    """Models committed so far (loose and compacted), -1 while the store cannot be read."""
    from hubscan.pipeline.storage.duckdb import connect

    try:
        row = connect(store).execute("SELECT count(*) FROM models").fetchone()
    except Exception:  # a compaction swapping files under the read: ask again later
        return -1
    return int(row[0]) if row else -1


def kill_driver(driver: subprocess.Popen[bytes]) -> None:
    """SIGKILL the driver; its Ray processes must follow it (else the soak ends them by pid)."""
    below = {p: cmdline(p) for p in descendants(driver.pid)}
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    deadline = time.monotonic() + REAPER_GRACE_S
    while time.monotonic() < deadline and any(cmdline(p) == c for p, c in below.items()):
        time.sleep(0.5)
    for pid, title in below.items():
        if title and cmdline(pid) == title:  # the same process still, not a reused pid
            os.kill(pid, signal.SIGKILL)


def tally(root: Path, store: Path, hub: SoakHub) -> Tally:
    """Listed (repo, commit) of the hub against the store's models and failures."""
    from hubscan.pipeline.storage.duckdb import connect

    listed = {(r.repo_id, r.sha) for r in RepoStore(root).all()}
    con = connect(store)
    stored_rows = con.execute("SELECT repo_id, revision, count(*) FROM models GROUP BY ALL").fetchall()
    stored = {(r, v) for r, v, _ in stored_rows}
    duplicated = sum(1 for *_, n in stored_rows if n > 1)
    categories: dict[tuple[str, str], str] = {}
    examples: dict[str, str] = {}
    for repo, revision, category, message in con.execute(
        "SELECT repo_id, revision, category, message FROM failures ORDER BY failed_at"
    ).fetchall():
        categories[(repo, revision)] = category
        examples.setdefault(category, message)
    failed: Counter[str] = Counter()
    lost = []
    for repo, sha in sorted(listed - stored):
        category = categories.get((repo, sha)) or categories.get((repo, "unresolved"))
        if category is None:
            lost.append(f"{repo}@{sha[:7]}")
        else:
            failed[category] += 1
    hostile_stored = sorted(r for r, _ in stored & listed if r in hub.hostile)
    return Tally(len(listed), len(listed & stored), failed, examples, lost, duplicated, hostile_stored)


def soak(models: int, minutes: float, kill_every: float, fault_rate: float, seed: int) -> int:
    """Build, serve, sweep with kills, resume, check; prints the table; 0 when nothing was lost."""
    MALICIOUS_MARKER.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="hubscan-soak-") as tmp:
        root, store, log = Path(tmp) / "hub", Path(tmp) / "store", Path(tmp) / "driver.log"
        built = time.monotonic()
        hub = build_hub(root, models, fault_rate, seed)
        print(f"built {models} repos in {time.monotonic() - built:.0f} s", file=sys.stderr)
        watch = Watch(kill_every=kill_every, sample_every=SAMPLE_EVERY_S, seed=seed)
        sweep_id = f"soak-{seed}"
        with FakeHub(root, page_size=SOAK_PAGE) as fake:
            script_faults(fake, hub)
            thread = threading.Thread(target=watch.run, daemon=True)
            thread.start()
            started = time.monotonic()
            deadline = started + minutes * 60
            first = start_driver(fake.url, store, sweep_id, log)
            watch.driver = first.pid
            while first.poll() is None and time.monotonic() < deadline:
                time.sleep(SAMPLE_EVERY_S)
                if stored_count(store) >= DRIVER_KILL_AT * models:
                    kill_driver(first)
            driver_kills = int(first.returncode == -signal.SIGKILL)
            second = start_driver(fake.url, store, sweep_id, log)
            watch.driver = second.pid
            while second.poll() is None and time.monotonic() < deadline:
                time.sleep(SAMPLE_EVERY_S)
            cut_short = second.poll() is None
            if cut_short:
                kill_driver(second)
            watch.stop()
            thread.join()
            seconds = time.monotonic() - started
            unhit = fake.pending_steps()
        result = tally(root, store, hub)
        crashed = second.returncode not in (0, 3) and not cut_short
        if crashed:
            print(log.read_text(errors="replace")[-4000:], file=sys.stderr)
    print_table(hub, result, watch, driver_kills, seconds, unhit, cut_short, second.returncode)
    bad = result.lost or result.duplicated or result.hostile_stored or crashed or MALICIOUS_MARKER.exists()
    return 1 if bad or cut_short else 0


def print_table(
    hub: SoakHub,
    t: Tally,
    watch: Watch,
    driver_kills: int,
    seconds: float,
    unhit: int,
    cut_short: bool,
    exit_code: int | None,
) -> None:
    """One table: what was listed, stored, failed, lost, duplicated; then RSS over time."""
    planted = f"{len(hub.hostile)} hostile files, {len(hub.transient)} scripted transport faults"
    rows = [
        ("models listed", f"{t.listed:,} ({planted})"),
        ("stored", f"{t.stored:,}"),
        ("failed", f"{sum(t.failed.values()):,}"),
        *((f"  {c}", f"{n:,}  e.g. {t.examples[c][:90]}") for c, n in t.failed.most_common()),
        ("lost (must be 0)", f"{len(t.lost):,}" + (f": {', '.join(t.lost[:5])}" if t.lost else "")),
        ("duplicated (must be 0)", f"{t.duplicated:,}"),
        ("hostile stored (must be 0)", f"{len(t.hostile_stored):,}"),
        ("pickle payload executed", "yes" if MALICIOUS_MARKER.exists() else "no"),
        ("worker kills / driver kills", f"{watch.kills} / {driver_kills} (resumed by sweep id)"),
        ("scripted fault steps not reached", f"{unhit}"),
        ("wall time", f"{seconds:.0f} s" + (" (cut short at --minutes)" if cut_short else "")),
        ("last driver exit code", f"{exit_code}"),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"\nsoak: {t.listed:,} models on the fake Hub, a worker killed every {watch.kill_every:g} s")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print(f"\n{'RSS (MB)':<16} {'first':>7} {'last':>7} {'max':>7} {'samples':>8}")
    for kind, series in watch.series.items():
        first, last, peak = series.row()
        print(f"{kind:<16} {first:>7.0f} {last:>7.0f} {peak:>7.0f} {len(series.samples):>8}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", type=int, default=2000, help="repos on the fake Hub")
    parser.add_argument("--minutes", type=float, default=5.0, help="time cap of the sweep phase")
    parser.add_argument(
        "--kill-every", type=float, default=15.0, help="seconds between worker kills (0: none)"
    )
    parser.add_argument("--fault-rate", type=float, default=0.05, help="share of hostile or faulted models")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--driver", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.driver:
        run_driver(*args.driver)
        return
    sys.exit(soak(args.models, args.minutes, args.kill_every, args.fault_rate, args.seed))


if __name__ == "__main__":
    if "--driver" in sys.argv:
        main()
    else:
        with recorded("Soak: a sweep under hostile files, faults and kills"):
            main()
