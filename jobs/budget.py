"""One Hub request budget shared by every Ray worker of a sweep.

The Hub meters requests per token or IP in fixed windows (RateLimit-Policy: "fixed window";
w=300), separately for API calls and file resolves. Each worker asks this actor before each
request; when any worker sees a 429 with Retry-After, every worker waits.
"""

from __future__ import annotations

import time

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

# A budget answer slower than this is skipped rather than stalling the worker.
ACTOR_TIMEOUT_S = 30.0


# Restarted if its node dies (the counts restart with it: a brief over-spend, never a stall).
@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class BudgetActor:
    """Fixed-window counters per bucket; answers how long a caller must wait."""

    def __init__(self, quotas: dict[str, int], window_s: float) -> None:
        self.quotas = dict(quotas)
        self.window_s = window_s
        self.window_start = time.time()
        self.used: dict[str, int] = dict.fromkeys(quotas, 0)
        self.paused_until = 0.0

    def reserve(self, bucket: str) -> float:
        """Take one request from ``bucket``; returns seconds to wait before sending it (0 = go).

        A full window moves the count into the next window, which may start in the future:
        every caller until then is told to wait for it.
        """
        now = time.time()
        if now >= self.window_start + self.window_s:
            self._new_window(now)
        quota = self.quotas.get(bucket)
        if quota is not None and self.used.get(bucket, 0) >= quota:
            self._new_window(self.window_start + self.window_s)
        self.used[bucket] = self.used.get(bucket, 0) + 1
        return max(0.0, self.paused_until - now, self.window_start - now)

    def _new_window(self, start: float) -> None:
        self.window_start, self.used = start, dict.fromkeys(self.quotas, 0)

    def defer(self, seconds: float) -> None:
        """Hold every worker back until now + seconds."""
        self.paused_until = max(self.paused_until, time.time() + seconds)

    def usage(self) -> dict[str, int]:
        """Requests counted in the current window, by bucket."""
        return dict(self.used)


class RayBudget:
    """The `pipeline.http.Budget` protocol over a BudgetActor handle (picklable, so tasks get it)."""

    def __init__(self, actor: ray.actor.ActorHandle) -> None:
        self.actor = actor

    def acquire(self, bucket: str) -> None:
        """Block until the shared budget allows one request.

        If the actor cannot answer (its node is being replaced), the request goes ahead:
        the Hub's own 429 + Retry-After still protects the quota, and a model never fails
        because of the budget's bookkeeping.
        """
        try:
            wait = float(ray.get(self.actor.reserve.remote(bucket), timeout=ACTOR_TIMEOUT_S))  # type: ignore[arg-type]
        except (
            ray.exceptions.RayActorError,
            ray.exceptions.ActorUnavailableError,
            ray.exceptions.GetTimeoutError,
        ):
            return
        if wait > 0:
            time.sleep(wait)

    def defer(self, seconds: float) -> None:
        """Tell every worker to pause (fire and forget; a lost message only costs another 429)."""
        self.actor.defer.remote(seconds)


def start_budget(quotas: dict[str, int], window_s: float) -> RayBudget:
    """A BudgetActor pinned to the driver's node: the sweep ends with that node anyway, so a
    lost worker node never takes the shared budget with it."""
    here = ray.get_runtime_context().get_node_id()
    actor = BudgetActor.options(  # type: ignore[attr-defined]
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=here, soft=True)
    ).remote(quotas, window_s)
    return RayBudget(actor)
