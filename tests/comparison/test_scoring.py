"""score_pairs (and judge_pairs) on hand-made signal rows: copy_of links, missing evidence, known-unrelated backgrounds."""

from __future__ import annotations

import numpy as np

from pipeline.comparison import verdicts as v
from pipeline.comparison.judge import judge_pairs
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
    rows = {(r["a_repo_id"], r["b_repo_id"]): r for r in judge_pairs(score_pairs(inputs))}
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
    rows = {r["b_repo_id"]: r for r in judge_pairs(score_pairs(inputs))}
    assert rows["org/b"]["flagged"] and rows["org/b"]["verdict"] == v.SAME_LINEAGE
    assert not rows["org/c"]["flagged"] and rows["org/c"]["verdict"] == v.UNRELATED
    assert rows["org/b"]["gain_bg_lo"] < rows["org/b"]["gain_bg_hi"] < 0.9


def _pair(i: int, via: str, r: float) -> dict:
    x, y = (f"org/m{i}", "r"), (f"org/n{i}", "r")
    return {**_cand(x, y), "via": via, "gain": r, "gain_n": 64, "dim_std": r, "dim_std_n": 64}


def test_backgrounds_come_from_the_random_sample_not_from_pairs_lsh_chose_for_similarity():
    # 300 random draws at chance; 300 LSH pairs chosen for similar per-dimension vectors (r ~ 0.35,
    # about 2.8 chance sds: not beyond RELATED_Z, so a naive fit would take them as unrelated)
    rng = np.random.default_rng(0)
    sample = [_pair(i, "background", float(rng.normal(0, 0.12))) for i in range(300)]
    chosen = [_pair(1000 + i, "lsh", float(rng.normal(0.35, 0.03))) for i in range(300)]
    rows = score_pairs(PairInputs(candidates=sample + chosen, dims=sample + chosen))
    hi = {r["gain_bg_hi"] for r in rows}
    assert len(hi) == 1 and hi.pop() < 0.3  # the 95 % point of the random pairs, not of the chosen
    # and with too few random draws the block falls back to every presumed-unrelated pair
    few = score_pairs(PairInputs(candidates=sample[:50] + chosen, dims=sample[:50] + chosen))
    assert few[0]["gain_bg_hi"] > 0.3
