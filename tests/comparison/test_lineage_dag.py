"""Families drawn as directed graphs: roots are origins, two parents mean two places, no model under its descendant."""

from __future__ import annotations

import random

import pytest

from hubscan.pipeline.comparison.lineage_dag import Link, layout


def _positions(lines: list[str]) -> dict[str, tuple[int, str | None]]:
    """First drawing of each model: (depth, the model drawn above it)."""
    out: dict[str, tuple[int, str | None]] = {}
    stack: list[str] = []
    for line in lines:
        depth = (len(line) - len(line.lstrip())) // 2
        name = line.strip().split(" ")[1] if depth else line.strip()
        stack = stack[:depth]
        if name not in out:
            out[name] = (depth, stack[-1] if stack else None)
        stack.append(name)
    return out


def test_a_merge_of_two_unrelated_models_joins_their_families_under_both_roots():
    links = [
        Link("a/base", "a/ft", "fine-tune", 30), Link("b/base", "b/ft", "fine-tune", 30),
        Link("a/ft", "m/merge", "merge", 20, evidence="merge"), Link("b/ft", "m/merge", "merge", 15, evidence="merge"),
    ]  # fmt: skip
    dag = layout(["a/base", "a/ft", "b/base", "b/ft", "m/merge"], links)
    assert sorted(dag.roots) == ["a/base", "b/base"]
    lines = dag.lines()
    assert sum("m/merge" in line for line in lines) == 2
    assert sum("m/merge (drawn above)" in line for line in lines) == 1
    assert dag.parents_of("m/merge") == ["a/ft", "b/ft"]


def test_the_stacked_models_sources_are_drawn_above_it_never_below():
    # the demo's bug: e5-small, a source of the stacked model, was drawn as its child
    links = [
        Link("minilm", "stacked", "stacked", 40, evidence="structure"),
        Link("e5", "stacked", "stacked", 25, evidence="structure"),
        Link("minilm", "minilm-int8", "cast", 50, evidence="precision"),
    ]
    dag = layout(["e5", "minilm", "minilm-int8", "stacked"], links)
    pos = _positions(dag.lines())
    assert set(dag.roots) == {"minilm", "e5"} and pos["stacked"][1] in ("minilm", "e5")


def test_the_declared_base_is_the_root_even_when_more_cards_name_its_fine_tune():
    links = [Link("base", "ft", "fine-tune", 30, evidence="declared")]
    links += [Link("ft", f"q{i}", "cast", 40, evidence="declared") for i in range(5)]
    dag = layout(["base", "ft", *(f"q{i}" for i in range(5))], links)
    assert dag.roots == ["base"] and _positions(dag.lines())["ft"] == (1, "base")


def test_an_undirected_edge_hangs_a_new_member_and_says_the_direction_is_unknown():
    links = [
        Link("base", "ft", "fine-tune", 30, evidence="declared"),
        Link("ft", "x", "fine-tune", 10, directed=False),
    ]
    dag = layout(["base", "ft", "x"], links)
    assert dag.roots == ["base"]
    assert any("- x (direction unknown)" in line for line in dag.lines())


def test_a_family_with_no_direction_at_all_starts_at_its_best_linked_member():
    links = [Link("hub", s, "fine-tune", 10 + i, directed=False) for i, s in enumerate(["s1", "s2", "s3"])]
    dag = layout(["s1", "s2", "s3", "hub"], links)
    assert dag.roots == ["hub"] and len(dag.lines()) == 4


def test_a_cycle_of_conflicting_evidence_gives_up_its_weakest_link():
    links = [
        Link("a", "b", "fine-tune", 30, evidence="declared"),
        Link("b", "a", "structural derivative", 30, evidence="structure"),
    ]
    dag = layout(["a", "b"], links)
    assert dag.roots == ["a"] and _positions(dag.lines())["b"] == (1, "a")


@pytest.mark.parametrize("seed", range(60))
def test_no_model_is_ever_drawn_below_its_own_descendant(seed):
    rng = random.Random(seed)
    n = rng.randint(3, 40)
    names = [f"m{i:02d}" for i in range(n)]
    links = []
    for i in range(1, n):  # a random DAG in index order, some nodes with two parents
        for p in rng.sample(range(i), k=min(i, rng.choice([1, 1, 1, 2]))):
            directed = rng.random() < 0.6
            a, b = (names[p], names[i]) if directed or rng.random() < 0.5 else (names[i], names[p])
            links.append(Link(a, b, "x", rng.random() * 50, directed, "declared" if directed else ""))
    for _ in range(n // 2):  # undirected relations between any two members (siblings, cousins, ...)
        a, b = rng.sample(names, 2)
        links.append(Link(a, b, "x", rng.random() * 50, False))
    dag = layout(names, links)
    lines = dag.lines()
    pos = _positions(lines)
    assert set(pos) == set(names)  # every member is drawn
    descendants = {m: _directed_descendants(m, links) for m in names}
    for child, (_, above) in pos.items():
        if above is not None:
            assert above not in descendants[child], (child, above)
    for root in dag.roots:  # a root is an origin: no directed edge points into it
        assert not any(k.directed and k.child == root for k in links)


def _directed_descendants(node: str, links: list[Link]) -> set[str]:
    out: set[str] = set()
    frontier = [node]
    while frontier:
        here = frontier.pop()
        for k in links:
            if k.directed and k.parent == here and k.child not in out:
                out.add(k.child)
                frontier.append(k.child)
    return out


def test_a_structural_parent_reached_through_another_parent_is_not_drawn_twice():
    # SmolLM2 (30 layers) -> its 4-layer cut -> the cut's MoE upcycle; the map also relates the MoE to
    # the 30-layer original, through the cut: the MoE is drawn under the cut alone
    links = [
        Link("smol", "smol-4l", "structural", 80, evidence="structure"),
        Link("smol-4l", "moe", "structural", 240, evidence="structure"),
        Link("smol", "moe", "structural", 3, evidence="structure"),
    ]
    dag = layout(["smol", "smol-4l", "moe"], links)
    assert dag.parents_of("moe") == ["smol-4l"] and not any("drawn above" in line for line in dag.lines())
