"""The store's tables: one Arrow schema each, versioned so readers can refuse a newer layout."""

from __future__ import annotations

import pyarrow as pa

from hubscan.pipeline.comparison.records import PAIRS_SCHEMA
from hubscan.pipeline.fingerprints.model import ModelRecord
from hubscan.pipeline.fingerprints.tensor import TensorFingerprint
from hubscan.pipeline.storage.sweep_record import SweepRecord

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

SWEEPS = SweepRecord.arrow_schema()

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
