"""A calibrated pair judged once: its verdict (signals and layer/expert map together) and its licence edge.

The last pure step of `hubscan flag` and `hubscan compare`: the scorer's working rows, the
structures the maps found and the models' licences become the frozen ``ScoredPair`` records.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime

from hubscan.pipeline.comparison.direction import DECLARED, Edge, ModelFacts, direct
from hubscan.pipeline.comparison.licences import edge_finding
from hubscan.pipeline.comparison.records import ScoredPair, signal_values
from hubscan.pipeline.comparison.structure import PairStructure
from hubscan.pipeline.comparison.verdicts import decide
from hubscan.pipeline.comparison.working_row import WorkingRow
from hubscan.pipeline.keys import ModelKey, PairKey


@dataclass(frozen=True)
class ModelLicence:
    """What the licence of one stored model revision and its place in time say."""

    license: str | None
    created_at: datetime | None
    base_models: tuple[str, ...]
    vocab: int | None = None
    base_relations: tuple[str, ...] = ()  # "relation:base" (the Hub's base_model:<relation>:<id> tags)

    def facts(self, repo_id: str, dtype: str | None) -> ModelFacts:
        """What the direction of an edge may use of this model."""
        pairs = (r.split(":", 1) for r in self.base_relations if ":" in r)
        relations = {base: relation for relation, base in pairs}
        return ModelFacts(repo_id, dtype, self.created_at, self.base_models, self.vocab, relations)


_NO_LICENCE = ModelLicence(None, None, ())


def judge_pairs(
    rows: list[WorkingRow],
    structures: Mapping[PairKey, PairStructure] | None = None,
    derived: Mapping[PairKey, str] | None = None,
    licences: Mapping[ModelKey, ModelLicence] | None = None,
) -> list[ScoredPair]:
    """The records of scored rows: ``rows`` is consumed, each row freed once its record is made.

    ``structures``: what the layer/expert map showed of the pairs that were mapped; ``derived``: the
    side each map explains; ``licences``: each model's (none given: pairs judged on their signals alone).
    """
    structures, derived, licences = structures or {}, derived or {}, licences or {}
    bases = {k[0]: m.base_models for k, m in licences.items()}
    out = []
    # from the end of the reversed list, so a million pairs are not held as both rows and records
    rows.reverse()
    while rows:
        out.append(judge(rows.pop(), structures, derived, licences, bases))
    return out


@dataclass(frozen=True)
class _EdgeColumns:
    """The columns a flagged pair's edge sets: its direction and the licence finding along it."""

    parent: str | None = None
    parent_how: str | None = None
    parent_evidence: str | None = None
    declared_finding: str | None = None
    license_finding: str | None = None
    license_reason: str | None = None


def judge(
    row: WorkingRow,
    structures: Mapping[PairKey, PairStructure],
    derived: Mapping[PairKey, str],
    licences: Mapping[ModelKey, ModelLicence],
    bases: Mapping[str, tuple[str, ...]],
) -> ScoredPair:
    """One scored row's record, its verdict decided here and nowhere else."""
    pair = row.pair
    key = pair.key
    mapped = structures.get(key)
    structure = mapped.structure if mapped else None
    name, reason, obfuscated = decide(row, structure, mapped.summary if mapped else "")
    a, b = licences.get(pair.a, _NO_LICENCE), licences.get(pair.b, _NO_LICENCE)
    edge = _EdgeColumns()
    if row.flagged:
        facts = _Facts(bases, {key[0]: a.facts(key[0], row.a_dtype), key[2]: b.facts(key[2], row.b_dtype)})
        score = float(row.score or 0.0)
        way = direct(Edge(key[0], key[2], name, score, structure, derived.get(key)), facts)
        parent = parent_side(key[0], key[2], way.parent, way.kind, way.how)
        found = edge_finding(key[0], a.license, key[2], b.license, parent, bool(row.declared))
        edge = _EdgeColumns(parent, way.how, way.kind, way.finding, found.kind if found else None,
                            found.reason if found else None)  # fmt: skip
    return ScoredPair(
        a_repo_id=pair.a_repo_id,
        a_revision=pair.a_revision,
        b_repo_id=pair.b_repo_id,
        b_revision=pair.b_revision,
        hidden=pair.hidden,
        via=pair.via,
        layout=pair.layout,
        compared=row.compared,
        a_layers=row.a_layers,
        b_layers=row.b_layers,
        a_dtype=row.a_dtype,
        b_dtype=row.b_dtype,
        by_signal=signal_values(row),
        sketch_same=row.sketch_same,
        sketch_identical=row.sketch_identical,
        values_identical=row.values_identical,
        layer_map=row.layer_map,
        col_norms_map=row.col_norms_map,
        signals=row.signals,
        score=row.score,
        p=row.p,
        q=row.q,
        flagged=row.flagged,
        verdict=name,
        reason=reason,
        obfuscation=obfuscated,
        structure=structure,
        declared=row.declared,
        declared_how=row.declared_how,
        background_pairs=row.background_pairs,
        q_level=row.q_level,
        a_license=a.license,
        b_license=b.license,
        parent=edge.parent,
        parent_how=edge.parent_how,
        license_finding=edge.license_finding,
        license_reason=edge.license_reason,
        parent_evidence=edge.parent_evidence,
        declared_finding=edge.declared_finding,
        matches=row.matches,
    )


def parent_side(a: str, b: str, parent: str | None, kind: str, how: str) -> str | None:
    """The ``parent`` column: "a", "b", "neither" (declared siblings) or None (unknown)."""
    if parent is not None:
        return "a" if parent == a else "b"
    return "neither" if kind == DECLARED and how.startswith("siblings") else None


class _Facts(Mapping[str, ModelFacts]):
    """Every model's facts for the declared chains, the pair's own with their dtypes (from the row)."""

    def __init__(self, bases: Mapping[str, tuple[str, ...]], own: dict[str, ModelFacts]) -> None:
        self.bases, self.own = bases, own

    def __getitem__(self, repo_id: str) -> ModelFacts:
        if repo_id in self.own:
            return self.own[repo_id]
        return ModelFacts(repo_id, base_models=tuple(self.bases[repo_id]))

    def __iter__(self) -> Iterator[str]:
        return iter(self.bases)

    def __len__(self) -> int:
        return len(self.bases)
