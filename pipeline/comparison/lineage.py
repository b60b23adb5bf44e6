"""Declared lineage: whether the model cards already say two models are related."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

# Declared ancestry is followed this many base_model hops (chains on the Hub are short; cycles exist).
MAX_HOPS = 8


def ancestors(repo_id: str, bases: Mapping[str, Iterable[str]]) -> set[str]:
    """Every repo reachable through declared base_models (the repo itself excluded)."""
    seen: set[str] = set()
    frontier = set(bases.get(repo_id, ()))
    for _ in range(MAX_HOPS):
        frontier -= seen | {repo_id}
        if not frontier:
            break
        seen |= frontier
        frontier = {b for r in frontier for b in bases.get(r, ())}
    return seen


def declared(a: str, b: str, bases: Mapping[str, Iterable[str]]) -> tuple[bool, str]:
    """(declared, how): a card names the other model, or both name a shared ancestor."""
    if a == b:
        return True, "same repository"
    anc_a, anc_b = ancestors(a, bases), ancestors(b, bases)
    if b in anc_a:
        return True, f"{a} declares {b}"
    if a in anc_b:
        return True, f"{b} declares {a}"
    shared = sorted(anc_a & anc_b)
    if shared:
        return True, f"shared declared ancestor {shared[0]}"
    return False, ""
