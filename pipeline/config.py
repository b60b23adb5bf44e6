"""Run settings: one frozen dataclass, read from the environment once by the job entry point."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

DEFAULT_ENDPOINT = "https://huggingface.co"
# The first header request: huggingface_hub's own helper uses 100 kB, which holds the
# header of every checkpoint up to a few thousand tensors in one request.
HEADER_PROBE_BYTES = 100_000
# The safetensors core refuses headers above 100 MB; anything larger is an attack or garbage.
MAX_HEADER_BYTES = 100_000_000
# Tensors one safetensors header may list. The most a real file needs is a per-expert quantised
# MoE shard (DeepSeek-V3 in bitsandbytes 4-bit: ~270k tensors in the whole model, a few thousand a
# shard; a 1T MoE unsharded would be ~250k). Parsed, each entry costs ~1-2 kB of Python objects, so
# one million tiny tensors in a 60 MB header (under the byte cap) took a worker to 2.2 GB; counted
# before parsing, this cap keeps a header under ~0.5 GB.
MAX_HEADER_ENTRIES = 250_000
# Rows read at each end of a matrix. Head and tail blocks sit next to the neighbouring
# tensors in the file, so one range covers the tail of one matrix and the head of the next.
ROWS_PER_BLOCK = 8
# Blocks per matrix: head and tail only by default (cheapest in requests). Rows differ in
# scale between attention heads, so the std from two blocks tracks the exact std with
# r ≈ 0.94 on MiniLM; 32 blocks of 2 rows give r ≈ 0.995 at one request per block.
MATRIX_BLOCKS = 2
# Embedding tables: EMBED_BLOCKS blocks of this many rows at seeded, stratified positions.
# Per-dimension std is the signal that separates cousins; on MiniLM its estimate tracks the
# exact one with r ≈ 0.49 from 128 rows, 0.87 from 1024, 0.93 from 2048. One request a block.
EMBED_ROWS_PER_BLOCK = 64
EMBED_BLOCKS = 16
# Embedding rows whose token string hashes below this fraction are read too: the same
# tokens are then sampled in every model that has them, whatever their ids, so rows can be
# aligned by token across vocabularies. Each such row costs a request: 1/4000 is ~8 rows
# for a 32k vocabulary, ~62 for 250k; a vocabulary-pruned copy shares fraction × shared tokens.
TOKEN_SAMPLE_FRACTION = 1 / 4000
# Small vocabularies raise the threshold until this many rows are read.
MIN_TOKEN_ROWS = 8
# Tensors are fetched and decoded in batches of at most this many planned bytes, so
# exact mode on a large checkpoint does not hold the whole file in memory.
BATCH_BYTES = 256 * 1024 * 1024
# Two planned ranges closer than this are fetched as one request: a request costs quota,
# a few kB of extra bytes do not.
MERGE_GAP_BYTES = 64 * 1024
# Tensors this small are read whole (norm gains, biases, tiny matrices).
WHOLE_TENSOR_BYTES = 64 * 1024
# Concurrent range requests per file: a layer's requests are independent, so with 50 ms of
# latency 16 in flight finish a 48-request model in 3 round trips instead of 6.
FETCH_CONCURRENCY = 16
# Every request gets a timeout: huggingface_hub's default client has none.
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 60.0
# Retry policy mirrors huggingface_hub's: 5 retries, 1 s doubling to 8 s, Retry-After honoured.
MAX_RETRIES = 5
BACKOFF_BASE_S = 1.0
BACKOFF_MAX_S = 8.0
# Longest Retry-After we are willing to sleep for one request before calling it rate-limited.
MAX_RETRY_AFTER_S = 300.0
# Models in flight at once in a sweep: enough to keep workers busy, few enough that a
# 100k-model listing never piles up in memory (backpressure).
MAX_IN_FLIGHT = 16
# CPUs a fingerprint task reserves: the work waits on the network, so four tasks share a core
# (bench/sweep.py: at 50 ms per request 4 tasks per core keep 93-105 % of the zero-latency
# throughput, one task per core 59-65 %).
TASK_CPUS = 0.25
# Per-model time budget in a sweep task: a sampled read of the largest public checkpoints
# takes well under a minute at 50 ms latency, so 15 minutes only stops a model that hangs
# (a trickling server, a pathological header) without cutting off slow exact reads.
MAX_MODEL_SECONDS = 900.0
# Memory a sweep task may add while reading one model: eight batches of BATCH_BYTES, so
# exact mode fits, yet eight tasks on a 32 GB node cannot exhaust it between them.
MAX_MODEL_MEMORY_BYTES = 8 * BATCH_BYTES
# Quota assumed until the Hub announces one (anonymous, Hub docs Sept 2025): requests per window.
QUOTA_API = 500
QUOTA_RESOLVERS = 3000
QUOTA_WINDOW_S = 300
# Per-window quotas (api, resolvers) by account (Hub rate-limits docs, Sept 2025), for the
# projected whole-hub sweep time a sweep reports next to the quota it was actually given.
HUB_QUOTA_TIERS = {"anonymous": (500, 3000), "free": (1000, 5000), "pro": (2500, 12000)}
# Public models on the Hub, for the projected duration of a whole-hub sweep (order of magnitude, 2025).
HUB_MODEL_COUNT = 2_000_000
# Reuse fingerprints of weight files already stored under another repo (matched by LFS
# sha256). Benchmarks turn it off so replicated repos are really read.
REUSE_KNOWN_FILES = True
# Reading model code (--read-code) costs a resolver request per .py file of every repo: opt-in.
READ_CODE = False
# Loose models a sweep commits before it compacts them: ~4 files each, so the store stays under ~20k
# small files (DuckDB pays ~0.4 ms per file opened: 5,000 files cost 1.9 s per scan, measured).
COMPACT_EVERY = 5000
# Seed of the deterministic sampling positions; changing it changes every sketch.
SAMPLE_SEED = 20250704
# Sketch length cap per matrix (floats kept in the tensors table).
SKETCH_MAX_VALUES = 2048
# A ranged read keeps at most this share more than it asked for: a server that ignores Range
# (a mirror, a CDN answering a multi-range request whole) cannot make a read unbounded.
RANGE_SLACK_FRACTION = 0.05
# ... plus this many bytes, so tiny ranges still tolerate a multipart envelope.
RANGE_SLACK_BYTES = 4096
# A JSON answer (listing page, model info) above this is refused rather than held in memory:
# a 1,000-model listing page with expand=siblings,config is ~5 MB on the Hub.
MAX_JSON_BYTES = 64 * 1024 * 1024
# Whole-request deadline: the read timeout only bounds the gap between two packets, so a
# server dripping a byte a second could hold a worker forever without it.
REQUEST_DEADLINE_S = 300.0
# A file that /resolve/ answers directly (200, not a redirect) and is at most this big is
# fetched whole once and read from memory: the Hub keeps files under 10 MB out of LFS.
SMALL_FILE_BYTES = 10 * 1024 * 1024
# Re-resolve a signed URL this long before it expires (the Hub's live ~1 h), or at a quarter
# of its lifetime when that is shorter, so no read lands on an expired URL.
SIGNED_URL_MARGIN_S = 60.0
# Retries after a connection is refused or a name does not resolve: these do not heal in
# seconds, so one quick retry (a restarting server) rather than five with back-off.
CONNECT_RETRIES = 1
CONNECT_RETRY_S = 0.2
# Ranges per CDN request (`Range: bytes=a-b,c-d,...`); 0 keeps one range per request. Off by
# default: the Hub's CDN behaviour is undocumented (S3 refuses multi-range, CloudFront answers
# unordered ones whole), and CDN requests are in no quota: they cost latency, not the sweep.
MULTIRANGE_RANGES = 0
# Bytes a multipart answer may spend per part on its boundary and headers.
MULTIPART_PART_OVERHEAD = 256
# Listing pages one sweep follows: the whole Hub (3.1 million repos, Oct 2026) is 3,118 pages of
# 1,000, so ten thousand leaves room to grow and still ends a listing whose links never end.
MAX_LISTING_PAGES = 10_000


@dataclass(frozen=True)
class Settings:
    """Everything a job passes to its stages; stages never read the environment."""

    endpoint: str = DEFAULT_ENDPOINT
    token: str | None = None
    store: str | Path = "hubscan-store"  # a folder, or s3:// gs:// for object storage
    exact: bool = False
    seed: int = SAMPLE_SEED
    rows_per_block: int = ROWS_PER_BLOCK
    matrix_blocks: int = MATRIX_BLOCKS
    embed_rows_per_block: int = EMBED_ROWS_PER_BLOCK
    embed_blocks: int = EMBED_BLOCKS
    token_sample_fraction: float = TOKEN_SAMPLE_FRACTION
    min_token_rows: int = MIN_TOKEN_ROWS
    batch_bytes: int = BATCH_BYTES
    merge_gap_bytes: int = MERGE_GAP_BYTES
    whole_tensor_bytes: int = WHOLE_TENSOR_BYTES
    header_probe_bytes: int = HEADER_PROBE_BYTES
    max_header_bytes: int = MAX_HEADER_BYTES
    fetch_concurrency: int = FETCH_CONCURRENCY
    connect_timeout_s: float = CONNECT_TIMEOUT_S
    read_timeout_s: float = READ_TIMEOUT_S
    max_retries: int = MAX_RETRIES
    backoff_base_s: float = BACKOFF_BASE_S
    backoff_max_s: float = BACKOFF_MAX_S
    max_retry_after_s: float = MAX_RETRY_AFTER_S
    sketch_max_values: int = SKETCH_MAX_VALUES
    max_in_flight: int = MAX_IN_FLIGHT
    task_cpus: float = TASK_CPUS
    quota_api: int = QUOTA_API
    quota_resolvers: int = QUOTA_RESOLVERS
    quota_window_s: float = QUOTA_WINDOW_S
    hub_model_count: int = HUB_MODEL_COUNT
    ray_address: str | None = None
    reuse_known_files: bool = REUSE_KNOWN_FILES
    # The folder of org/name repos the endpoint serves (the demo hub), recorded with each model
    # as models.local_dir so whole matrices are read from disk once the server has stopped.
    hub_folder: Path | None = None
    read_code: bool = READ_CODE
    range_slack_fraction: float = RANGE_SLACK_FRACTION
    range_slack_bytes: int = RANGE_SLACK_BYTES
    max_json_bytes: int = MAX_JSON_BYTES
    request_deadline_s: float = REQUEST_DEADLINE_S
    small_file_bytes: int = SMALL_FILE_BYTES
    signed_url_margin_s: float = SIGNED_URL_MARGIN_S
    connect_retries: int = CONNECT_RETRIES
    connect_retry_s: float = CONNECT_RETRY_S
    multirange_ranges: int = MULTIRANGE_RANGES
    compact_every: int = COMPACT_EVERY
    max_model_seconds: float = MAX_MODEL_SECONDS
    max_model_memory_bytes: int = MAX_MODEL_MEMORY_BYTES
    max_listing_pages: int = MAX_LISTING_PAGES
    max_header_entries: int = MAX_HEADER_ENTRIES

    def with_(self, **changes: object) -> Settings:
        """A copy with some fields changed."""
        return replace(self, **changes)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        # The token must never reach a log line or a Ray dashboard.
        shown = "***" if self.token else None
        return f"Settings(endpoint={self.endpoint!r}, token={shown!r}, store={str(self.store)!r}, exact={self.exact})"


def settings_from_env(env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Read HUBSCAN_* / HF_ENDPOINT / HF_TOKEN once, at the entry point."""
    env = os.environ if env is None else env
    base = Settings(
        endpoint=env.get("HF_ENDPOINT", DEFAULT_ENDPOINT).rstrip("/"),
        # Stripped: a token Secret made from a file often ends in a newline, which breaks the header.
        token=(env.get("HF_TOKEN") or env.get("HUGGING_FACE_HUB_TOKEN") or "").strip() or None,
        store=env.get("HUBSCAN_STORE", "hubscan-store"),
        exact=env.get("HUBSCAN_EXACT", "") in ("1", "true", "yes"),
        ray_address=env.get("RAY_ADDRESS") or None,
    )
    return base.with_(**{k: v for k, v in overrides.items() if v is not None})
