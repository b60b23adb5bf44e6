"""What a sweep asks the Hub's listing for, and what it has counted so far (saved in the sweeps table)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from hubscan.pipeline.request_counts import RequestCounts
from hubscan.pipeline.runtime.sweep_task import TaskResult
from hubscan.pipeline.sources.listing_pages import ListingQuery

# Listing fields that let the driver skip stored revisions, and fingerprint the others, with
# no model-info call (≤ 0.01 API calls per model: one page per ~1,000 models): the commit,
# file names, card (lineage, license), config summary and gate.
# The Hub's page size cap (entries per /api/models page).
LISTING_PAGE = 1000
LISTING_EXPAND = ("sha", "gated", "private", "siblings", "cardData", "config", "tags")


@dataclass(frozen=True)
class Projection:
    """How long a whole-hub sweep would take at this sweep's requests per model."""

    quota: dict[str, tuple[int, int]]  # bucket -> (requests, window seconds) the pace was set by
    per_model: dict[str, float]  # requests per model by bucket: api, resolvers, cdn
    hours: float  # under ``quota``
    tiers: dict[str, float]  # the same under each account's quota (anonymous, free, pro)
    cdn_per_s_pro: float  # CDN requests per second a sweep at the PRO pace would make


@dataclass(frozen=True)
class ListingFilters:
    """The Hub listing filters users expect; None means not filtered."""

    search: str | None = None
    author: str | None = None
    tags: tuple[str, ...] = ()
    pipeline_tag: str | None = None
    library: str | None = None
    sort: str | None = None
    limit: int | None = None
    exclude_authors: tuple[str, ...] = ()  # applied by the driver: the Hub has no such filter

    def params(self) -> ListingQuery:
        """Query parameters of /api/models."""
        params: ListingQuery = {"expand": list(LISTING_EXPAND)}
        for key in ("search", "author", "pipeline_tag", "library", "sort"):
            if getattr(self, key):
                params[key] = getattr(self, key)
        if self.sort:
            params["direction"] = -1
        if self.tags:
            params["filter"] = list(self.tags)
        # The largest page the Hub serves: one API call lists this many models.
        params["limit"] = min(self.limit or LISTING_PAGE, LISTING_PAGE)
        return params


@dataclass
class SweepState:
    """Counters of one sweep, saved in the sweeps table."""

    sweep_id: str
    source: str
    filters: ListingFilters
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    listed: int = 0
    done: int = 0
    copies: int = 0
    skipped: int = 0
    failed: int = 0
    planned: int = 0
    counts: RequestCounts = field(default_factory=RequestCounts)
    policy: dict[str, tuple[int, int]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    failed_by: Counter[str] = field(default_factory=Counter)  # category → models, "internal" = bugs

    def add(self, result: TaskResult) -> None:
        """Count one finished task."""
        self.counts += result.counts
        self.policy.update(result.policy)
        if result.status == "failed":
            self.failed += 1
            self.failed_by[result.category or "internal"] += 1
            self.failures.append(result.message)
        elif result.status == "skipped":
            self.skipped += 1
        else:
            self.done += 1
            self.copies += result.status == "copy"
