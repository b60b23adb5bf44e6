"""Which side of a flagged edge was made from which, and the evidence that says so, strongest first.

An investigator's first question of an edge. The evidence, in the order it is trusted:

1. declared: a card's ``base_model`` (and the Hub's ``base_model:<relation>:<id>`` tag) names the
   other side; a declared relation the weights contradict is a finding of its own;
2. merge: the mixture is the child of each parent it was fitted from;
3. structure: the pruned, stacked, up-scaled, upcycled or vocabulary-pruned side is derived;
4. precision: of a cast or quantised copy, the side with fewer bits per weight is the child;
5. creation time: ``createdAt`` at least a day apart (releases and their quantisations are often
   uploaded within hours of each other, in either order);
6. a star's centre: the model most of its relatives are each closest to is their parent;

otherwise the direction is unknown, and said so.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from hubscan.pipeline.comparison.lineage import ancestors
from hubscan.pipeline.comparison.parentage import DIRECTIONAL
from hubscan.pipeline.comparison.verdicts import (
    CAST_COPY,
    EXACT_COPY,
    FINE_TUNE,
    LOW_RANK_FINE_TUNE,
    REPARAM_FINE_TUNE,
    VOCAB_COPY,
)

# Creation times closer than this do not order two repos (see module docstring).
MIN_CREATED_GAP = timedelta(days=1)
# A vocabulary this many times another's was cut down to it (a multilingual vocabulary pruned to
# one language keeps a fifth of it); tokens added to a vocabulary are a few percent, not a direction.
MIN_PRUNED_RATIO = 1.5
# Verdicts that say one side was made from the other by changing weights: what a star's centre may order.
DERIVED_VERDICTS = frozenset({FINE_TUNE, CAST_COPY, LOW_RANK_FINE_TUNE, REPARAM_FINE_TUNE})
# A star's centre is the nearest relative of at least this many of the models it links.
MIN_CENTRE = 2

DECLARED, MERGE, STRUCTURE, PRECISION, CREATED, CENTRE, UNKNOWN = (
    "declared", "merge", "structure", "precision", "created", "centre", "unknown",
)  # fmt: skip
# What each Hub relation says the weights should show (base_model:<relation>:<id> tags).
RELATION_VERDICTS: dict[str, frozenset[str]] = {
    "quantized": frozenset({CAST_COPY, EXACT_COPY, VOCAB_COPY}),
    "finetune": frozenset({FINE_TUNE}),
}
# Bits per weight named in a dtype, format names included (BF16, Q4_K, MLX-int4-g64, NF4-dq, NVFP4, ...).
_BITS = [
    (re.compile(r"^(F|FP)64"), 64.0),
    (re.compile(r"^(F|FP)32"), 32.0),
    (re.compile(r"^(BF|F|FP)16"), 16.0),
    (re.compile(r"(^|[^A-Z])(NF4|FP4|NVFP4|MXFP4)"), 4.0),
    (re.compile(r"(F8|FP8|E4M3|E5M2)"), 8.0),
    (re.compile(r"(INT|I|Q|INT-?)([2-8])(?![0-9])"), -1.0),  # the digit is the width
]


@dataclass(frozen=True)
class ModelFacts:
    """What a model's own record says about its origin."""

    repo_id: str
    dtype: str | None = None
    created_at: datetime | None = None
    base_models: tuple[str, ...] = ()
    vocab: int | None = None
    # declared base -> the Hub's relation for it (finetune, adapter, quantized, merge)
    relations: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Edge:
    """A flagged pair as judged: its verdict and what the maps and the merge fit said of its sides."""

    a: str
    b: str
    verdict: str
    score: float
    structure: str | None = None
    derived: str | None = None  # "a" | "b": the side a directional layer / expert map explains
    merge_child: str | None = None  # the side that is a merge of the other (and others)


@dataclass(frozen=True)
class Direction:
    """An edge with its direction: ``parent`` -> ``child`` (both None when unknown)."""

    parent: str | None
    child: str | None
    kind: str  # which evidence decided: one of the names above
    how: str  # that evidence in words
    finding: str | None = None  # a declaration the weights contradict


def direct(
    edge: Edge, facts: Mapping[str, ModelFacts], centres: Mapping[str, int] | None = None
) -> Direction:
    """The direction of one edge from the strongest evidence that orders it.

    ``facts`` holds every model's record facts (declared chains are followed through all of them);
    ``centres`` how many models have each model as their nearest relative (``nearest_counts``).
    """
    fa = facts.get(edge.a, ModelFacts(edge.a))
    fb = facts.get(edge.b, ModelFacts(edge.b))
    finding = contradiction(edge, fa, fb)
    found = _declared(fa, fb, facts)
    for rule in (_merge, _structure, _precision, _created):
        found = found or rule(edge, fa, fb)
    if found is not None:
        return Direction(*found, finding)
    centre = _centre(edge, centres or {})
    if centre is not None:
        return Direction(*centre, finding)
    shared = ancestors(fa.repo_id, _Bases(facts)) & ancestors(fb.repo_id, _Bases(facts))
    if (
        shared
    ):  # last: a quantiser often copies its source's card, so siblings by card may be parent and child
        return Direction(None, None, DECLARED, f"siblings: both declare {sorted(shared)[0]}", finding)
    return Direction(None, None, UNKNOWN, "direction unknown: no declaration, merge, structure, precision, "
                     "creation-time gap or star centre orders them", finding)  # fmt: skip


Found = tuple[str, str, str, str]  # parent, child, kind, how


def _declared(fa: ModelFacts, fb: ModelFacts, facts: Mapping[str, ModelFacts]) -> Found | None:
    """A card or the Hub's tag names the other side as its base (directly or through declared hops)."""
    bases = _Bases(facts)
    for child, parent in ((fa, fb), (fb, fa)):
        if parent.repo_id in child.base_models:
            relation = (child.relations or {}).get(parent.repo_id)
            what = f" ({relation})" if relation else ""
            return parent.repo_id, child.repo_id, DECLARED, f"{child.repo_id} declares {parent.repo_id}{what}"
        if parent.repo_id in ancestors(child.repo_id, bases):
            return (
                parent.repo_id,
                child.repo_id,
                DECLARED,
                f"{child.repo_id} declares {parent.repo_id} through its base",
            )
    return None


class _Bases(Mapping[str, tuple[str, ...]]):
    """Declared bases by repo, read from the facts on demand (no copy of a hub's worth per edge)."""

    def __init__(self, facts: Mapping[str, ModelFacts]) -> None:
        self.facts = facts

    def __getitem__(self, repo_id: str) -> tuple[str, ...]:
        return tuple(self.facts[repo_id].base_models)

    def __iter__(self) -> Iterator[str]:
        return iter(self.facts)

    def __len__(self) -> int:
        return len(self.facts)


def _merge(edge: Edge, fa: ModelFacts, fb: ModelFacts) -> Found | None:
    """The merge is the child of each of its parents."""
    if edge.merge_child not in (edge.a, edge.b):
        return None
    child = edge.merge_child
    parent = edge.b if child == edge.a else edge.a
    return parent, child, MERGE, f"{child} is a merge of {parent} and another model"


def _structure(edge: Edge, fa: ModelFacts, fb: ModelFacts) -> Found | None:
    """A directional layer / expert map, or a vocabulary cut to a fraction: the derived side is the child."""
    if edge.verdict == VOCAB_COPY and fa.vocab and fb.vocab:
        small, large = (fa, fb) if fa.vocab < fb.vocab else (fb, fa)
        if large.vocab and small.vocab and large.vocab >= MIN_PRUNED_RATIO * small.vocab:
            return (large.repo_id, small.repo_id, STRUCTURE,
                    f"{small.repo_id} is vocabulary-pruned ({small.vocab} of {large.vocab} tokens)")  # fmt: skip
    if edge.structure not in DIRECTIONAL or edge.derived not in ("a", "b"):
        return None
    child, parent = (edge.a, edge.b) if edge.derived == "a" else (edge.b, edge.a)
    return parent, child, STRUCTURE, f"{child} is {edge.structure} (layer / expert map)"


def _precision(edge: Edge, fa: ModelFacts, fb: ModelFacts) -> Found | None:
    """Of a cast or quantised copy, the side holding fewer bits per weight is the copy."""
    if edge.verdict != CAST_COPY:
        return None
    ba, bb = bits_per_weight(fa.dtype), bits_per_weight(fb.dtype)
    if ba is None or bb is None or ba == bb:
        return None
    child, parent = (fa, fb) if ba < bb else (fb, fa)
    return (
        parent.repo_id,
        child.repo_id,
        PRECISION,
        f"{child.repo_id} holds {child.dtype}, {parent.repo_id} {parent.dtype}",
    )


def _created(edge: Edge, fa: ModelFacts, fb: ModelFacts) -> Found | None:
    """Created at least a day earlier: the parent."""
    if fa.created_at is None or fb.created_at is None or abs(fa.created_at - fb.created_at) < MIN_CREATED_GAP:
        return None
    parent, child = (fa, fb) if fa.created_at < fb.created_at else (fb, fa)
    assert parent.created_at is not None and child.created_at is not None
    return (parent.repo_id, child.repo_id, CREATED,
            f"created first ({parent.created_at:%Y-%m-%d} vs {child.created_at:%Y-%m-%d})")  # fmt: skip


def _centre(edge: Edge, centres: Mapping[str, int]) -> Found | None:
    """The side that is the nearest relative of more models (at least MIN_CENTRE) is the parent, for an
    edge whose verdict says one was made from the other: exact copies have no centre (the same weights,
    whichever was uploaded first), cousins ("same lineage") share an ancestor and are neither's child."""
    if edge.verdict not in DERIVED_VERDICTS:
        return None
    ca, cb = centres.get(edge.a, 0), centres.get(edge.b, 0)
    if max(ca, cb) < MIN_CENTRE or ca == cb:
        return None
    parent, child = (edge.a, edge.b) if ca > cb else (edge.b, edge.a)
    return (
        parent,
        child,
        CENTRE,
        f"{parent} is the nearest relative of {max(ca, cb)} models (a star's centre)",
    )


def contradiction(edge: Edge, fa: ModelFacts, fb: ModelFacts) -> str | None:
    """A declared relation the verdict contradicts: 'declared quantized, weights show a fine-tune'."""
    for child, parent in ((fa, fb), (fb, fa)):
        relation = (child.relations or {}).get(parent.repo_id)
        expected = RELATION_VERDICTS.get(relation or "")
        if expected is not None and edge.verdict not in expected:
            return f"{child.repo_id} declares {parent.repo_id} {relation}; the weights show {edge.verdict}"
    return None


def nearest_counts(edges: Iterable[Edge]) -> Counter[str]:
    """For each model, how many models have it as their nearest relative (highest edge score).

    A model whose best score is shared by several relatives (exact copies of one another all score
    alike) names none: a tie says nothing about who is the centre.
    """
    best: dict[str, tuple[float, list[str]]] = {}
    for e in edges:
        for me, other in ((e.a, e.b), (e.b, e.a)):
            score, names = best.get(me, (float("-inf"), []))
            if e.score > score:
                best[me] = (e.score, [other])
            elif e.score == score:
                names.append(other)
    return Counter(names[0] for _, names in best.values() if len(names) == 1)


def bits_per_weight(dtype: str | None) -> float | None:
    """Bits per weight a dtype or format name implies (None when it names none)."""
    if not dtype:
        return None
    name = dtype.upper()
    for pattern, bits in _BITS:
        m = pattern.search(name)
        if m:
            return float(m.group(2)) if bits < 0 else bits
    return None
