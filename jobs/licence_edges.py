"""Licences on every scored pair: both models' normalised licences, the inferred parent, the finding.

The store side of pipeline.comparison.licences and parentage: `hubscan flag` and `hubscan compare`
call ``attach_licences`` once their rows are scored and mapped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa

from pipeline.comparison.licences import edge_finding, normalise
from pipeline.comparison.parentage import infer_parent
from pipeline.comparison.scoring import pair_key
from pipeline.keys import ModelKey
from pipeline.storage.parquet import Store


@dataclass(frozen=True)
class ModelLicence:
    """What the licence of one stored model revision and its place in time say."""

    license: str | None
    created_at: datetime | None
    base_models: tuple[str, ...]


def model_licences(store: Store) -> dict[ModelKey, ModelLicence]:
    """Normalised licence, creation time and declared bases of every committed model."""
    cols = ["repo_id", "revision", "license", "license_name", "created_at", "base_models"]
    rows = store.dataset("models").to_table(columns=cols).to_pylist()
    return {
        (r["repo_id"], r["revision"]): ModelLicence(
            normalise(r["license"], r["license_name"]), r["created_at"], tuple(r["base_models"] or ())
        )
        for r in rows
    }


def derived_sides(maps: pa.Table) -> dict[tuple[str, str, str, str], str]:
    """For each mapped pair, the side ("a" or "b") its layer / expert map explains."""
    out: dict[tuple[str, str, str, str], str] = {}
    for m in maps.to_pylist():
        if m["derived"] in ("a", "b"):
            out.setdefault(pair_key(m), m["derived"])
    return out


def attach_licences(store: Store, rows: Iterable[dict[str, Any]], maps: pa.Table) -> None:
    """Set a_license, b_license on every row, and parent, parent_how and the finding on flagged ones."""
    models = model_licences(store)
    bases = {k[0]: m.base_models for k, m in models.items()}
    derived = derived_sides(maps)
    none = ModelLicence(None, None, ())
    for row in rows:
        k = pair_key(row)
        a, b = models.get(k[:2], none), models.get(k[2:], none)
        row["a_license"], row["b_license"] = a.license, b.license
        if not row.get("flagged"):
            continue
        parent, how = infer_parent(
            k[0], k[2], bases, row.get("structure"), derived.get(k), (a.created_at, b.created_at)
        )
        row["parent"], row["parent_how"] = parent, how
        found = edge_finding(k[0], a.license, k[2], b.license, parent, bool(row.get("declared")))
        row["license_finding"] = found.kind if found else None
        row["license_reason"] = found.reason if found else None


def code_notices(store: Store, keys: Iterable[ModelKey]) -> dict[str, list[str]]:
    """repo_id -> the code header lines a --read-code sweep recorded (models whose code was read only)."""
    wanted = set(keys)
    rows = store.dataset("models").to_table(columns=["repo_id", "revision", "code_notices"]).to_pylist()
    return {
        r["repo_id"]: list(r["code_notices"])
        for r in rows
        if (r["repo_id"], r["revision"]) in wanted and r["code_notices"] is not None
    }
