"""Direction of flagged edges: each kind of evidence orders the pair, in its order of trust."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hubscan.pipeline.comparison import direction as d
from hubscan.pipeline.comparison.verdicts import CAST_COPY, EXACT_COPY, FINE_TUNE, STRUCTURAL, VOCAB_COPY

BASE, FT, Q = "org/base", "org/base-ft", "someone/base-GGUF"


def _facts(*facts: d.ModelFacts) -> dict[str, d.ModelFacts]:
    return {f.repo_id: f for f in facts}


def test_a_declaration_orders_the_pair_whatever_else_is_known():
    facts = _facts(
        d.ModelFacts(BASE, "BF16"),
        d.ModelFacts(Q, "Q4_K", base_models=(BASE,), relations={BASE: "quantized"}),
    )
    got = d.direct(d.Edge(Q, BASE, CAST_COPY, 30.0), facts)
    assert (got.parent, got.child, got.kind) == (BASE, Q, d.DECLARED)
    assert got.how == f"{Q} declares {BASE} (quantized)" and got.finding is None


def test_a_declared_quantisation_that_the_weights_show_fine_tuned_is_a_finding():
    facts = _facts(d.ModelFacts(BASE), d.ModelFacts(Q, base_models=(BASE,), relations={BASE: "quantized"}))
    got = d.direct(d.Edge(BASE, Q, FINE_TUNE, 30.0), facts)
    assert (
        got.parent == BASE and got.finding == f"{Q} declares {BASE} quantized; the weights show {FINE_TUNE}"
    )


def test_declared_through_a_chain_of_bases():
    facts = _facts(
        d.ModelFacts(BASE), d.ModelFacts(FT, base_models=(BASE,)), d.ModelFacts(Q, base_models=(FT,))
    )
    got = d.direct(d.Edge(BASE, Q, FINE_TUNE, 30.0), facts)
    assert (got.parent, got.child) == (BASE, Q) and "through its base" in got.how


def test_a_merge_is_the_child_of_its_parent():
    got = d.direct(d.Edge("x/merge", FT, FINE_TUNE, 20.0, merge_child="x/merge"), {})
    assert (got.parent, got.child, got.kind) == (FT, "x/merge", d.MERGE)


@pytest.mark.parametrize("derived", ["a", "b"])
def test_the_derived_side_of_a_directional_map_is_the_child(derived):
    got = d.direct(d.Edge("x/pruned", BASE, STRUCTURAL, 20.0, structure="pruned", derived=derived), {})
    child = "x/pruned" if derived == "a" else BASE
    assert got.child == child and got.kind == d.STRUCTURE


def test_re_ordered_layers_read_the_same_both_ways():
    got = d.direct(d.Edge("x/reordered", BASE, STRUCTURAL, 20.0, structure="re-ordered", derived="a"), {})
    assert got.kind == d.UNKNOWN and got.parent is None


def test_a_vocabulary_cut_to_a_fraction_is_the_pruned_side_but_a_few_added_tokens_are_not():
    facts = _facts(d.ModelFacts("x/e5", vocab=250037), d.ModelFacts("x/e5-en", vocab=47284))
    got = d.direct(d.Edge("x/e5-en", "x/e5", VOCAB_COPY, 20.0), facts)
    assert (got.parent, got.kind) == ("x/e5", d.STRUCTURE) and "vocabulary-pruned" in got.how
    facts = _facts(d.ModelFacts("x/llama", vocab=32000), d.ModelFacts("x/llama-chat", vocab=32002))
    assert d.direct(d.Edge("x/llama", "x/llama-chat", VOCAB_COPY, 20.0), facts).kind == d.UNKNOWN


@pytest.mark.parametrize(
    ("high", "low"),
    [
        ("F32", "BF16"),
        ("BF16", "Q8_0"),
        ("BF16", "MLX-int4-g64"),
        ("F16", "NF4-dq"),
        ("BF16", "FP8-E4M3-channel"),
        ("Q8_0", "Q4_K"),
        ("FP8-E4M3-block128", "NVFP4"),
        ("INT8-bnb", "INT4-g128"),
        ("Q5_K", "IQ2_XS"),
    ],
)
def test_the_lower_precision_side_of_a_cast_is_the_child(high, low):
    facts = _facts(d.ModelFacts("x/hi", high), d.ModelFacts("x/lo", low))
    got = d.direct(d.Edge("x/lo", "x/hi", CAST_COPY, 40.0), facts)
    assert (got.parent, got.child, got.kind) == ("x/hi", "x/lo", d.PRECISION)


def test_precision_does_not_order_a_fine_tune_or_equal_widths():
    facts = _facts(d.ModelFacts("x/a", "BF16"), d.ModelFacts("x/b", "F16"))
    assert d.direct(d.Edge("x/a", "x/b", CAST_COPY, 40.0), facts).kind == d.UNKNOWN
    facts = _facts(d.ModelFacts("x/a", "F32"), d.ModelFacts("x/b", "BF16"))
    assert d.direct(d.Edge("x/a", "x/b", FINE_TUNE, 40.0), facts).kind == d.UNKNOWN


def test_creation_time_orders_only_a_day_apart():
    day1, day1_late, day5 = (datetime(2025, 1, d_, h, tzinfo=UTC) for d_, h in ((1, 0), (1, 20), (5, 0)))
    facts = _facts(d.ModelFacts("x/a", created_at=day1), d.ModelFacts("x/b", created_at=day5))
    got = d.direct(d.Edge("x/b", "x/a", FINE_TUNE, 10.0), facts)
    assert (got.parent, got.kind) == ("x/a", d.CREATED)
    facts = _facts(d.ModelFacts("x/a", created_at=day1), d.ModelFacts("x/b", created_at=day1_late))
    assert d.direct(d.Edge("x/b", "x/a", FINE_TUNE, 10.0), facts).kind == d.UNKNOWN


def test_a_stars_centre_is_the_parent_of_its_spokes():
    spokes = [f"x/ft{i}" for i in range(4)]
    edges = [d.Edge("x/centre", s, FINE_TUNE, 20.0 - i) for i, s in enumerate(spokes)]
    edges.append(d.Edge(spokes[0], spokes[1], FINE_TUNE, 5.0))  # siblings are further from each other
    centres = d.nearest_counts(edges)
    assert centres["x/centre"] == 4
    got = d.direct(edges[2], {}, centres)
    assert (got.parent, got.child, got.kind) == ("x/centre", spokes[2], d.CENTRE)
    assert d.direct(edges[-1], {}, centres).kind == d.UNKNOWN  # two spokes: neither is a centre


def test_the_order_of_trust():
    # declared beats a merge fit, a merge beats structure, structure beats precision
    facts = _facts(d.ModelFacts("x/a", "F32"), d.ModelFacts("x/b", "Q4_K", base_models=("x/a",)))
    edge = d.Edge("x/a", "x/b", CAST_COPY, 9.0, merge_child="x/a", structure="pruned", derived="a")
    assert d.direct(edge, facts).kind == d.DECLARED
    assert d.direct(edge, {}).kind == d.MERGE
    edge = d.Edge("x/a", "x/b", CAST_COPY, 9.0, structure="pruned", derived="b")
    facts = _facts(d.ModelFacts("x/a", "Q4_K"), d.ModelFacts("x/b", "F32"))
    assert d.direct(edge, facts).child == "x/b"


def test_exact_copies_have_no_centre_and_a_tied_nearest_names_none():
    copies = ["x/orig", "x/reupload", "x/renamed"]
    edges = [d.Edge(a, b, EXACT_COPY, float("inf")) for i, a in enumerate(copies) for b in copies[i + 1 :]]
    assert d.nearest_counts(edges) == {}  # each copy's best score is shared by the other two
    assert d.direct(edges[0], {}, {"x/orig": 5}).kind == d.UNKNOWN
