"""Which side of a related pair is the parent: from declarations, then structure, then creation time."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from hubscan.pipeline.comparison.expert_map import UPCYCLED
from hubscan.pipeline.comparison.layer_align import PRUNED, UPSCALED
from hubscan.pipeline.comparison.lineage import MAX_HOPS, ancestors
from hubscan.pipeline.comparison.stacking import STACKED

NEITHER = "neither"
# Structures whose layer / expert map has a direction: the derived side (pruned, up-scaled, upcycled,
# stacked) is the child. Re-ordered layers and permuted experts read the same both ways.
DIRECTIONAL = frozenset({PRUNED, UPSCALED, UPCYCLED, STACKED})
# Creation times closer than this do not order two repos: a release and its casts and quantisations
# are often uploaded within hours of each other, in either order.
MIN_CREATED_GAP = timedelta(days=1)


def infer_parent(
    a: str,
    b: str,
    bases: Mapping[str, Iterable[str]],
    structure: str | None = None,
    derived: str | None = None,
    created: tuple[datetime | None, datetime | None] = (None, None),
) -> tuple[str | None, str]:
    """("a" | "b" | "neither" | None, how): the parent side of a related pair, or None when unknown.

    ``derived`` is the side a directional layer / expert map explains ("a" or "b").
    """
    anc_a, anc_b = ancestors(a, bases), ancestors(b, bases)
    if b in anc_a:
        return "b", f"{a} declares {b} as its base"
    if a in anc_b:
        return "a", f"{b} declares {a} as its base"
    shared = anc_a & anc_b
    if shared:
        return NEITHER, f"siblings: both declare {_nearest(a, shared, bases)}"
    if structure in DIRECTIONAL and derived in ("a", "b"):
        child = a if derived == "a" else b
        return ("b" if derived == "a" else "a"), f"{child} is {structure} (layer / expert map)"
    ta, tb = created
    if ta is not None and tb is not None and abs(ta - tb) >= MIN_CREATED_GAP:
        first = "a" if ta < tb else "b"
        return first, f"created first ({min(ta, tb):%Y-%m-%d} vs {max(ta, tb):%Y-%m-%d})"
    return None, "no declaration, directional structure or creation-time gap orders them"


def _nearest(repo: str, among: set[str], bases: Mapping[str, Iterable[str]]) -> str:
    """The ancestor of ``among`` fewest declared hops from ``repo`` (by name on a tie)."""
    frontier = set(bases.get(repo, ()))
    for _ in range(MAX_HOPS):
        hit = sorted(frontier & among)
        if hit:
            return hit[0]
        frontier = {b for r in frontier for b in bases.get(r, ())}
    return sorted(among)[0]
