"""The soak's view of its own processes, from /proc: a driver, the Ray workers under it, their RSS.

Only descendants of the driver the soak started are ever looked at or killed, so other Ray
instances on the machine (other users, CI) are never touched.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

# Ray names its worker processes "ray::<task or actor>" (and "ray::IDLE" between tasks).
RAY_WORKER_PREFIX = b"ray::"
# Node agents carry the same prefix but are not workers: the raylet dies with them.
RAY_AGENTS = (b"ray::DashboardAgent", b"ray::RuntimeEnvAgent")


def _children() -> dict[int, list[int]]:
    """ppid → pids, one snapshot of /proc."""
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name in parentheses may hold spaces: ppid is the second field after it.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``."""
    tree, out, todo = _children(), [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def cmdline(pid: int) -> bytes:
    """The process title (Ray rewrites it for workers), b'' if the process is gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def rss_mb(pid: int) -> float | None:
    """Resident set size in MB, None if the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def ray_workers(driver: int) -> list[int]:
    """Ray worker processes (tasks and actors) under the driver."""
    titles = {p: cmdline(p) for p in descendants(driver)}
    return [p for p, t in titles.items() if t.startswith(RAY_WORKER_PREFIX) and not t.startswith(RAY_AGENTS)]


@dataclass
class Series:
    """RSS samples of one process kind over the run."""

    samples: list[float] = field(default_factory=list)

    def row(self) -> tuple[float, float, float]:
        """(first, last, max) in MB."""
        return (self.samples[0], self.samples[-1], max(self.samples)) if self.samples else (0.0, 0.0, 0.0)


@dataclass
class Watch:
    """Samples RSS and kills one Ray worker every ``kill_every`` seconds, in a background thread."""

    kill_every: float
    sample_every: float
    seed: int
    driver: int | None = None
    kills: int = 0
    series: dict[str, Series] = field(
        default_factory=lambda: {"driver": Series(), "largest worker": Series(), "all workers": Series()}
    )
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        """Loop until stop(): sample, and kill when a kill is due."""
        rng = random.Random(self.seed)
        next_kill = time.monotonic() + self.kill_every
        while not self._stop.wait(self.sample_every):
            driver = self.driver
            if driver is None:
                continue
            workers = ray_workers(driver)
            self._sample(driver, workers)
            if self.kill_every > 0 and time.monotonic() >= next_kill and workers:
                victim = rng.choice(workers)
                try:
                    os.kill(victim, signal.SIGKILL)
                    self.kills += 1
                except ProcessLookupError:
                    pass
                next_kill = time.monotonic() + self.kill_every

    def _sample(self, driver: int, workers: list[int]) -> None:
        mine = rss_mb(driver)
        sizes = [s for s in (rss_mb(w) for w in workers) if s is not None]
        if mine is None or not sizes:
            return
        self.series["driver"].samples.append(mine)
        self.series["largest worker"].samples.append(max(sizes))
        self.series["all workers"].samples.append(sum(sizes))

    def stop(self) -> None:
        """End the loop at its next wake-up."""
        self._stop.set()
