"""Scoring on hand-made signal rows, through the steps `hubscan flag` runs: working rows from the signal
queries' rows, merge_rows, the three passes of RowSpill (on disk), judge_pairs. Copy_of links, missing
evidence, known-unrelated backgrounds."""

from __future__ import annotations

import numpy as np
import pytest

from hubscan.pipeline.comparison import verdicts as v
from hubscan.pipeline.comparison.candidates import CandidatePair
from hubscan.pipeline.comparison.judge import judge_pairs
from hubscan.pipeline.comparison.records import ScoredPair
from hubscan.pipeline.comparison.scoring import (
    MIN_P,
    BatchSignals,
    ModelInfo,
    chance_z,
    copy_links,
    copy_pairs,
    declared_bases,
    fit_backgrounds,
    fit_sample,
    merge_rows,
)
from hubscan.pipeline.errors import QueryError
from hubscan.pipeline.flagging.flag_rows import RowSpill
from hubscan.pipeline.keys import ModelKey

A, B, C = ("org/a", "r1"), ("org/b", "r2"), ("org/c", "r3")


def _cand(x: ModelKey, y: ModelKey, via: str = "exhaustive") -> CandidatePair:
    return CandidatePair(x[0], x[1], y[0], y[1], 64, via)


def _signals(pair: CandidatePair, **values: float) -> dict[str, object]:
    """A row as compute_dim_scores.sql returns it."""
    return {"a_repo_id": pair.a_repo_id, "a_revision": pair.a_revision, "b_repo_id": pair.b_repo_id,
            "b_revision": pair.b_revision, **values}  # fmt: skip


def _score(
    cand: list[CandidatePair],
    signal_rows: list[dict[str, object]],
    models: dict[ModelKey, ModelInfo] | None = None,
    batch_size: int = 10_000,
) -> list[ScoredPair]:
    """The engine's scoring steps over these candidates, in batches of ``batch_size`` (one unit)."""
    models = models or {}
    links = copy_links(models)
    cand = cand + copy_pairs(cand, links)
    spill = RowSpill.open()
    try:
        for start in range(0, len(cand), batch_size):
            batch = BatchSignals.of(cand[start : start + batch_size])
            batch.add_signal_rows(signal_rows)
            spill.add(0, merge_rows(batch, models, links))
        spill.rank(None)
        ((_, rows),) = spill.units(0.01, declared_bases(models))
        return judge_pairs(rows)
    finally:
        spill.close()


def test_a_copy_of_link_is_an_exact_copy_even_without_signals():
    models = {A: ModelInfo("F32"), B: ModelInfo("F32", copy_of="org/a@r1"), C: ModelInfo()}
    rows = {(r.a_repo_id, r.b_repo_id): r for r in _score([_cand(A, C)], [], models)}
    copy = rows[("org/a", "org/b")]
    assert (copy.verdict, copy.flagged, copy.p, copy.via) == (v.EXACT_COPY, True, MIN_P, "copy_of")
    assert rows[("org/a", "org/c")].verdict == v.INSUFFICIENT


def test_per_dimension_evidence_flags_and_chance_does_not():
    ab, ac = _cand(A, B), _cand(A, C)
    related = _signals(ab, gain=0.9, gain_n=384, dim_std=0.9, dim_std_n=384)
    unrelated = _signals(ac, gain=0.03, gain_n=384, dim_std=-0.02, dim_std_n=384)
    rows = {r.b_repo_id: r for r in _score([ab, ac], [related, unrelated])}
    assert rows["org/b"].flagged and rows["org/b"].verdict == v.SAME_LINEAGE
    assert not rows["org/c"].flagged and rows["org/c"].verdict == v.UNRELATED
    gain = rows["org/b"].signal("gain")
    assert gain.bg_lo is not None and gain.bg_hi is not None and gain.bg_lo < gain.bg_hi < 0.9
    assert gain.n == 384  # the width SQL gave as gain_n, counted as the pairs table counts it


def _pair(i: int, via: str, r: float) -> tuple[CandidatePair, dict[str, object]]:
    pair = _cand((f"org/m{i}", "r"), (f"org/n{i}", "r"), via)
    return pair, _signals(pair, gain=r, gain_n=64, dim_std=r, dim_std_n=64)


def test_backgrounds_come_from_the_random_sample_not_from_pairs_lsh_chose_for_similarity():
    # 300 random draws at chance; 300 LSH pairs chosen for similar per-dimension vectors (r ~ 0.35,
    # about 2.8 chance sds: not beyond RELATED_Z, so a naive fit would take them as unrelated)
    rng = np.random.default_rng(0)
    sample = [_pair(i, "background", float(rng.normal(0, 0.12))) for i in range(300)]
    chosen = [_pair(1000 + i, "lsh", float(rng.normal(0.35, 0.03))) for i in range(300)]
    pairs = sample + chosen
    # in batches of 128, as flag spills them: the fit sees every batch's pairs
    rows = _score([p for p, _ in pairs], [s for _, s in pairs], batch_size=128)
    hi = {r.signal("gain").bg_hi for r in rows}
    assert len(hi) == 1 and hi.pop() < 0.3  # the 95 % point of the random pairs, not of the chosen
    # and with too few random draws the block falls back to every presumed-unrelated pair
    few = sample[:50] + chosen
    (first, *_) = _score([p for p, _ in few], [s for _, s in few])
    assert (first.signal("gain").bg_hi or 0.0) > 0.3


@pytest.mark.parametrize("random_draws", [50, 300])
def test_the_spill_fits_what_every_pairs_sample_fits_holding_only_the_random_ones(random_draws):
    # the chosen pairs' samples wait on disk: read back only for a block with too few random draws
    rng = np.random.default_rng(1)
    pairs = [_pair(i, "background", float(rng.normal(0, 0.12))) for i in range(random_draws)]
    pairs += [_pair(1000 + i, "lsh", float(rng.normal(0.35, 0.03))) for i in range(300)]
    spill, every = RowSpill.open(), []
    try:
        for start in range(0, len(pairs), 64):
            batch = BatchSignals.of([p for p, _ in pairs[start : start + 64]])
            batch.add_signal_rows([s for _, s in pairs[start : start + 64]])
            rows = merge_rows(batch, {}, {})
            every += [fit_sample(r, chance_z(r), ()) for r in rows]
            spill.add(0, rows)
        assert len(spill.samples) == random_draws  # only the random pairs' samples stay in memory
        spill.rank(None)
        assert spill.fitted == fit_backgrounds(every)
    finally:
        spill.close()


def test_a_signal_column_the_working_row_does_not_hold_is_an_error():
    batch = BatchSignals.of([_cand(A, B)])
    with pytest.raises(QueryError, match=r"signal column 'gain_squared' has no field in the working row$"):
        batch.add_signal_rows([_signals(_cand(A, B), gain=0.5, gain_squared=0.25)])
