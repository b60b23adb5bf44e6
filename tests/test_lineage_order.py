"""The lineage pass visits merge candidates family by family, breadth first, so a fetch's models are shared."""

from hubscan.pipeline.flagging.flag_lineage import graph_order


def _k(name: str) -> tuple[str, str]:
    return (name, "r")


def _graph(edges: list[tuple[str, str]]) -> dict[tuple[str, str], set[tuple[str, str]]]:
    out: dict[tuple[str, str], set[tuple[str, str]]] = {}
    for a, b in edges:
        out.setdefault(_k(a), set()).add(_k(b))
        out.setdefault(_k(b), set()).add(_k(a))
    return out


def test_every_child_once_family_by_family_nearest_first():
    # family 1: base b with children c1..c3, c3 with its own child d; family 2: x - y - z; 'lone' is no child
    graph = _graph(
        [("b", "c1"), ("b", "c2"), ("b", "c3"), ("c3", "d"), ("x", "y"), ("y", "z"), ("lone", "q")]
    )
    children = [_k(n) for n in ("z", "c1", "d", "b", "y", "c3", "c2")]
    order = [k[0] for k in graph_order(children, graph)]
    assert sorted(order) == sorted(k[0] for k in children)  # each once, nothing else
    assert order == ["b", "c1", "c2", "c3", "d", "y", "z"]  # b's family first (keys sorted), then x's
