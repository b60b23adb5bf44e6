"""Licence findings along a lineage edge: does a derivative keep the terms of its parent's licence?

A finding states the two licences and the term that differs, with the clause it comes from. It is
not legal advice: a card's licence field may be wrong, a separate agreement may exist, and hubscan
cannot see NOTICE files, websites or product documentation where credit may be given.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hubscan.pipeline.comparison.licence_terms import ATTRIBUTION, LICENCES, RESTRICTIONS, Licence

RELICENSED = "relicensed"
ATTRIBUTION_MISSING = "attribution-missing"
LICENCE_UNKNOWN = "licence-unknown"
OTHER = "other"
# Spellings seen on cards for the Hub's licence tags (the Hub's own ids map to themselves).
_ALIASES = {
    "apache 2.0": "apache-2.0",
    "apache-2": "apache-2.0",
    "apache2": "apache-2.0",
    "apache license 2.0": "apache-2.0",
    "llama-2": "llama2",
    "llama-3": "llama3",
    "llama-3.1": "llama3.1",
    "llama-3.2": "llama3.2",
    "llama-3.3": "llama3.3",
    "cc-by-nc-4": "cc-by-nc-4.0",
    "tongyi qianwen": "tongyi-qianwen",
    "qwen-license": "qwen",
}
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class LicenceFinding:
    """One finding on an edge: its kind and a reason naming both licences and the term."""

    kind: str
    reason: str


def normalise(license: str | None, license_name: str | None = None) -> str | None:
    """The Hub licence tag a card's ``license`` means; ``other`` resolves through ``license_name``.

    None when the card states no licence; ``other:NAME`` for an ``other`` licence hubscan does not know.
    """
    raw = (license or "").strip().lower()
    if not raw:
        return None
    if raw != OTHER:
        return _ALIASES.get(raw, raw)
    name = (license_name or "").strip().lower()
    if not name:
        return OTHER
    known = _ALIASES.get(name, name)
    return known if known in LICENCES else f"{OTHER}:{name}"


def edge_finding(
    a: str, a_licence: str | None, b: str, b_licence: str | None, parent: str | None, declared: bool
) -> LicenceFinding | None:
    """The finding on a flagged pair, given which side is the parent ("a", "b", "neither" or None).

    With the parent unknown both directions are tried and the reason says it is conditional.
    """
    missing = [f"{r} states no licence" for r, lic in ((a, a_licence), (b, b_licence)) if lic is None]
    if missing:
        return LicenceFinding(LICENCE_UNKNOWN, "; ".join(missing))
    assert a_licence is not None and b_licence is not None
    if parent == "neither":  # siblings of a declared ancestor: each is judged against that ancestor
        return None
    if parent in ("a", "b"):
        sides = [(a, a_licence, b, b_licence)] if parent == "a" else [(b, b_licence, a, a_licence)]
        return parent_child_finding(*sides[0], declared)
    found = [
        (p, f)
        for p, plic, c, clic in ((a, a_licence, b, b_licence), (b, b_licence, a, a_licence))
        if (f := parent_child_finding(p, plic, c, clic, declared)) is not None
    ]
    if not found:
        return None
    reasons = "; or ".join(f"if {p} is the parent: {f.reason}" for p, f in found)
    return LicenceFinding(found[0][1].kind, f"parent unknown; {reasons}")


def parent_child_finding(
    parent: str, parent_licence: str, child: str, child_licence: str, declared: bool
) -> LicenceFinding | None:
    """relicensed, attribution-missing, licence-unknown (terms not in the table), or None (compatible)."""
    p_terms, c_terms = LICENCES.get(parent_licence), LICENCES.get(child_licence)
    if p_terms is None or c_terms is None:
        unknown = parent_licence if p_terms is None else child_licence
        return LicenceFinding(
            LICENCE_UNKNOWN,
            f"{parent} is {parent_licence}, {child} is {child_licence}: the terms of {unknown} are not in "
            "hubscan's licence table, so they were not compared",
        )
    dropped = [k for k in RESTRICTIONS if k in p_terms.kinds() and k not in c_terms.kinds()]
    if dropped:
        terms = "; ".join(_term_text(p_terms, k) for k in dropped)
        return LicenceFinding(
            RELICENSED,
            f"{child} is {child_licence}, its parent {parent} is {parent_licence}; "
            f"{child_licence} does not carry: {terms}",
        )
    owed = []
    if p_terms.name_prefix and _squash(p_terms.name_prefix) not in _squash(child.rsplit("/", 1)[-1]):
        owed.append(f'the name lacks "{p_terms.name_prefix}": ' + _term_text(p_terms, "naming"))
    if not declared and ATTRIBUTION in p_terms.kinds():
        owed.append(f"no card declares {parent}: " + _term_text(p_terms, ATTRIBUTION))
    if owed:
        return LicenceFinding(
            ATTRIBUTION_MISSING,
            f"{child} ({child_licence}) derives from {parent} ({parent_licence}); " + "; ".join(owed),
        )
    return None


def finding_text(row: Mapping[str, Any]) -> str:
    """One line for a pairs row: its licences, inferred parent and finding (for reports and printouts)."""
    a, b = row.get("a_repo_id"), row.get("b_repo_id")
    licences = f"{a}: {row.get('a_license') or 'none'}, {b}: {row.get('b_license') or 'none'}"
    if not row.get("flagged"):
        return f"licences {licences}; not flagged, so no lineage edge to judge"
    parent = {"a": a, "b": b}.get(row.get("parent") or "", row.get("parent") or "unknown")
    how = f" ({row['parent_how']})" if row.get("parent_how") else ""
    kind = row.get("license_finding")
    verdict = f"{kind}: {row.get('license_reason')}" if kind else "no licence finding"
    return f"licences {licences}; parent {parent}{how}; {verdict}"


def _term_text(lic: Licence, kind: str) -> str:
    term = lic.term(kind)
    assert term is not None
    return f"{kind} ({term.detail}; {term.source})"


def _squash(text: str) -> str:
    """Lower-case letters and digits only: "Llama 3" matches "llama-3-8b" and "Llama3"."""
    return _NOT_ALNUM.sub("", text.lower())
