"""Where a run's Ray tasks go: a private local Ray by default, the cluster RAY_ADDRESS names otherwise."""

from __future__ import annotations

import os

import ray

from hubscan.pipeline.config import Settings


def ray_init(settings: Settings) -> None:
    """Local Ray by default (never a leftover `ray start` cluster); a cluster when RAY_ADDRESS is set."""
    if ray.is_initialized():
        return
    if settings.ray_address is None:
        # A private local instance: token set-up only matters for a shared cluster.
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(address=settings.ray_address or "local", include_dashboard=False, log_to_driver=False)
