"""A family as a directed graph: who was made from whom, drawn so no model sits below its descendant.

Edges arrive directed (parent -> child, from pipeline/comparison/direction.py) or undirected
(direction unknown). The layout keeps three promises:

- a root is an origin: no directed edge points into it (a merge of two unrelated models has two);
- a model with two parents (a merge, a stack of two sources) appears under each, the second time as a
  reference only; a child otherwise hangs under its parent of the strongest evidence and score;
- an undirected edge never draws a model below one of its own descendants: it hangs a model not
  yet placed under one already placed, and says the direction is unknown.

Conflicting evidence can make a directed cycle (A declares B, B's structure says it came from A);
the edge of the weakest evidence in it is kept undirected, so the drawing stays a DAG.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# Evidence that gives a child several parents at once: a merge's parents, a stack's sources.
MULTI_PARENT = frozenset({"merge", "structure"})
# Evidence kinds from strongest to weakest (direction.py's order); a cycle gives up the weakest.
EVIDENCE_ORDER = ("declared", "merge", "structure", "precision", "created", "centre")


@dataclass(frozen=True)
class Link:
    """One flagged edge as drawn: ``parent`` -> ``child`` when ``directed``, else just a relation."""

    parent: str
    child: str
    label: str  # verdict and reason, as printed after the child
    score: float
    directed: bool = True
    evidence: str = ""  # the direction's evidence kind ("" when undirected)


@dataclass
class FamilyDag:
    """A family laid out: its roots and each member's links to the members drawn under it."""

    roots: list[str]
    below: dict[str, list[Link]]  # parent -> links to children, strongest first

    def parents_of(self, child: str) -> list[str]:
        """Every member drawn above ``child`` (its parents, directed or not)."""
        return sorted(p for p, links in self.below.items() for k in links if k.child == child)

    def lines(self, mark: str = "") -> list[str]:
        """Indented text: each root, then every member under each of its parents (again: a reference)."""
        out: list[str] = []
        drawn: set[str] = set()
        for root in self.roots:
            out.append(root)
            drawn.add(root)
            self._draw(root, 1, drawn, out, mark)
        return out

    def _draw(self, node: str, depth: int, drawn: set[str], out: list[str], mark: str) -> None:
        """Depth-first below ``node``; a member already drawn is named, not expanded."""
        for link in self.below.get(node, []):
            arrow = "" if link.directed else "(direction unknown) "
            if link.child in drawn:
                out.append(f"{'  ' * depth}^ {link.child} (drawn above) {arrow}{link.label}{mark}")
                continue
            drawn.add(link.child)
            out.append(f"{'  ' * depth}- {link.child} {arrow}{link.label}{mark}")
            self._draw(link.child, depth + 1, drawn, out, mark)


def layout(members: Sequence[str], links: Iterable[Link]) -> FamilyDag:
    """Lay a family out from its links (directed where known); every member is reachable from a root.

    The first root is the origin reaching most members (``members`` order breaks ties: families.sql's
    ranking); further origins hang under a drawn relative by an undirected link when they have one
    that is not their own descendant, and start a root of their own only when they have none.
    """
    links = list(links)
    ordered = acyclic([k for k in links if k.directed])
    undirected = [k for k in links if not k.directed] + [k for k in ordered if not k.directed]
    # every directed edge says who descends from whom; only each child's strongest parents are drawn
    descends: dict[str, list[Link]] = defaultdict(list)
    for k in ordered:
        if k.directed:
            descends[k.parent].append(k)
    below: dict[str, list[Link]] = defaultdict(list)
    for k in _drawn_parents([k for k in ordered if k.directed]):
        below[k.parent].append(k)
    has_parent = {k.child for ks in below.values() for k in ks}
    rank = {m: i for i, m in enumerate(members)}
    degree: dict[str, int] = defaultdict(int)
    for k in links:
        degree[k.parent] += 1
        degree[k.child] += 1
    origins = sorted(
        (m for m in members if m not in has_parent),
        key=lambda m: (-len(_reachable([m], below)), -degree[m], rank[m]),
    )
    roots: list[str] = []
    placed: set[str] = set()
    pending = sorted(undirected, key=lambda k: (-k.score, k.parent, k.child))
    while len(placed) < len(members):
        link = _next_attachment(pending, placed, has_parent, descends)
        if link is None:  # nothing left to hang on the drawing: the best unplaced origin starts a part
            start = next(m for m in origins if m not in placed)
            roots.append(start)
            placed |= _reachable([start], below)
            continue
        pending.remove(link)
        top = link.parent if link.parent in placed else link.child
        new = link.child if top == link.parent else link.parent
        below[top].append(Link(top, new, link.label, link.score, False))
        placed |= _reachable([new], below)
    for links_ in below.values():
        links_.sort(key=lambda k: (-k.score, k.child))
    return FamilyDag(roots, dict(below))


def _next_attachment(
    pending: list[Link], placed: set[str], has_parent: set[str], descends: dict[str, list[Link]]
) -> Link | None:
    """The strongest undirected link from a drawn member to an undrawn origin that is not its ancestor.

    Only an origin is hung this way (a member with a parent is drawn under it), and never under one of
    its own descendants.
    """
    for k in pending:
        if (k.parent in placed) == (k.child in placed):
            continue
        top, new = (k.parent, k.child) if k.parent in placed else (k.child, k.parent)
        if new not in has_parent and top not in _reachable([new], descends):
            return k
    return None


def _drawn_parents(directed: list[Link]) -> list[Link]:
    """Each child's parents by its strongest evidence: all of them for a merge or a structure (a stack has
    two sources), else the best scored one. Weaker orders (an F16 and an int8 copy of one base are ordered
    by precision too) are true but would draw every copy under every other."""
    by_child: dict[str, list[Link]] = defaultdict(list)
    for k in directed:
        by_child[k.child].append(k)
    descends: dict[str, list[Link]] = defaultdict(list)
    for k in directed:
        descends[k.parent].append(k)
    out: list[Link] = []
    for ks in by_child.values():
        best = min(_rank(k.evidence) for k in ks)
        top = sorted((k for k in ks if _rank(k.evidence) == best), key=lambda k: (-k.score, k.parent))
        if top[0].evidence not in MULTI_PARENT:
            out.append(top[0])
            continue
        # a parent that another of the child's parents descends from is a relation through that one
        # (a 30-layer original, its 4-layer cut, and the cut's MoE upcycle): drawn once, nearest first
        parents = {k.parent for k in top}
        out += [k for k in top if not (parents - {k.parent}) & _reachable([k.parent], descends)]
    return out


def acyclic(directed: list[Link]) -> list[Link]:
    """The directed links, strongest evidence first; a link that would close a cycle becomes undirected."""
    out: list[Link] = []
    children: dict[str, set[str]] = defaultdict(set)
    for k in sorted(directed, key=lambda k: (_rank(k.evidence), -k.score, k.parent, k.child)):
        if k.parent in _reachable([k.child], children):  # the child already reaches the parent
            out.append(Link(k.parent, k.child, k.label, k.score, False))
            continue
        children[k.parent].add(k.child)
        out.append(k)
    return out


def _rank(evidence: str) -> int:
    """Position of an evidence kind in the order of trust (unknown kinds last)."""
    return EVIDENCE_ORDER.index(evidence) if evidence in EVIDENCE_ORDER else len(EVIDENCE_ORDER)


def _reachable(starts: Iterable[str], below: dict[str, list[Link]] | dict[str, set[str]]) -> set[str]:
    """Every node reachable from ``starts`` (themselves included)."""
    seen: set[str] = set()
    stack = list(starts)
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        stack.extend(k.child if isinstance(k, Link) else k for k in below.get(node, ()))
    return seen
