"""A row of the ``sweeps`` table: one run of a sweep, what it covered and what a whole-hub sweep would take."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

import pyarrow as pa

from hubscan.pipeline.fingerprints.arrow_record import ArrowRecord

_utc = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True, kw_only=True)
class SweepRecord(ArrowRecord):
    """One sweep run; a resumed or nightly sweep id writes one per run, so its history stays."""

    sweep_id: Annotated[str, pa.string()]
    source: Annotated[str, pa.string()]
    filters: Annotated[str, pa.string()]  # JSON of the listing filters
    started_at: Annotated[datetime, _utc]
    ended_at: Annotated[datetime | None, _utc]
    status: Annotated[str, pa.string()]  # running, done, interrupted
    listed: Annotated[int, pa.int64()]
    done: Annotated[int, pa.int64()]
    skipped: Annotated[int, pa.int64()]
    copies: Annotated[int, pa.int64()]
    failed: Annotated[int, pa.int64()]
    requests: Annotated[int, pa.int64()]
    api_requests: Annotated[int, pa.int64()]
    resolver_requests: Annotated[int, pa.int64()]
    cdn_requests: Annotated[int, pa.int64()]
    bytes_read: Annotated[int, pa.int64()]
    requests_per_model: Annotated[float, pa.float64()]
    bytes_per_model: Annotated[float, pa.float64()]
    quota: Annotated[str, pa.string()]  # JSON {bucket: [requests, window_s]} as announced by the Hub
    projected_hub_hours: Annotated[float, pa.float64()]  # whole-hub sweep under that quota
    hub_models: Annotated[int, pa.int64()]  # model count the projection assumes
    # the same projection under each account's quota
    projected_hours_anonymous: Annotated[float, pa.float64()]
    projected_hours_free: Annotated[float, pa.float64()]
    projected_hours_pro: Annotated[float, pa.float64()]
    hubscan_version: Annotated[str, pa.string()]
