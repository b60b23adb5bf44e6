"""The store's tables: one Arrow schema each, versioned so readers can refuse a newer layout."""

from __future__ import annotations

import pyarrow as pa

from pipeline.comparison.records import PAIRS_SCHEMA
from pipeline.fingerprints.model import ModelRecord
from pipeline.fingerprints.tensor import TensorFingerprint

SCHEMA_VERSION = 1

# The models and tensors tables take their columns from the records the fingerprint stage builds.
MODELS = ModelRecord.arrow_schema()
TENSORS = TensorFingerprint.arrow_schema()

FAILURES = pa.schema(
    [
        ("repo_id", pa.string()),
        ("revision", pa.string()),
        ("file", pa.string()),
        ("category", pa.string()),
        ("message", pa.string()),
        ("failed_at", pa.timestamp("us", tz="UTC")),
        ("hubscan_version", pa.string()),
    ]
)

# Weight files by content hash (the LFS sha256): a file already fingerprinted under another
# repo is not read again.
FILES = pa.schema(
    [
        ("sha256", pa.string()),
        ("repo_id", pa.string()),
        ("revision", pa.string()),
        ("file", pa.string()),
        ("size", pa.int64()),
    ]
)

SWEEPS = pa.schema(
    [
        ("sweep_id", pa.string()),
        ("source", pa.string()),
        ("filters", pa.string()),  # JSON of the listing filters
        ("started_at", pa.timestamp("us", tz="UTC")),
        ("ended_at", pa.timestamp("us", tz="UTC")),
        ("status", pa.string()),  # running, done, interrupted
        ("listed", pa.int64()),
        ("done", pa.int64()),
        ("skipped", pa.int64()),
        ("copies", pa.int64()),
        ("failed", pa.int64()),
        ("requests", pa.int64()),
        ("api_requests", pa.int64()),
        ("resolver_requests", pa.int64()),
        ("cdn_requests", pa.int64()),
        ("bytes_read", pa.int64()),
        ("requests_per_model", pa.float64()),
        ("bytes_per_model", pa.float64()),
        ("quota", pa.string()),  # JSON {bucket: [requests, window_s]} as announced by the Hub
        ("projected_hub_hours", pa.float64()),  # whole-hub sweep under that quota
        ("hub_models", pa.int64()),  # model count the projection assumes
        ("projected_hours_anonymous", pa.float64()),  # the same projection under each account's quota
        ("projected_hours_free", pa.float64()),
        ("projected_hours_pro", pa.float64()),
        ("hubscan_version", pa.string()),
    ]
)

# Scored model pairs written by `hubscan flag`, one file replaced per run: the field list of the pair
# record (pipeline.comparison.records), every signal of the signal table included.
PAIRS = PAIRS_SCHEMA

# Layer and expert maps of structurally derived pairs: written by `hubscan flag` for flagged pairs whose
# depth, layer order or MLP structure differ, and by `hubscan compare` for the pair it compares. One row
# per layer (kind "layer") or expert (kind "expert") of the derived side; ``matched`` is false where
# nothing in the other model is beyond chance (then a_/b_ index of the other side is the best cell).
LAYER_MAPS = pa.schema(
    [
        ("a_repo_id", pa.string()),
        ("a_revision", pa.string()),
        ("b_repo_id", pa.string()),
        ("b_revision", pa.string()),
        ("kind", pa.string()),  # "layer", "expert", or "stack" (a two-parent stack's combined map)
        ("derived", pa.string()),  # "a" or "b": the side whose layers / experts are explained
        ("a_layer", pa.int64()),
        ("a_expert", pa.int64()),  # null: not an expert (dense MLP or a layer row)
        ("b_layer", pa.int64()),
        ("b_expert", pa.int64()),
        ("slice_lo", pa.int64()),  # fine-grained expert: rows [lo, hi) of the dense up/gate
        ("slice_hi", pa.int64()),
        ("r", pa.float64()),  # the deciding r (element-aligned sketch, or down col-norm window)
        ("alt_r", pa.float64()),  # best r among the other candidates (experts)
        ("col_norms_r", pa.float64()),  # per-dimension input-column-norm r, reported, never deciding
        ("evidence", pa.string()),  # which signal decided
        ("log10_p", pa.float64()),  # chance-level tail of the deciding r
        ("matched", pa.bool_()),
        ("structure", pa.string()),  # the map's structure (pruned, up-scaled, re-ordered, upcycled-moe...)
        ("summary", pa.string()),
        # kind "stack": the parent the derived layer comes from (this pair's other model or a third one)
        ("parent_repo_id", pa.string()),
        ("parent_revision", pa.string()),
        ("parent_layer", pa.int64()),
        ("source", pa.string()),  # "flag" or "compare"
        ("written_at", pa.timestamp("us", tz="UTC")),
        ("hubscan_version", pa.string()),
    ]
)

TABLES: dict[str, pa.Schema] = {
    "models": MODELS,
    "tensors": TENSORS,
    "failures": FAILURES,
    "files": FILES,
    "sweeps": SWEEPS,
    "pairs": PAIRS,
    "layer_maps": LAYER_MAPS,
}
