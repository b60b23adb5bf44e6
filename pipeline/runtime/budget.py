"""One Hub request budget shared by every Ray worker of a sweep.

The Hub meters requests per token or IP in fixed windows (RateLimit-Policy: "fixed window";
w=300), separately for API calls and file resolves. Each worker asks this actor before each
request; when any worker sees a 429 with Retry-After, every worker waits.
"""

from __future__ import annotations

import time
from collections import deque

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

# A budget answer slower than this is skipped rather than stalling the worker.
ACTOR_TIMEOUT_S = 30.0


# Requests are spaced a little more than one window apart per quota's worth, so the request
# that travels a few milliseconds longer than its predecessors still lands in the next window.
WINDOW_MARGIN = 1.02


# Restarted if its node dies (the counts restart with it: a brief over-spend, never a stall).
@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class BudgetActor:
    """A sliding-window schedule per bucket; answers how long a caller must wait.

    Why sliding and not the Hub's own fixed windows: our windows cannot be aligned with the
    server's, and two misaligned fixed windows let up to twice the quota into one of the
    server's. If no interval of one window length holds more than the quota, no fixed window
    of the server's can either, wherever it starts.
    """

    def __init__(self, quotas: dict[str, int], window_s: float) -> None:
        self.quotas = dict(quotas)
        self.spacing = window_s * WINDOW_MARGIN
        self.spacings = {b: self.spacing for b in quotas}
        # send times of the last ``quota`` requests granted per bucket, ascending
        self.sent: dict[str, deque[float]] = {b: deque(maxlen=max(1, q)) for b, q in quotas.items()}
        self.paused_until = 0.0

    def adopt(self, bucket: str, quota: int, window_s: float) -> None:
        """The server announced its quota (RateLimit-Policy): schedule that bucket by it from now on.

        Only a bucket we already meter is adjusted: the CDN origin and unknown buckets stay free.
        """
        if bucket not in self.sent or quota < 1 or window_s <= 0:
            return
        if self.quotas[bucket] == quota and self.spacings[bucket] == window_s * WINDOW_MARGIN:
            return
        self.quotas[bucket] = quota
        self.spacings[bucket] = window_s * WINDOW_MARGIN
        self.sent[bucket] = deque(self.sent[bucket], maxlen=quota)  # keeps the latest sends

    def reserve(self, bucket: str, now: float | None = None) -> float:
        """Take one request from ``bucket``; returns seconds to wait before sending it (0 = go).

        The request goes at the earliest time at which the last ``quota`` sends, itself
        included, span at least one window. ``now`` is the actor's clock unless given: tests
        pass their own, so the schedule they check does not depend on the machine's load.
        """
        now = time.time() if now is None else now
        at = max(now, self.paused_until)
        sent = self.sent.get(bucket)
        if sent is not None:
            if len(sent) == sent.maxlen:
                at = max(at, sent[0] + self.spacings[bucket])
            sent.append(at)
        return at - now

    def defer(self, seconds: float, now: float | None = None) -> None:
        """Hold every worker back until now + seconds."""
        now = time.time() if now is None else now
        self.paused_until = max(self.paused_until, now + seconds)

    def usage(self, now: float | None = None) -> dict[str, int]:
        """Requests granted in the last window, by bucket."""
        since = (time.time() if now is None else now) - self.spacing
        return {b: sum(t > since for t in sent) for b, sent in self.sent.items()}


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

    def adopt(self, bucket: str, quota: int, window_s: float) -> None:
        """Pass on the quota the server announced (fire and forget, like defer)."""
        self.actor.adopt.remote(bucket, quota, window_s)


def start_budget(quotas: dict[str, int], window_s: float) -> RayBudget:
    """A BudgetActor pinned to the driver's node: the sweep ends with that node anyway, so a
    lost worker node never takes the shared budget with it."""
    here = ray.get_runtime_context().get_node_id()
    actor = BudgetActor.options(  # type: ignore[attr-defined]
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=here, soft=True)
    ).remote(quotas, window_s)
    return RayBudget(actor)
