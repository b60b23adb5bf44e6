"""Progress of a sweep on stderr (rich), and the one-screen summary at the end."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

if TYPE_CHECKING:
    from hubscan.pipeline.runtime.sweep_state import Projection, SweepState


class SweepProgress:
    """models done / failed / skipped, bytes read, rate and ETA, redrawn as tasks finish."""

    def __init__(self, state: SweepState, total: int | None) -> None:
        self.state = state
        self.console = Console(stderr=True, soft_wrap=True)
        self.started = time.monotonic()
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[counts]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self.task = self.progress.add_task(state.sweep_id, total=total, counts="")

    def __enter__(self) -> SweepProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.update()
        self.progress.stop()

    def update(self) -> None:
        """Redraw the counters."""
        s = self.state
        finished = s.done + s.failed + s.skipped + s.planned
        rate = s.done / max(1e-9, (time.monotonic() - self.started) / 60)
        counts = (
            f"{s.done} done ({s.copies} copies) · {s.failed} failed · {s.skipped} skipped · "
            f"{s.counts.bytes_read / 1e6:,.1f} MB · {rate:,.1f} models/min"
        )
        self.progress.update(self.task, completed=finished, counts=counts)

    def summary(self, projection: Projection) -> None:
        """One screen: what was covered, what it cost, and what a whole-hub sweep would take."""
        s = self.state
        c = s.counts
        models = max(1, s.done + s.failed)
        table = Table(title=f"sweep {s.sweep_id} ({s.source})", show_header=False)
        table.add_row("listed", f"{s.listed:,}")
        table.add_row("fingerprinted", f"{s.done:,} ({s.copies:,} exact copies, no weights read)")
        table.add_row("skipped (already stored)", f"{s.skipped:,}")
        by = ", ".join(f"{c} {n:,}" for c, n in s.failed_by.most_common())
        table.add_row("failed", f"{s.failed:,} ({by})" if by else f"{s.failed:,}")
        if s.planned:
            table.add_row("would fingerprint (plan only)", f"{s.planned:,}")
        table.add_row(
            "requests",
            f"{c.requests:,} ({c.api_requests:,} API, {c.resolver_requests:,} resolvers, {c.cdn_requests:,} CDN)",
        )
        table.add_row("bytes read", f"{c.bytes_read:,} ({c.bytes_read / models / 1e6:,.2f} MB per model)")
        per = projection.per_model
        table.add_row(
            "requests per model",
            f"{per['api']:.2f} API + {per['resolvers']:.1f} resolvers (quota) + {per['cdn']:.1f} CDN (no quota)",
        )
        if per["api"] + per["resolvers"] > 0:
            self._projection_rows(table, projection)
        self.console.print(table)
        for message in s.failures[:10]:
            self.console.print(f"fail {message}", markup=False, highlight=False)
        if len(s.failures) > 10:
            self.console.print(f"… and {len(s.failures) - 10} more in the failures table", markup=False)

    @staticmethod
    def _projection_rows(table: Table, projection: Projection) -> None:
        """Whole-hub hours: only from a sweep that made quota-counted requests (a local one projects 0 h)."""
        quota = ", ".join(f"{b} {q}/{w}s" for b, (q, w) in projection.quota.items())
        table.add_row("whole-hub sweep", f"{projection.hours:,.0f} h under quota {quota}")
        tiers = projection.tiers
        table.add_row(
            "  by account",
            f"anonymous {tiers['anonymous']:,.0f} h, free {tiers['free']:,.0f} h, PRO {tiers['pro']:,.0f} h"
            f" (CDN {projection.cdn_per_s_pro:,.0f} requests/s at the PRO pace)",
        )
