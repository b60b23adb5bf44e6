"""The spanning forest that keeps a screened family whole when each model keeps only its nearest pairs."""

import numpy as np

from hubscan.pipeline.comparison.edges import Forest, LineageEdge, spanning_forest


def _edge(a: str, b: str, z: float) -> LineageEdge:
    return LineageEdge((a, "r0"), (b, "r0"), 128, z)


def test_the_forest_keeps_the_strongest_edges_and_links_every_component_once():
    # a sub-family (p and its children c0-c11) nearer each other than to the base, beside the base's own
    # fine-tunes: each child's nearest 8 are p and its siblings, so nearest-only edges cut p's subtree off
    edges = [_edge("p", f"c{i}", 40.0) for i in range(12)]
    edges += [_edge(f"c{i}", f"c{j}", 30.0) for i in range(12) for j in range(i + 1, 12)]
    edges += [_edge("base", f"f{i}", 50.0) for i in range(12)] + [_edge("base", "p", 12.0)]
    edges += [_edge("x", "y", 9.0)]  # another component
    forest = spanning_forest(edges)
    models = {m for e in edges for m in (e.a, e.b)}
    assert len(forest) == len(models) - 2  # two components, each a tree
    assert _edge("base", "p", 12.0) in forest and _edge("x", "y", 9.0) in forest
    assert not any(e.screen_z == 30.0 for e in forest)  # sibling edges are never the strongest link


def test_the_forest_is_the_same_whatever_order_the_edges_come_in():
    edges = [_edge("a", "b", 7.0), _edge("b", "c", 7.0), _edge("a", "c", 7.0), _edge("c", "d", 5.0)]
    assert spanning_forest(edges) == spanning_forest(list(reversed(edges)))


def test_the_forest_fed_in_batches_keeps_what_one_batch_keeps():
    # the store's path streams the screened pairs strongest first in batches of FOREST_BATCH rows
    rng = np.random.default_rng(3)
    a, b = rng.integers(0, 300, 5000), rng.integers(0, 300, 5000)
    whole = Forest(300).add(a, b)
    forest = Forest(300)
    parts = [forest.add(a[s : s + 700], b[s : s + 700]) + s for s in range(0, 5000, 700)]
    assert np.array_equal(np.concatenate(parts), whole)
    parent = list(range(300))

    def root(x: int) -> int:
        while parent[x] != x:
            x = parent[x]
        return x

    for x, y in zip(a.tolist(), b.tolist(), strict=True):
        parent[root(x)] = root(y)
    assert len(whole) == 300 - len({root(x) for x in range(300)})  # a tree per component
