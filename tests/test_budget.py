"""The shared request budget: no window-length interval ever holds more than the quota.

Every test drives the real Ray actor on a clock of its own (``now=`` on each call), so what
it checks is the schedule, never how busy the machine happens to be.
"""

import ray

from hubscan.pipeline.runtime.budget import WINDOW_MARGIN, start_budget


def _send_times(budget, bucket, asked_at):
    """When the actor schedules each request, for requests asked at the given clock times."""
    return sorted(t + ray.get(budget.actor.reserve.remote(bucket, t)) for t in asked_at)


def _most_in_one_window(times, window):
    """Most sends inside any half-open window-length interval, starting at each send."""
    return max(sum(t <= s < t + window for s in times) for t in times)


def test_no_interval_of_one_window_exceeds_the_quota_wherever_the_server_window_starts(ray_session):
    budget = start_budget({"resolvers": 5}, window_s=1.0)
    # 17 requests asked for in a burst, a millisecond apart
    times = _send_times(budget, "resolvers", [100.0 + i * 0.001 for i in range(17)])
    # A fixed window of the server's may start anywhere: check the worst one, starting at each send.
    assert _most_in_one_window(times, 1.0) == 5
    # and the schedule does not wait longer than it must: 17 requests fit in just over 3 windows
    assert times[-1] - times[0] <= 3 * 1.0 * WINDOW_MARGIN + 0.001


def test_requests_asked_for_slowly_never_wait(ray_session):
    budget = start_budget({"resolvers": 5}, window_s=1.0)
    asked = [100.0 + i * 0.25 for i in range(20)]  # 4 a window, under the quota of 5
    times = _send_times(budget, "resolvers", asked)
    assert times == asked


def test_a_bucket_without_a_quota_never_waits(ray_session):
    budget = start_budget({"resolvers": 1}, window_s=60.0)
    waits = [ray.get(budget.actor.reserve.remote("api", 100.0)) for _ in range(50)]
    assert max(waits) == 0.0


def test_a_deferral_holds_every_bucket_back(ray_session):
    budget = start_budget({"resolvers": 100}, window_s=60.0)
    ray.get(budget.actor.defer.remote(2.0, 100.0))
    assert ray.get(budget.actor.reserve.remote("resolvers", 100.5)) == 1.5
    assert ray.get(budget.actor.reserve.remote("api", 101.0)) == 1.0
    assert ray.get(budget.actor.reserve.remote("resolvers", 103.0)) == 0.0


def test_the_real_clock_is_used_when_none_is_given(ray_session):
    budget = start_budget({"resolvers": 100}, window_s=60.0)
    budget.defer(30.0)  # fire and forget, as the workers send it
    ray.get(budget.actor.usage.remote())  # the deferral has landed
    # a wait of about 30 s, however long the round trip took (it only shortens the wait)
    assert 20.0 < ray.get(budget.actor.reserve.remote("resolvers")) <= 30.0


def test_an_announced_quota_replaces_the_assumed_one(ray_session):
    budget = start_budget({"resolvers": 1000}, window_s=60.0)
    budget.adopt("resolvers", 3, 1.0)  # RateLimit-Policy: q=3;w=1
    budget.adopt("cdn", 1, 60.0)  # not a metered bucket: ignored
    ray.get(budget.actor.usage.remote())  # both adoptions have landed (one caller: in order)
    times = _send_times(budget, "resolvers", [100.0 + i * 0.001 for i in range(7)])
    assert _most_in_one_window(times, 1.0) == 3
    assert max(ray.get(budget.actor.reserve.remote("cdn", 100.0)) for _ in range(5)) == 0.0
