"""Families of flagged models: who belongs together (queries/families.sql) and a tree to show it.

The components and the inferred root are decided once, in SQL; this module only lays each family
out as a tree for the terminal and the report: from the root, every model hangs under the member
its strongest flagged link reaches first (breadth first, so a star stays a star).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from pipeline.storage.duckdb import connect, fetch_rows, flagged_pairs

# A parent whose link scores at least this share of a model's strongest link is as good a parent;
# the one nearest the root is drawn (-log10 p of sibling copies differ by rounding only).
TIE_FACTOR = 0.9
# Marks an undeclared link wherever a family is printed: no model card names the relation.
UNDECLARED_MARK = "UNDECLARED"
# The tree edge of an adapter under its declared base: no pair is scored between them.
ADAPTER_VERDICT = "adapter"


@dataclass(frozen=True)
class Link:
    """A tree edge: ``child`` hangs under ``parent`` through one flagged pair."""

    parent: str
    child: str
    verdict: str
    reason: str
    declared: bool
    score: float


@dataclass
class Family:
    """One connected component of flagged pairs, rooted, with its tree edges in display order."""

    family: int
    root: str
    members: list[dict[str, Any]]  # rows of families.sql, root first
    pairs: int
    undeclared_pairs: int
    links: list[Link] = field(default_factory=list)  # tree edges, breadth first from the root
    other_links: int = 0  # flagged pairs of the family the tree does not draw

    def children(self, repo_id: str) -> list[Link]:
        """The tree edges below one member, strongest first."""
        return sorted(
            (link for link in self.links if link.parent == repo_id), key=lambda k: (-k.score, k.child)
        )

    def tree_lines(self) -> list[str]:
        """The family as indented text: header, root, then each member under its parent."""
        head = (
            f"family {self.family}: {len(self.members)} models, {self.pairs} flagged pairs "
            f"({self.undeclared_pairs} undeclared), root {self.root}"
        )
        lines = [head, f"{self.root}  {_root_note(self.members[0])}"]

        def walk(repo_id: str, indent: str) -> None:
            kids = self.children(repo_id)
            for i, link in enumerate(kids):
                last = i == len(kids) - 1
                mark = "" if link.declared else f"  [{UNDECLARED_MARK}]"
                lines.append(
                    f"{indent}{'└─ ' if last else '├─ '}{link.child}  {link.verdict}, score {link.score:.4g}{mark}"
                )
                walk(link.child, indent + ("   " if last else "│  "))

        walk(self.root, "")
        if self.other_links:
            lines.append(
                f"(+ {self.other_links} more flagged pairs inside the family: `hubscan sql families`)"
            )
        return lines


def load_families(con: duckdb.DuckDBPyConnection) -> list[Family]:
    """Every family of the store's last flag run, largest first, each with its tree.

    Raises:
        QueryError: families.sql failed (e.g. no pairs table yet).
    """
    rows = fetch_rows(con, "families")
    by_family: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_family[int(r["family"])].append(r)
    pairs = [{"a": p["a_repo_id"], "b": p["b_repo_id"], "verdict": p["verdict"], "reason": p["reason"],
              "declared": p["declared"], "score": p["score"]} for p in flagged_pairs(con)]  # fmt: skip
    pairs += [adapter_link(r) for r in rows if r.get("adapter_of")]
    out = []
    for number in sorted(by_family):
        members = by_family[number]
        names = {m["repo_id"] for m in members}
        mine = [p for p in pairs if p["a"] in names]
        family = Family(number, members[0]["repo_id"], members, int(members[0]["family_pairs"]),
                        int(members[0]["undeclared_pairs"]))  # fmt: skip
        family.links = spanning_tree([m["repo_id"] for m in members], mine)
        # flagged pairs the tree leaves out (adapter declarations are not pairs)
        flagged = [p for p in mine if p["verdict"] != ADAPTER_VERDICT]
        family.other_links = len(flagged) - sum(link.verdict != ADAPTER_VERDICT for link in family.links)
        out.append(family)
    return out


def adapter_link(member: dict[str, Any]) -> dict[str, Any]:
    """A PEFT adapter's link to the base it declares: a declaration, no score (`hubscan sql adapters` checks
    whether it fits)."""
    return {"a": member["adapter_of"], "b": member["repo_id"], "verdict": ADAPTER_VERDICT,
            "reason": "PEFT adapter declaring this base (adapter_config.json)", "declared": True, "score": 0.0}  # fmt: skip


def spanning_tree(ranked: list[str], pairs: list[dict[str, Any]]) -> list[Link]:
    """The family tree: members join in ``ranked`` order (families.sql's root ranking: the declared,
    unquantised, best-linked first), each under its strongest already-placed relative.

    A member joins once a relative is placed, so the tree stays connected and every parent ranks
    above its children. Links within TIE_FACTOR of the strongest count as equal and the
    earliest-placed parent wins: copies of one base score alike with every sibling.
    """
    adjacent: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for p in pairs:
        adjacent[p["a"]][p["b"]] = adjacent[p["b"]][p["a"]] = p
    rank = {repo: i for i, repo in enumerate(ranked)}
    order = {ranked[0]: 0}
    links: list[Link] = []
    while True:
        frontier = [c for c in ranked if c not in order and any(q in order for q in adjacent[c])]
        if not frontier:
            return links
        child = min(frontier, key=rank.__getitem__)
        scores = {parent: float(p["score"]) for parent, p in adjacent[child].items() if parent in order}
        top = max(scores.values())
        parent = min((q for q, v in scores.items() if v >= top * TIE_FACTOR), key=order.__getitem__)
        p = adjacent[parent][child]
        links.append(Link(parent, child, p["verdict"], p["reason"], bool(p["declared"]), float(p["score"])))
        order[child] = len(order)


def family_of(families: list[Family]) -> dict[str, int]:
    """repo_id -> family number, for the export's family column."""
    return {m["repo_id"]: f.family for f in families for m in f.members}


def _root_note(member: dict[str, Any]) -> str:
    """Why this member was taken for the root, in a few words."""
    declared = member.get("declared_base_of") or 0
    if declared:
        return f"(root: declared base of {declared})"
    return f"(root: most flagged links, {member['flagged_links']})"


def family_text(store: str | Path) -> str:
    """Every family of the store's last flag run as trees, for `hubscan flag` and `hubscan demo`.

    Raises:
        QueryError: the store has no pairs table or families.sql failed.
    """
    families = load_families(connect(store))
    if not families:
        return "no flagged pairs: no families"
    return "\n\n".join("\n".join(f.tree_lines()) for f in families)
