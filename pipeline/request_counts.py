"""What reading a model cost: requests by the Hub's quota buckets, and bytes received.

One record from the request log to the sweep's totals: a task's counts, a model's, a sweep's, added
with ``+`` rather than five counters copied field by field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class RequestCounts:
    """Requests (all, then by bucket: the API and resolvers quotas count, the CDN origin does not) and bytes."""

    requests: int = 0
    api_requests: int = 0
    resolver_requests: int = 0
    cdn_requests: int = 0
    bytes_read: int = 0

    @classmethod
    def by_bucket(cls, buckets: Mapping[str, int], bytes_read: int = 0) -> RequestCounts:
        """From a request log's counts per bucket ("api", "resolvers", "cdn")."""
        return cls(
            requests=sum(buckets.values()),
            api_requests=buckets.get("api", 0),
            resolver_requests=buckets.get("resolvers", 0),
            cdn_requests=buckets.get("cdn", 0),
            bytes_read=bytes_read,
        )

    def __add__(self, other: RequestCounts) -> RequestCounts:
        return RequestCounts(
            self.requests + other.requests,
            self.api_requests + other.api_requests,
            self.resolver_requests + other.resolver_requests,
            self.cdn_requests + other.cdn_requests,
            self.bytes_read + other.bytes_read,
        )

    def columns(self) -> dict[str, int]:
        """The stored columns of the same names (models, sweeps)."""
        return asdict(self)

    def per(self, models: int) -> dict[str, float]:
        """Requests per model by quota bucket, as the whole-hub projection reads them."""
        models = max(1, models)
        return {
            "api": self.api_requests / models,
            "resolvers": self.resolver_requests / models,
            "cdn": self.cdn_requests / models,
        }
