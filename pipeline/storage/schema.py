"""The store's tables: one Arrow schema each, versioned so readers can refuse a newer layout."""

from __future__ import annotations

import pyarrow as pa

from pipeline.comparison.signals import SIGNALS, signal_columns
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

_layer_match = pa.struct([("a_layer", pa.int64()), ("b_layer", pa.int64()), ("r", pa.float64())])
_role_match = pa.struct(
    [("role", pa.string()), ("a_layer", pa.int64()), ("b_layer", pa.int64()), ("r", pa.float64())]
)


def _signal_fields(name: str) -> list[tuple[str, pa.DataType]]:
    value, n, lo, hi, p = signal_columns(name)
    return [(value, pa.float64()), (n, pa.int64()), (lo, pa.float64()), (hi, pa.float64()), (p, pa.float64())]


# Scored model pairs written by `hubscan flag`, one file replaced per run: every signal with the
# 5-95 % range unrelated pairs of its block give and its tail probability, the combined p/q-value,
# the verdict and whether a model card declared the relation.
PAIRS = pa.schema(
    [
        ("a_repo_id", pa.string()),
        ("a_revision", pa.string()),
        ("b_repo_id", pa.string()),
        ("b_revision", pa.string()),
        ("hidden", pa.int64()),  # the comparability block
        ("via", pa.string()),  # how the pair became a candidate: exhaustive, lsh, copy_of
        # unknown architecture: the block is the matrices' shapes instead of a hidden size (null otherwise)
        ("layout", pa.string()),
        ("compared", pa.string()),  # unknown architecture: which tensors were matched, by name or by shape
        ("a_layers", pa.int64()),
        ("b_layers", pa.int64()),
        ("a_dtype", pa.string()),
        ("b_dtype", pa.string()),
        *[f for s in SIGNALS for f in _signal_fields(s)],
        ("sketch_same", pa.float64()),  # median r of same-index tensors (1 - it is the cast/drift level)
        ("sketch_identical", pa.float64()),  # fraction of same-index matrices bit-identical
        ("values_identical", pa.float64()),  # fraction of 1-D tensors (norms, biases) bit-identical
        ("layer_map", pa.list_(_layer_match)),  # best sketch match per layer of the shallower model
        ("col_norms_map", pa.list_(_role_match)),  # best col-norm layer pair per role
        ("signals", pa.int64()),  # decisive signals available
        ("score", pa.float64()),  # -log10 of the combined p-value
        ("p", pa.float64()),
        ("q", pa.float64()),  # Benjamini-Hochberg across the run
        ("flagged", pa.bool_()),
        ("verdict", pa.string()),
        ("reason", pa.string()),
        # direct signals low while invariant ones are high (permuted), or the std profile bent while
        # the scale-free element-aligned signal is not (rescaled): a sign of deliberate obfuscation
        ("obfuscation", pa.bool_()),
        ("structure", pa.string()),  # structural kind from the layer/expert map (layer_maps), else null
        ("declared", pa.bool_()),
        ("declared_how", pa.string()),
        ("background_pairs", pa.int64()),  # presumed-unrelated pairs of the block behind the backgrounds
        ("flag_id", pa.string()),
        ("q_level", pa.float64()),
        ("flagged_at", pa.timestamp("us", tz="UTC")),
        ("hubscan_version", pa.string()),
        # licences along the edge (pipeline.comparison.licences): both cards' licences normalised to
        # the Hub's tags, the inferred parent side ("a", "b", "neither") and the licence finding
        ("a_license", pa.string()),
        ("b_license", pa.string()),
        ("parent", pa.string()),
        ("parent_how", pa.string()),
        ("license_finding", pa.string()),  # relicensed, attribution-missing, licence-unknown, or null
        ("license_reason", pa.string()),
    ]
)

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
