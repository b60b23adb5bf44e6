"""The shared request budget: no window-length interval ever holds more than the quota."""

import time

import ray

from jobs.budget import start_budget


def _send_times(budget, bucket, n):
    """When the actor scheduled each request, as seen from here, and how far off that can be.

    The actor computes its wait from its own clock at a moment between our call and its
    answer, so each time is known to within half that round trip (milliseconds when the
    machine is idle, tens of them on a loaded one).
    """
    ray.get(budget.actor.usage.remote())  # started: the first round trip is not the actor's start-up
    times, slack = [], 0.0
    for _ in range(n):
        before = time.time()
        wait = ray.get(budget.actor.reserve.remote(bucket))
        after = time.time()
        times.append((before + after) / 2 + wait)
        slack = max(slack, (after - before) / 2)
    return sorted(times), slack


def _most_in_one_window(times, window, slack):
    """Most sends inside any window-length interval, giving the schedule the benefit of the clock's doubt."""
    return max(sum(t <= s < t + window - 2 * slack for s in times) for t in times)


def test_no_interval_of_one_window_exceeds_the_quota_wherever_the_server_window_starts(ray_session):
    budget = start_budget({"resolvers": 5}, window_s=1.0)
    times, slack = _send_times(budget, "resolvers", 17)
    # A fixed window of the server's may start anywhere: check the worst one, starting at each send.
    assert _most_in_one_window(times, 1.0, slack) == 5
    # and the schedule does not wait longer than it must: 17 requests fit in just over 3 windows
    assert times[-1] - times[0] < 3 * 1.0 * 1.05 + 2 * slack


def test_a_bucket_without_a_quota_never_waits(ray_session):
    budget = start_budget({"resolvers": 1}, window_s=60.0)
    waits = [ray.get(budget.actor.reserve.remote("api")) for _ in range(50)]
    assert max(waits) == 0.0


def test_a_deferral_holds_every_bucket_back(ray_session):
    budget = start_budget({"resolvers": 100}, window_s=60.0)
    budget.defer(2.0)
    ray.get(budget.actor.usage.remote())  # the deferral has landed
    wait = ray.get(budget.actor.reserve.remote("resolvers"))
    assert 1.5 < wait <= 2.0


def test_an_announced_quota_replaces_the_assumed_one(ray_session):
    budget = start_budget({"resolvers": 1000}, window_s=60.0)
    budget.adopt("resolvers", 3, 1.0)  # RateLimit-Policy: q=3;w=1
    budget.adopt("cdn", 1, 60.0)  # not a metered bucket: ignored
    times, slack = _send_times(budget, "resolvers", 7)
    assert _most_in_one_window(times, 1.0, slack) == 3
    assert max(ray.get(budget.actor.reserve.remote("cdn")) for _ in range(5)) == 0.0
