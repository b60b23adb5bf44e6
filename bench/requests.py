"""What a model costs in the Hub's request quota, under every server shape, side by side.

``python -m bench.requests [--quick]`` serves the demo hub's real checkpoints and the 2.2 GB
two-shard Llama-shaped checkpoint of bench/reading.py through FakeHub, and fingerprints each
model from an expanded listing entry (as a sweep does) under: the Hub's shape (302 to a signed
CDN URL) at 0 and 50 ms latency; a plain mirror answering `/resolve/` itself; and a CDN that
ignores Range. It prints, per model, the quota-counted requests by bucket, CDN requests,
bytes received vs planned and wall time, then the whole-hub projection per account.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from typing import Any

from bench.reading import HUB_ROOT, prepare_models
from bench.results import recorded
from hubscan.pipeline.chain.model_task import fingerprint_model
from hubscan.pipeline.config import HUB_QUOTA_TIERS, QUOTA_WINDOW_S, TASK_CPUS, Settings
from hubscan.pipeline.http import HubHttp
from hubscan.pipeline.runtime.sweep import whole_hub_hours
from hubscan.pipeline.runtime.sweep_state import LISTING_EXPAND
from hubscan.pipeline.sources import hf
from hubscan.testbed.fakehub import FakeHub, RequestRecord

LATENCY_S = 0.05
# Ranges per CDN request in the multi-range rows (the fake CDN answers multipart).
MULTIRANGE_RANGES = 16
# Targets from issue 9.
RESOLVERS_PER_FILE_TARGET, API_PER_MODEL_TARGET, BYTES_RATIO_TARGET = 1, 0.01, 1.05
PRO_HOURS_TARGET, ANONYMOUS_HOURS_TARGET = 24.0, 96.0


@dataclass
class Run:
    """One model read once under one server shape, as the server's log counted it."""

    mode: str
    ok: bool
    api: int
    resolvers: int
    cdn: int
    received: int  # body bytes the client received (HubHttp's log), kept or not
    sent: int  # body bytes the server wrote for file requests (kernel buffers hold some never read)
    planned: int  # bytes the ranges asked for (sum of Range lengths; whole-file asks count the file)
    seconds: float
    weight_files: int
    note: str = ""


def _range_len(record: RequestRecord, size: int) -> int:
    if not record.range:
        return size
    total = 0
    for part in record.range.removeprefix("bytes=").split(","):
        first, _, last = part.partition("-")
        total += int(last) - int(first) + 1 if first and last else size
    return total


def listing_entry(http: HubHttp, repo_id: str) -> dict[str, Any]:
    """The model's expanded listing entry, as a sweep gets it."""
    params = {"search": repo_id, "expand": list(LISTING_EXPAND), "limit": 1000}
    for entry in hf.list_models(http, params):
        if entry["id"] == repo_id:
            return entry
    raise SystemExit(f"bench: {repo_id} is not listed")


def measure(hub: FakeHub, repo_id: str, mode: str) -> Run:
    """Fingerprint ``repo_id`` once from its listing entry; counts come from the server's log."""
    multi = MULTIRANGE_RANGES if mode.startswith("hub multi") else 0
    settings = Settings(endpoint=hub.url, reuse_known_files=False, multirange_ranges=multi)
    http = HubHttp(settings)
    ref = hf.model_ref_from_info(listing_entry(http, repo_id))
    hub.log.clear()
    started = time.perf_counter()
    outcome = fingerprint_model(ref, settings, http)
    seconds = time.perf_counter() - started
    records = hub.log.snapshot()
    sizes = {f.name: (HUB_ROOT / repo_id / f.name).stat().st_size for f in ref.files}
    file_records = [r for r in records if r.filename]
    row = outcome.model_row or {}
    return Run(
        mode=mode,
        ok=outcome.ok,
        api=sum(1 for r in records if r.origin == "hub" and r.path.startswith("/api/")),
        resolvers=sum(1 for r in records if r.origin == "hub" and "/resolve/" in r.path),
        cdn=sum(1 for r in records if r.origin == "cdn"),
        received=outcome.bytes_received - sum(r.bytes_sent for r in records if r.path.startswith("/api/")),
        sent=sum(r.bytes_sent for r in file_records),
        planned=sum(_range_len(r, sizes.get(r.filename or "", 0)) for r in file_records if r.status != 302),
        seconds=seconds,
        weight_files=len(row.get("files") or []),
        note="" if outcome.ok else str(outcome.errors[0])[-70:],
    )


def bench_model(hub: FakeHub, repo_id: str) -> list[Run]:
    """The model under each server shape, one after another on the same FakeHub."""
    runs = []
    for mode in ("hub", "hub+50ms", "hub multi", "hub multi+50ms", "mirror", "ignores-range"):
        hub.reset()
        hub.cdn = mode != "mirror"
        hub.latency = LATENCY_S if mode.endswith("50ms") else 0.0
        hub.ignore_range = mode == "ignores-range"
        runs.append(measure(hub, repo_id, mode))
    hub.reset()
    hub.cdn = True
    return runs


def listing_cost(hub: FakeHub, models: int) -> tuple[int, int]:
    """(API calls, models listed) for a full expanded listing of ``models`` synthetic entries."""
    hub.reset()
    hub.synthetic_models, hub.page_size = models, 1000
    http = HubHttp(Settings(endpoint=hub.url))
    listed = sum(1 for _ in hf.list_models(http, {"expand": list(LISTING_EXPAND), "limit": 1000}))
    calls = len(hub.log.where(path="/api/models"))
    hub.reset()
    return calls, listed


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(x) for x in col) for col in zip(header, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def report(results: dict[str, list[Run]]) -> str:
    """One row per model and server shape."""
    header = [
        "model",
        "server",
        "ok",
        "API",
        "resolvers",
        "per file",
        "CDN",
        "planned MB",
        "received MB",
        "recv/plan",
        "sent MB",
        "wall s",
    ]
    rows = []
    for repo_id, runs in results.items():
        for run in runs:
            per_file = run.resolvers / max(1, run.weight_files)
            ratio = run.received / run.planned if run.planned else 0.0
            rows.append(
                [repo_id if run.mode == "hub" else "", run.mode, "yes" if run.ok else "no", str(run.api),
                 str(run.resolvers), f"{per_file:.1f}", str(run.cdn), f"{run.planned / 1e6:.2f}",
                 f"{run.received / 1e6:.2f}", f"{ratio:.3f}", f"{run.sent / 1e6:.2f}", f"{run.seconds:.2f}"]
            )  # fmt: skip
    failures = [f"  {m} {r.mode}: {r.note}" for m, runs in results.items() for r in runs if not r.ok]
    return _table(header, rows) + ("\n" + "\n".join(failures) if failures else "")


def projection(results: dict[str, list[Run]], hub_models: int) -> str:
    """Whole-hub hours per account from the demo hub's mean quota cost per model (Hub shape)."""
    runs = [r for rs in results.values() for r in rs if r.mode == "hub" and r.ok]
    slow = [r for rs in results.values() for r in rs if r.mode == "hub+50ms" and r.ok]
    n = max(1, len(runs))
    # A sweep's listing costs one API call per page of 1,000 models; no per-model API call.
    per_model = {
        "api": 1 / 1000,
        "resolvers": sum(r.resolvers for r in runs) / n,
        "cdn": sum(r.cdn for r in runs) / n,
    }
    settings = Settings(hub_model_count=hub_models)
    lines = [
        f"mean per model (Hub shape, {n} models): {per_model['api']:.3f} API + {per_model['resolvers']:.2f} "
        f"resolvers (quota) + {per_model['cdn']:.1f} CDN (no quota)"
    ]
    wall_50 = sum(r.seconds for r in slow) / max(1, len(slow))
    for tier, (api, res) in HUB_QUOTA_TIERS.items():
        quota = {"api": (api, int(QUOTA_WINDOW_S)), "resolvers": (res, int(QUOTA_WINDOW_S))}
        hours = whole_hub_hours(per_model, quota, settings)
        models_per_s = hub_models / (hours * 3600)
        tasks = models_per_s * wall_50
        lines.append(
            f"  {tier:9} {hours:8,.1f} h for {hub_models:,} models: {models_per_s:,.1f} models/s, "
            f"CDN {models_per_s * per_model['cdn']:,.0f} requests/s; at 50 ms latency ({wall_50:.2f} s/model) "
            f"{tasks:,.0f} concurrent tasks = {tasks * TASK_CPUS:,.0f} CPUs"
        )
    return "\n".join(lines)


def verdicts(results: dict[str, list[Run]], listing: tuple[int, int], hub_models: int) -> list[str]:
    """Each target of issue 9: met or not, with the figure."""
    hub_runs = [r for rs in results.values() for r in rs if r.mode == "hub" and r.ok]
    worst_per_file = max(
        (r.resolvers - 1) / max(1, r.weight_files) for r in hub_runs
    )  # - 1 for the tokenizer
    ratios = [r.received / r.planned for rs in results.values() for r in rs if r.planned]
    calls, listed = listing
    per_model = {
        "api": calls / max(1, listed),
        "resolvers": sum(r.resolvers for r in hub_runs) / max(1, len(hub_runs)),
    }
    settings = Settings(hub_model_count=hub_models)
    hours = {
        tier: whole_hub_hours(
            per_model, {"api": (a, int(QUOTA_WINDOW_S)), "resolvers": (q, int(QUOTA_WINDOW_S))}, settings
        )
        for tier, (a, q) in HUB_QUOTA_TIERS.items()
    }
    met = lambda ok: "met" if ok else "NOT met"  # noqa: E731
    return [
        f"  resolvers per weight file ≤ {RESOLVERS_PER_FILE_TARGET} (+1 tokenizer): worst {worst_per_file:.2f}: {met(worst_per_file <= 1)}",
        f"  API calls per model on a listing ≤ {API_PER_MODEL_TARGET}: {calls} calls for {listed:,} models = {per_model['api']:.4f}: {met(per_model['api'] <= API_PER_MODEL_TARGET)}",
        f"  bytes received ≤ {BYTES_RATIO_TARGET} × planned under every server shape: worst {max(ratios):.3f}: {met(max(ratios) <= BYTES_RATIO_TARGET)}",
        f"  whole hub ≤ {PRO_HOURS_TARGET:.0f} h on one PRO token: {hours['pro']:.1f} h: {met(hours['pro'] <= PRO_HOURS_TARGET)}",
        f"  whole hub ≤ {ANONYMOUS_HOURS_TARGET:.0f} h anonymous: {hours['anonymous']:.1f} h: {met(hours['anonymous'] <= ANONYMOUS_HOURS_TARGET)}",
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Build what is missing, serve it, measure every model under every shape, print the tables."""
    parser = argparse.ArgumentParser(prog="python -m bench.requests", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="all-MiniLM-L6-v2 only, no 2.2 GB checkpoint")
    parser.add_argument(
        "--listing", type=int, default=100_000, help="synthetic models in the listing-cost run"
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    models = prepare_models(args.quick)
    hub_models = Settings().hub_model_count
    results: dict[str, list[Run]] = {}
    with FakeHub(HUB_ROOT) as hub:
        for repo_id in models:
            print(f"bench: {repo_id}", file=sys.stderr)
            results[repo_id] = bench_model(hub, repo_id)
        listing = listing_cost(hub, args.listing)
    print(
        "hubscan request economy — FakeHub on 127.0.0.1 serving real checkpoints, one read per row\n"
        "  hub = /resolve/ answers 302 to a signed URL on a second origin (the Hub's shape); hub+50ms = the same\n"
        "  with 50 ms added to every response; mirror = /resolve/ serves the file itself (HF_ENDPOINT mirror);\n"
        "  ignores-range = the CDN answers every ranged GET with the whole file (200); hub multi = up to\n"
        f"  {MULTIRANGE_RANGES} ranges per CDN request (multipart/byteranges), single-range otherwise.\n"
        "  API / resolvers = requests in the Hub's quota buckets (the listing call excluded); CDN = requests to the\n"
        "  signed URL's origin, in no bucket; per file = resolvers / weight files (the tokenizer is one more);\n"
        "  planned = bytes the file requests asked for; received = body bytes the client took off the wire;\n"
        "  sent = bytes the server wrote (a Range-ignoring answer fills socket buffers the client never reads).\n"
    )
    print(report(results))
    print(f"\nlisting: {listing[0]} API calls for {listing[1]:,} models (expand={','.join(LISTING_EXPAND)})")
    print("\nwhole-hub projection:")
    print(projection(results, hub_models))
    print("\ntargets:")
    print("\n".join(verdicts(results, listing, hub_models)))
    print(f"\ntotal bench time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    with recorded(
        "Request economy (quick: all-MiniLM-L6-v2 only)" if "--quick" in sys.argv else "Request economy"
    ):
        raise SystemExit(main())
