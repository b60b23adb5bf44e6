"""Families of flagged models: who belongs together (queries/families.sql) and a drawing of who came from whom.

The components are decided in SQL; each family is laid out as a directed graph from its edges'
directions (pipeline/comparison/lineage_dag.py): roots are origins (no edge points into them), a
model with two parents (a merge) is drawn under each, the second time as a reference, and an edge
whose direction nothing settles says so. `links` are the first drawings, parents before children.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import duckdb

from hubscan.pipeline.comparison import lineage_dag
from hubscan.pipeline.storage.duckdb import connect, fetch_rows, flagged_pairs

# Marks an undeclared link wherever a family is printed: no model card names the relation.
UNDECLARED_MARK = "UNDECLARED"
# The tree edge of an adapter under its declared base: no pair is scored between them.
ADAPTER_VERDICT = "adapter"
# A family of more members is printed as a summary (size, root, verdicts, its strongest undeclared
# edges) rather than a tree: a family of 10,000 derivatives must fit one screen.
TREE_MAX = 40
# The strongest undeclared edges a family summary lists.
SUMMARY_EDGES = 5
# Families printed, largest first; the rest are counted, every member one query away.
SHOWN_FAMILIES = 10


@dataclass(frozen=True)
class Member:
    """One member of a family: a row of families.sql, root first."""

    repo_id: str
    family: int
    family_pairs: int  # flagged pairs inside the family (the same on every member's row)
    undeclared_pairs: int
    flagged_links: int | None = None
    declared_base_of: int | None = None  # members whose card names this one as their base
    adapter_of: str | None = None  # the stored base a PEFT adapter declares

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Self:
        """From a families.sql row (its other columns are for people reading the query)."""
        return cls(row["repo_id"], int(row["family"]), int(row["family_pairs"]), int(row["undeclared_pairs"]),
                   row.get("flagged_links"), row.get("declared_base_of"), row.get("adapter_of"))  # fmt: skip


@dataclass(frozen=True)
class FlaggedEdge:
    """A flagged pair as a family draws it (or an adapter's declaration of its base, which is not scored)."""

    a: str
    b: str
    verdict: str
    reason: str
    declared: bool
    score: float
    parent: str | None  # "a", "b", or None / "neither" when nothing settles the direction
    evidence: str  # what set the direction (pipeline/comparison/direction.py), "" when unknown

    @classmethod
    def from_row(cls, p: dict[str, Any]) -> Self:
        """From a flagged_pairs row (storage/duckdb.py)."""
        return cls(p["a_repo_id"], p["b_repo_id"], p["verdict"], p["reason"], bool(p["declared"]),
                   float(p["score"]), p.get("parent"), p.get("parent_evidence") or "")  # fmt: skip


@dataclass(frozen=True)
class Link:
    """A tree edge: ``child`` hangs under ``parent`` through one flagged pair."""

    parent: str
    child: str
    verdict: str
    reason: str
    declared: bool
    score: float
    directed: bool = True  # False: related, but nothing says which was made from which


@dataclass
class Family:
    """One connected component of flagged pairs, rooted, with its tree edges in display order."""

    family: int
    root: str
    members: list[Member]  # root first
    pairs: int
    undeclared_pairs: int
    links: list[Link] = field(default_factory=list)  # tree edges, breadth first from the root
    other_links: int = 0  # flagged pairs of the family the tree does not draw
    verdicts: dict[str, int] = field(default_factory=dict)  # flagged pairs of the family by verdict
    strongest_undeclared: list[Link] = field(default_factory=list)  # SUMMARY_EDGES of them, strongest first
    roots: list[str] = field(default_factory=list)  # origins: no directed edge points into them
    second_parents: list[Link] = field(default_factory=list)  # a merge's other parents: drawn as references

    def children(self, repo_id: str) -> list[Link]:
        """The edges drawn below one member (first drawings and references), strongest first."""
        return sorted(
            (link for link in (*self.links, *self.second_parents) if link.parent == repo_id),
            key=lambda k: (-k.score, k.child),
        )

    def tree_lines(self) -> list[str]:
        """The family as indented text: header, root, then each member under its parent."""
        head = (
            f"family {self.family}: {len(self.members)} models, {self.pairs} flagged pairs "
            f"({self.undeclared_pairs} undeclared), root {self.root}"
        )
        lines = [head]
        again = {(k.parent, k.child) for k in self.second_parents}

        def walk(repo_id: str, indent: str) -> None:
            kids = self.children(repo_id)
            for i, link in enumerate(kids):
                last = i == len(kids) - 1
                mark = "" if link.declared else f"  [{UNDECLARED_MARK}]"
                how = "" if link.directed else " (direction unknown)"
                ref = (link.parent, link.child) in again
                name = f"{link.child} (drawn above)" if ref else link.child
                lines.append(
                    f"{indent}{'└─ ' if last else '├─ '}{name}  {link.verdict}{how}, score {link.score:.4g}{mark}"
                )
                if not ref:
                    walk(link.child, indent + ("   " if last else "│  "))

        for root in self.roots or [self.root]:
            lines.append(f"{root}  {_root_note(self._member(root))}")
            walk(root, "")
        if self.other_links:
            lines.append(
                f"(+ {self.other_links} more flagged pairs inside the family: `hubscan sql families`)"
            )
        return lines

    def _member(self, repo_id: str) -> Member:
        """One member by repo id."""
        return next(m for m in self.members if m.repo_id == repo_id)

    def summary_lines(self) -> list[str]:
        """The family in a few lines whatever its size: header, root, flagged pairs by verdict, how many
        members joined through an undeclared edge, the strongest undeclared edges, and where the members are."""
        joined_undeclared = sum(not link.declared for link in self.links)
        kinds = ", ".join(
            f"{kind} {n}" for kind, n in sorted(self.verdicts.items(), key=lambda kv: (-kv[1], kv[0]))
        )
        lines = [
            f"family {self.family}: {len(self.members)} models, {self.pairs} flagged pairs "
            f"({self.undeclared_pairs} undeclared), root {self.root}  {_root_note(self._member(self.root))}",
            f"  verdicts: {kinds}",
            f"  {joined_undeclared} of {len(self.members) - 1} members joined through an edge no card declares",
        ]
        if self.strongest_undeclared:
            lines.append(f"  strongest {UNDECLARED_MARK} edges:")
            lines += [
                f"    {link.parent} -- {link.child}  {link.verdict}, score {link.score:.4g}"
                for link in self.strongest_undeclared
            ]
        lines.append(
            f"  members: `hubscan sql show_model_family -p repo_id={self.root}`, the tree: `hubscan report`"
        )
        return lines

    def text_lines(self) -> list[str]:
        """The tree for a family of at most TREE_MAX members, the summary for a larger one."""
        return self.tree_lines() if len(self.members) <= TREE_MAX else self.summary_lines()


def load_families(con: duckdb.DuckDBPyConnection) -> list[Family]:
    """Every family of the store's last flag run, largest first, each with its tree and summary counts.

    Raises:
        QueryError: families.sql failed (e.g. no pairs table yet).
    """
    rows = [Member.from_row(r) for r in fetch_rows(con, "families")]
    by_family: dict[int, list[Member]] = defaultdict(list)
    for m in rows:
        by_family[m.family].append(m)
    family_of_repo = {m.repo_id: m.family for m in rows}
    pairs_of: dict[int, list[FlaggedEdge]] = defaultdict(list)
    for p in flagged_pairs(con):  # most significant first
        pairs_of[family_of_repo[p["a_repo_id"]]].append(FlaggedEdge.from_row(p))
    for m in rows:  # an adapter hangs under the base it declares (a declaration, not a scored pair)
        if m.adapter_of:
            pairs_of[m.family].append(adapter_link(m, m.adapter_of))
    out = []
    for number in sorted(by_family):
        members = by_family[number]
        mine = pairs_of.pop(number, [])
        dag = lineage_dag.layout([m.repo_id for m in members], [_dag_link(p) for p in mine])
        family = Family(number, dag.roots[0], members, members[0].family_pairs, members[0].undeclared_pairs)
        family.roots = dag.roots
        family.links, family.second_parents = _drawn_links(dag, mine)
        # flagged pairs the tree leaves out (adapter declarations are not pairs)
        flagged = [p for p in mine if p.verdict != ADAPTER_VERDICT]
        family.other_links = len(flagged) - sum(link.verdict != ADAPTER_VERDICT for link in family.links)
        family.verdicts = dict(Counter(str(p.verdict) for p in mine))
        family.strongest_undeclared = [
            Link(p.a, p.b, p.verdict, p.reason, False, p.score)
            for p in [p for p in flagged if not p.declared][:SUMMARY_EDGES]
        ]
        out.append(family)
    return out


def adapter_link(member: Member, base: str) -> FlaggedEdge:
    """A PEFT adapter's link to the base it declares: a declaration, no score (`hubscan sql adapters` checks
    whether it fits)."""
    return FlaggedEdge(base, member.repo_id, ADAPTER_VERDICT, "PEFT adapter declaring this base (adapter_config.json)",
                       declared=True, score=0.0, parent="a", evidence="declared")  # fmt: skip


def _dag_link(p: FlaggedEdge) -> lineage_dag.Link:
    """A flagged pair as the DAG layout takes it: parent -> child where its direction is known."""
    if p.parent in ("a", "b"):
        parent, child = (p.a, p.b) if p.parent == "a" else (p.b, p.a)
        return lineage_dag.Link(parent, child, str(p.verdict), p.score, True, p.evidence)
    return lineage_dag.Link(p.a, p.b, str(p.verdict), p.score, False)


def _drawn_links(dag: lineage_dag.FamilyDag, pairs: list[FlaggedEdge]) -> tuple[list[Link], list[Link]]:
    """(tree links: each member under the parent it is first drawn below, parents first; second parents)."""
    by_pair = {frozenset((p.a, p.b)): p for p in pairs}
    first: list[Link] = []
    again: list[Link] = []
    drawn = set(dag.roots)

    def walk(node: str) -> None:
        for k in dag.below.get(node, []):
            p = by_pair[frozenset((k.parent, k.child))]
            link = Link(k.parent, k.child, p.verdict, p.reason, p.declared, p.score, k.directed)
            if k.child in drawn:
                again.append(link)
                continue
            drawn.add(k.child)
            first.append(link)
            walk(k.child)

    for root in dag.roots:
        walk(root)
    return first, again


def family_of(families: list[Family]) -> dict[str, int]:
    """repo_id -> family number, for the export's family column."""
    return {m.repo_id: f.family for f in families for m in f.members}


def _root_note(member: Member) -> str:
    """Why this member is a root, in a few words: no edge points into it, and what else it is."""
    if member.declared_base_of:
        return f"(root: no parent edge; declared base of {member.declared_base_of})"
    return f"(root: no parent edge; {member.flagged_links} flagged links)"


def family_text(store: str | Path) -> str:
    """The families of the store's last flag run for `hubscan flag` and `hubscan demo`: the SHOWN_FAMILIES
    largest, each as a tree or (past TREE_MAX members) a summary, then a count of the rest.

    Raises:
        QueryError: the store has no pairs table or families.sql failed.
    """
    families = load_families(connect(store))
    if not families:
        return "no flagged pairs: no families"
    blocks = ["\n".join(f.text_lines()) for f in families[:SHOWN_FAMILIES]]
    rest = families[SHOWN_FAMILIES:]
    if rest:
        blocks.append(
            f"(+ {len(rest)} more families, {sum(len(f.members) for f in rest)} models: `hubscan sql families`)"
        )
    return "\n\n".join(blocks)
