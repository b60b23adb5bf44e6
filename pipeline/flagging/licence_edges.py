"""The store side of the licence edges: each stored model's normalised licence, and its code notices.

pipeline.comparison.judge turns them into each pair's licences, inferred parent and finding.
"""

from __future__ import annotations

from collections.abc import Iterable

from hubscan.pipeline.comparison.judge import ModelLicence
from hubscan.pipeline.comparison.licences import normalise
from hubscan.pipeline.keys import ModelKey
from hubscan.pipeline.storage.parquet import Store


def model_licences(store: Store) -> dict[ModelKey, ModelLicence]:
    """Normalised licence, creation time, declared bases (with the Hub's relations) and vocabulary of
    every committed model: what the licence edge and the edge's direction need."""
    cols = [
        "repo_id",
        "revision",
        "license",
        "license_name",
        "created_at",
        "base_models",
        "vocab",
        "base_relations",
    ]
    rows = store.dataset("models").to_table(columns=cols).to_pylist()
    return {
        (r["repo_id"], r["revision"]): ModelLicence(
            normalise(r["license"], r["license_name"]),
            r["created_at"],
            tuple(r["base_models"] or ()),
            r["vocab"],
            tuple(r["base_relations"] or ()),
        )
        for r in rows
    }


def code_notices(store: Store, keys: Iterable[ModelKey]) -> dict[str, list[str]]:
    """repo_id -> the code header lines a --read-code sweep recorded (models whose code was read only)."""
    wanted = set(keys)
    rows = store.dataset("models").to_table(columns=["repo_id", "revision", "code_notices"]).to_pylist()
    return {
        r["repo_id"]: list(r["code_notices"])
        for r in rows
        if (r["repo_id"], r["revision"]) in wanted and r["code_notices"] is not None
    }
