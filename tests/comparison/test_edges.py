"""The spanning forest that keeps a screened family whole when each model keeps only its nearest pairs,
added to lineage_pairs from lsh_pairs in DuckDB as candidate_pairs() does."""

import duckdb
import numpy as np
import pyarrow as pa

from hubscan.pipeline.comparison.edges import Forest
from hubscan.pipeline.storage.duckdb import add_spanning_forest

Edge = tuple[str, str, float]  # two models (a before b) and the screen z of their pair


def _forest(edges: list[Edge], already: tuple[Edge, ...] | list[Edge] = ()) -> set[Edge]:
    """The edges add_spanning_forest adds to lineage_pairs (holding ``already``) from lsh_pairs ``edges``."""
    models = sorted({m for a, b, _ in edges for m in (a, b)})
    mid = {m: i for i, m in enumerate(models)}  # candidate_blocks numbers models in key order
    con = duckdb.connect()
    blocks = pa.table({"repo_id": models, "revision": ["r0"] * len(models), "hidden": [128] * len(models),
                       "mid": list(range(len(models)))})  # fmt: skip
    lsh = pa.table({"a_mid": [mid[a] for a, _, _ in edges], "b_mid": [mid[b] for _, b, _ in edges],
                    "hidden": [128] * len(edges), "via": ["lsh"] * len(edges),
                    "screen_z": [z for _, _, z in edges]})  # fmt: skip
    text = pa.string()
    lineage = pa.table({"a_repo_id": pa.array([a for a, _, _ in already], text),
                        "a_revision": pa.array(["r0"] * len(already), text),
                        "b_repo_id": pa.array([b for _, b, _ in already], text),
                        "b_revision": pa.array(["r0"] * len(already), text),
                        "hidden": pa.array([128] * len(already), pa.int64()),
                        "via": pa.array(["lsh"] * len(already), text),
                        "screen_z": pa.array([z for _, _, z in already], pa.float64())})  # fmt: skip
    for name, table in (("candidate_blocks", blocks), ("lsh_pairs", lsh), ("lineage_pairs", lineage)):
        con.register("_t", table)
        con.execute(f"CREATE TEMP TABLE {name} AS SELECT * FROM _t")
        con.unregister("_t")
    add_spanning_forest(con)
    rows = con.execute(
        "SELECT a_repo_id, b_repo_id, screen_z FROM lineage_pairs WHERE via = 'lsh'"
    ).fetchall()
    return set(rows) - set(already)


def _family() -> list[Edge]:
    # a sub-family (p and its children c00-c11) nearer each other than to the base, beside the base's own
    # fine-tunes: each child's nearest 8 are p and its siblings, so nearest-only edges cut p's subtree off
    edges = [(f"c{i:02d}", "p", 40.0) for i in range(12)]
    edges += [(f"c{i:02d}", f"c{j:02d}", 30.0) for i in range(12) for j in range(i + 1, 12)]
    edges += [("base", f"f{i:02d}", 50.0) for i in range(12)] + [("base", "p", 12.0)]
    return [*edges, ("x", "y", 9.0)]  # another component


def test_the_forest_keeps_the_strongest_edges_and_links_every_component_once():
    edges = _family()
    forest = _forest(edges)
    models = {m for a, b, _ in edges for m in (a, b)}
    assert len(forest) == len(models) - 2  # two components, each a tree
    assert ("base", "p", 12.0) in forest and ("x", "y", 9.0) in forest
    assert not any(z == 30.0 for _, _, z in forest)  # sibling edges are never the strongest link


def test_the_forest_is_the_same_whatever_order_the_edges_come_in():
    edges = [("a", "b", 7.0), ("b", "c", 7.0), ("a", "c", 7.0), ("c", "d", 5.0)]
    assert (
        _forest(edges)
        == _forest(list(reversed(edges)))
        == {("a", "b", 7.0), ("a", "c", 7.0), ("c", "d", 5.0)}
    )


def test_an_edge_lineage_pairs_already_holds_is_not_added_again():
    edges = _family()
    assert _forest(edges, already=[("base", "p", 12.0)]) == _forest(edges) - {("base", "p", 12.0)}


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
