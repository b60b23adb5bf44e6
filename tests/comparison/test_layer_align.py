"""Layer and expert maps on real fingerprints: the structural testbed variants against their sources.

Every expected map is the construction in testbed/demohub/testbed.py (STRUCTURAL_VARIANTS); the
fingerprints are read from the testbed's real files, the matrices come from the shipped SQL.
"""

from __future__ import annotations

import pytest

from hubscan.jobs import fingerprint
from hubscan.pipeline.comparison import expert_map as em
from hubscan.pipeline.comparison import layer_align as la
from hubscan.pipeline.comparison.candidates import CandidatePair
from hubscan.pipeline.config import Settings
from hubscan.pipeline.flagging import engine as flag
from hubscan.pipeline.storage.duckdb import load_sql, run_sql, use_candidates
from hubscan.pipeline.storage.parquet import Store
from hubscan.testbed.demohub.testbed import PERMUTED_EXPERTS

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
COUSIN = "sentence-transformers/paraphrase-MiniLM-L3-v2"
E5, E5_6L = "intfloat/multilingual-e5-small", "demohub/multilingual-e5-small-6L"
L3, UP, REORDER = "demohub/MiniLM-L3-pruned", "demohub/MiniLM-8L-upscaled", "demohub/MiniLM-reordered"
SMOL_GGUF, SMOL_4L = "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF", "demohub/SmolLM2-135M-4L"
MOE, FINE, PERMUTED = (
    "demohub/SmolLM2-4x135M-4L-MoE",
    "demohub/SmolLM2-4L-fine-MoE",
    "demohub/SmolLM2-4x135M-4L-MoE-permuted",
)
REPOS = [MINILM, COUSIN, E5, E5_6L, L3, UP, REORDER, SMOL_GGUF, SMOL_4L, MOE, FINE, PERMUTED]


@pytest.fixture(scope="module")
def con(testbed, tmp_path_factory):
    missing = [r for r in REPOS if not (testbed / r).is_dir()]
    if missing:
        pytest.skip(f"not in this testbed: {missing}")
    root = tmp_path_factory.mktemp("alignstore") / "store"
    summary = fingerprint.run(Settings(store=root), [str(testbed / r) for r in REPOS])
    assert summary.failed == 0, summary.messages
    return flag.flag_connection(Store(root).init())


def _keys(con, a: str, b: str) -> CandidatePair:
    revs = dict(con.sql("SELECT repo_id, revision FROM models").fetchall())
    a, b = sorted([a, b])
    return CandidatePair(a, revs[a], b, revs[b], 0, "t")


def layer_map(con, a: str, b: str) -> tuple[la.LayerMap, CandidatePair]:
    """The layer map of a pair, oriented so the returned pairs are (model a's layer, model b's layer)."""
    cand = _keys(con, a, b)
    use_candidates(con, [cand])
    rows = run_sql(con, load_sql("compute_layer_similarity")).to_arrow_table().to_pylist()
    sims = la.similarity_matrices(rows)
    (sim,) = sims.values()
    return la.align(sim), cand


def mapped(con, source: str, derived: str) -> tuple[la.LayerMap, list[int | None]]:
    """The map and, per layer of ``derived``, the layer of ``source`` it comes from."""
    lmap, cand = layer_map(con, source, derived)
    derived_side = "a" if cand.a_repo_id == derived else "b"
    assert lmap.derived_side == derived_side
    return lmap, [m.source if m.matched else None for m in lmap.matches]


def test_pruned_e5_keeps_every_second_layer(con):
    lmap, src = mapped(con, E5, E5_6L)
    assert lmap.structure == la.PRUNED and src == [0, 2, 4, 6, 8, 10]  # B.layer k <- A.layer 2k
    assert all(m.r > 0.999 and m.log10_p < -100 for m in lmap.matches)


def test_pruned_minilm_keeps_layers_1_3_5(con):
    lmap, src = mapped(con, MINILM, L3)
    assert lmap.structure == la.PRUNED and src == [1, 3, 5]
    assert "keeps" in lmap.summary and "1,3,5" in lmap.summary


def test_depth_upscale_is_two_overlapping_runs(con):
    lmap, src = mapped(con, MINILM, UP)
    assert lmap.structure == la.UPSCALED and src == [0, 1, 2, 3, 2, 3, 4, 5]
    assert la.runs([s for s in src if s is not None]) == [(0, 3), (2, 5)]
    assert "0-3 + 2-5" in lmap.summary and "repeated 2,3" in lmap.summary


def test_reordered_layers_are_found_by_assignment_not_the_monotone_path(con):
    lmap, src = layer_map_reorder(con)
    assert lmap.structure == la.REORDERED and src == [0, 1, 3, 2, 5, 4]


def layer_map_reorder(con):
    lmap, cand = layer_map(con, MINILM, REORDER)
    # same depth: the derived side is B by convention; read the map as reordered-layer <- MiniLM layer
    pairs = dict(lmap.pairs()) if cand.a_repo_id == REORDER else {b: a for a, b in lmap.pairs()}
    return lmap, [pairs[k] for k in range(6)]


def test_truncated_smollm_from_the_gguf_original(con):
    lmap, src = mapped(con, SMOL_GGUF, SMOL_4L)
    # dequantised Q4_1 -> BF16, Q/K rows un-permuted: v/o/MLP align, q/k do not, the median holds
    assert lmap.structure == la.PRUNED and src == [0, 1, 2, 3]


def test_unrelated_same_shape_pair_has_no_map(con):
    lmap, _ = layer_map(con, MINILM, E5)
    assert lmap.structure is None and not any(m.matched for m in lmap.matches)
    assert "no layer map" in lmap.summary


def test_cousins_get_no_false_layer_map_although_their_col_norms_are_shared(con):
    lmap, _ = layer_map(con, MINILM, COUSIN)
    assert lmap.structure is None and not any(m.matched for m in lmap.matches)
    assert max(abs(m.r) for m in lmap.matches) < 0.05  # element-aligned: chance
    # per-dimension col-norms are well beyond chance on some cells (shared origin), yet never match alone
    assert max(m.col_r for m in lmap.matches if m.col_r is not None) > 0.3


def _experts(con, a: str, b: str) -> tuple[em.ExpertMap, dict]:
    cand = _keys(con, a, b)
    use_candidates(con, [cand])
    models = em.models_from_rows(run_sql(con, load_sql("list_mlp_tensors")).to_arrow_table().to_pylist())
    ka, kb = cand.a, cand.b
    emap = em.expert_map(models[ka], models[kb])
    assert emap is not None
    return emap, cand


def test_copy_upcycled_experts_map_to_the_dense_mlp_of_their_layer(con):
    emap, _ = _experts(con, SMOL_4L, MOE)
    assert emap.structure == em.UPCYCLED and emap.how == "expert copies"
    assert len(emap.matches) == 16 and all(m.matched and m.evidence == "sketch" for m in emap.matches)
    assert all(
        m.other_layer == m.layer and m.other_expert is None and m.slice_lo is None for m in emap.matches
    )


def test_fine_grained_experts_map_to_their_slice_by_down_column_norms(con):
    emap, _ = _experts(con, SMOL_4L, FINE)
    assert emap.structure == em.UPCYCLED and emap.how == "fine-grained slices"
    for m in emap.matches:
        assert m.matched and m.evidence == "down col-norm window"
        assert (m.other_layer, m.slice_lo, m.slice_hi) == (m.layer, m.expert * 384, (m.expert + 1) * 384)
        assert m.r > 0.99 and (m.alt_r or 0) < 0.5  # the right window stands far above the other windows


def test_moe_vs_moe_recovers_the_expert_permutation(con):
    emap, cand = _experts(con, MOE, PERMUTED)
    assert cand.a_repo_id == MOE  # sorted ids: the original MoE is side a
    assert emap.structure == em.EXPERTS_PERMUTED
    for m in emap.matches:
        assert m.matched and PERMUTED_EXPERTS[m.layer][m.other_expert] == m.expert
        assert m.r > m.alt_r  # copy-upcycled experts all look alike; the true one still stands out


def test_dense_vs_dense_has_no_expert_map(con):
    cand = _keys(con, MINILM, L3)
    use_candidates(con, [cand])
    models = em.models_from_rows(run_sql(con, load_sql("list_mlp_tensors")).to_arrow_table().to_pylist())
    assert em.expert_map(*models.values()) is None
