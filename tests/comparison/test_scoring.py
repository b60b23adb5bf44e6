"""score_pairs on hand-made signal rows: copy_of links, missing evidence, known-unrelated backgrounds."""

from __future__ import annotations

from pipeline.comparison import verdicts as v
from pipeline.comparison.scoring import MIN_P, ModelInfo, PairInputs, score_pairs

A, B, C = ("org/a", "r1"), ("org/b", "r2"), ("org/c", "r3")


def _cand(x, y):
    return {
        "a_repo_id": x[0],
        "a_revision": x[1],
        "b_repo_id": y[0],
        "b_revision": y[1],
        "hidden": 64,
        "via": "exhaustive",
    }


def test_a_copy_of_link_is_an_exact_copy_even_without_signals():
    inputs = PairInputs(
        candidates=[_cand(A, C)],
        models={A: ModelInfo("F32"), B: ModelInfo("F32", copy_of="org/a@r1"), C: ModelInfo()},
    )
    rows = {(r["a_repo_id"], r["b_repo_id"]): r for r in score_pairs(inputs)}
    copy = rows[("org/a", "org/b")]
    assert (
        copy["verdict"] == v.EXACT_COPY
        and copy["flagged"]
        and copy["p"] == MIN_P
        and copy["via"] == "copy_of"
    )
    assert rows[("org/a", "org/c")]["verdict"] == v.INSUFFICIENT


def test_per_dimension_evidence_flags_and_chance_does_not():
    related = {**_cand(A, B), "gain": 0.9, "gain_n": 384, "dim_std": 0.9, "dim_std_n": 384}
    unrelated = {**_cand(A, C), "gain": 0.03, "gain_n": 384, "dim_std": -0.02, "dim_std_n": 384}
    inputs = PairInputs(
        candidates=[_cand(A, B), _cand(A, C)],
        dims=[related, unrelated],
        models={A: ModelInfo(), B: ModelInfo(), C: ModelInfo()},
    )
    rows = {r["b_repo_id"]: r for r in score_pairs(inputs)}
    assert rows["org/b"]["flagged"] and rows["org/b"]["verdict"] == v.SAME_LINEAGE
    assert not rows["org/c"]["flagged"] and rows["org/c"]["verdict"] == v.UNRELATED
    assert rows["org/b"]["gain_bg_lo"] < rows["org/b"]["gain_bg_hi"] < 0.9
