"""Low-rank deltas on the sampled rows of real weights: a merged LoRA shows its rank, a cast or a full
fine-tune shows the full rank of the sample, and the verdict follows (pipeline.comparison.low_rank)."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from hubscan.pipeline.comparison import verdicts as v
from hubscan.pipeline.comparison.candidates import CandidatePair
from hubscan.pipeline.comparison.low_rank import MatrixDelta, matrix_delta, pair_delta
from hubscan.pipeline.comparison.working_row import WorkingRow
from hubscan.pipeline.flagging.low_rank_deltas import needs_delta
from hubscan.testbed.writers.safetensors_write import read_safetensors_np
from tests.real_checkpoints import real_model

# What a default fingerprint keeps of a 384 x 384 matrix: 8 head and 8 tail rows x 128 seeded columns.
ROWS = np.r_[0:8, 376:384]
SAMPLED = len(ROWS)
ROW = {"flagged": True, "signals": 5, "a_layers": 6, "b_layers": 6, "map_is_identity": True, "a_dtype": "F32",
       "b_dtype": "F32", "sketch_same": 1.0, "sketch": 1.0, "sketch_identical": 0.67, "values_identical": 1.0}  # fmt: skip


def _row(**changes) -> WorkingRow:
    """ROW with some columns changed, as the working row the verdict reads."""
    return WorkingRow(CandidatePair("org/a", "r1", "org/b", "r2", 384, "lsh"), **{**ROW, **changes})


@pytest.fixture(scope="module")
def query():
    state = read_safetensors_np(real_model("minilm-l6") / "model.safetensors")
    return state["encoder.layer.2.attention.self.query.weight"].astype(np.float32)


def _sketch(w: np.ndarray) -> np.ndarray:
    cols = np.sort(np.random.default_rng(0).choice(w.shape[1], 128, replace=False))
    return w[ROWS][:, cols].ravel()


def _lora(w: np.ndarray, rank: int, share: float = 0.04, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    change = rng.standard_normal((w.shape[0], rank)) @ rng.standard_normal((rank, w.shape[1]))
    return (w + share * np.linalg.norm(w) / np.linalg.norm(change) * change).astype(np.float32)


@pytest.mark.parametrize("rank", [1, 4, 8])
def test_a_merged_lora_shows_its_rank_on_the_sampled_rows(query, rank):
    d = matrix_delta("attn_q", _sketch(query), _sketch(_lora(query, rank)), SAMPLED)
    assert d is not None and d.moved and (d.rank, d.full) == (rank, SAMPLED)


def test_a_rank_above_what_the_sample_can_show_reads_full(query):
    d = matrix_delta("attn_q", _sketch(query), _sketch(_lora(query, 64)), SAMPLED)
    assert d is not None and d.rank == SAMPLED


@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16])
def test_a_cast_moves_by_full_rank_rounding(query, dtype):
    cast = query.astype(dtype).astype(np.float32)
    d = matrix_delta("attn_q", _sketch(query), _sketch(cast), SAMPLED)
    assert d is not None and d.moved and d.rank == SAMPLED


def test_a_full_fine_tune_like_drift_is_full_rank(query):
    rng = np.random.default_rng(3)
    drift = (query + 0.01 * query.std() * rng.standard_normal(query.shape)).astype(np.float32)
    d = matrix_delta("attn_q", _sketch(query), _sketch(drift), SAMPLED)
    assert d is not None and d.rank == SAMPLED and 0 < d.dev < 1e-3


def test_a_lora_merged_and_stored_in_bf16_is_not_called_low_rank(query):
    """Known limit: bf16 rounding (~0.4 % of a weight) buries a 4 % low-rank change's small directions."""
    merged = _lora(query, 8).astype(ml_dtypes.bfloat16).astype(np.float32)
    d = matrix_delta("attn_q", _sketch(query), _sketch(merged), SAMPLED)
    assert d is not None and d.rank is not None and d.rank > SAMPLED // 2


def test_untouched_matrices_do_not_count_as_moved(query):
    d = matrix_delta("attn_v", _sketch(query), _sketch(query.copy()), SAMPLED)
    assert d == MatrixDelta("attn_v", False, None, SAMPLED, 0.0)


def test_sketches_that_do_not_reshape_give_nothing(query):
    assert matrix_delta("attn_q", _sketch(query), _sketch(query)[:-1], SAMPLED) is None
    assert matrix_delta("attn_q", _sketch(query)[:-1], _sketch(query)[:-1], SAMPLED) is None


def _deltas(query, moved: dict[str, np.ndarray], untouched: int) -> list[MatrixDelta]:
    out = [matrix_delta(role, _sketch(query), _sketch(w), SAMPLED) for role, w in moved.items()]
    out += [matrix_delta("mlp_up", _sketch(query), _sketch(query), SAMPLED)] * untouched
    return [d for d in out if d is not None]


def test_a_pair_whose_moved_matrices_are_low_rank_is_a_low_rank_fine_tune(query):
    delta = pair_delta(_deltas(query, {"attn_q": _lora(query, 8), "attn_v": _lora(query, 8, seed=2)}, 4))
    assert delta is not None and (delta.rank, delta.moved, delta.matrices, delta.modules) == (
        8, 2, 6, ("attn_q", "attn_v")
    )  # fmt: skip
    assert v.verdict(_row(delta=delta)) == (v.LOW_RANK_FINE_TUNE, delta.low_rank_reason())
    assert delta.low_rank_reason().startswith("low-rank fine-tune (rank ≈ 8) of attn_q, attn_v: 2 of 6")


def test_one_fully_trained_matrix_among_them_is_not_a_lora(query):
    rng = np.random.default_rng(4)
    full = (query + 0.04 * query.std() * rng.standard_normal(query.shape)).astype(np.float32)
    delta = pair_delta(_deltas(query, {"attn_q": _lora(query, 8), "attn_v": full}, 4))
    assert delta is not None and delta.rank is None and delta.partial
    assert v.verdict(_row(delta=delta))[0] == v.FINE_TUNE


def test_without_a_delta_a_partly_moved_pair_reads_as_the_cast_the_issue_reported():
    # the median r is carried by the untouched matrices: 1 - r = 0, within "rounding to F32"
    assert v.verdict(_row())[0] == v.CAST_COPY


def test_a_partial_change_within_the_cast_band_stays_a_cast(query):
    """Quantisers that skip a few modules move the rest by rounding only: the delta's 1 - r is in the band."""
    cast = query.astype(ml_dtypes.bfloat16).astype(np.float32)
    delta = pair_delta(_deltas(query, {"attn_q": cast}, 4))
    assert delta is not None and delta.partial and delta.rank is None
    assert v.verdict(_row(b_dtype="BF16", delta=delta))[0] == v.CAST_COPY


def test_a_lora_merged_into_every_linear_is_low_rank_not_a_weight_only_quantisation(query):
    """No matrix untouched, norms bit-identical, 1 - r small: the rule for weight-only quantisation would fit."""
    moved = {role: _lora(query, 8, seed=i) for i, role in enumerate(("attn_q", "attn_k", "attn_v", "attn_o"))}
    delta = pair_delta(_deltas(query, moved, 0))
    assert delta is not None and not delta.partial and delta.rank == 8
    everything_moved = {"sketch_identical": 0.0, "sketch_same": 1 - 1e-3}
    assert v.verdict(_row(**everything_moved))[0] == v.CAST_COPY  # what it was without the delta
    assert v.verdict(_row(**everything_moved, delta=delta))[0] == v.LOW_RANK_FINE_TUNE


@pytest.mark.parametrize(
    ("changes", "examined"),
    [
        ({}, True),  # 12 of 36 matrices bit-identical
        ({"sketch_identical": 0.0}, True),  # everything moved, one dtype: no cast explains it
        ({"sketch_identical": 0.0, "b_dtype": "GPTQ-int4-g128"}, False),  # a quantised copy
        ({"sketch_identical": 1.0}, False),  # an exact copy
        ({"flagged": False}, False),
        ({"b_layers": 3}, False),  # another depth: the layer map's business
        ({"copy_link": True}, False),
    ],
)
def test_which_flagged_pairs_have_their_delta_read(changes, examined):
    assert needs_delta(_row(**changes)) is examined
