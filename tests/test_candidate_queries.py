"""The candidate SQL on a real store of the testbed's three MiniLM-family models (one 384-wide block), a
pair of unknown architecture and nothing else: expected pairs, labels, ids and parameter effects."""

from __future__ import annotations

import dataclasses

import pytest

from hubscan.jobs import fingerprint
from hubscan.pipeline.comparison.candidates import CandidatePair
from hubscan.pipeline.config import Settings
from hubscan.pipeline.errors import QueryError
from hubscan.pipeline.storage.duckdb import candidate_pairs, connect, fetch_rows, use_candidates

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
FINETUNED = "demohub/minilm-l6-finetuned"
# a cousin: another MiniLM (3 layers) of the same width, whose card states no licence
COUSIN = "licbed/minilm-l3-nolicence"
BLOCK_384 = {frozenset(p) for p in [(MINILM, FINETUNED), (MINILM, COUSIN), (FINETUNED, COUSIN)]}


@pytest.fixture(scope="module")
def store(testbed, tmp_path_factory):
    root = tmp_path_factory.mktemp("candstore") / "store"
    repos = [MINILM, FINETUNED, COUSIN, "vision-lab/tiny-cnn-s0", "demohub/tiny-cnn-s0-finetuned"]
    summary = fingerprint.run(Settings(store=root), [str(testbed / r) for r in repos])
    assert (summary.done, summary.failed) == (5, 0), summary.messages
    return root


def _pairs(rows: list[dict]) -> set[frozenset[str]]:
    return {frozenset((r["a_repo_id"], r["b_repo_id"])) for r in rows}


def _candidate_pairs(pairs: list[CandidatePair]) -> set[frozenset[str]]:
    return {frozenset((c.a_repo_id, c.b_repo_id)) for c in pairs}


def _table(con, name: str) -> list[dict]:
    return con.sql(f"SELECT * FROM {name}").to_arrow_table().to_pylist()


def test_known_architectures_are_blocked_by_hidden_size(store):
    con = connect(store)
    candidate_pairs(con)
    rows = sorted(_table(con, "candidate_blocks"), key=lambda r: r["repo_id"])
    # the CNNs have no known role: they are blocked by layout, not here
    assert [(r["repo_id"], r["hidden"], r["models"]) for r in rows] == [
        (FINETUNED, 384, 3),
        (COUSIN, 384, 3),
        (MINILM, 384, 3),
    ]
    assert sorted(r["idx"] for r in rows) == [0, 1, 2]


def test_a_small_block_gives_every_pair_once_in_key_order(store):
    rows = candidate_pairs(connect(store), {"exhaustive_max": 300})
    assert _candidate_pairs(rows) == BLOCK_384 and len(rows) == 3
    assert {(c.via, c.hidden, c.block_pairs, c.layout) for c in rows} == {("exhaustive", 384, 3, None)}
    assert all(c.a_repo_id < c.b_repo_id for c in rows)


def test_lsh_finds_the_minilm_family_and_the_screen_can_drop_it(store):
    con = connect(store)
    rows = candidate_pairs(con, {"exhaustive_max": 0, "background_pairs": 0})
    assert _candidate_pairs(rows) == BLOCK_384 and {c.via for c in rows} == {"lsh"}
    # two signatures (gain, dim_std) of 384 dims per model, 10 bits at 3 models, a code per band
    sigs = _table(con, "lsh_signatures")
    assert {(r["kind"], r["d"], r["bits"]) for r in sigs} == {("gain", 384, 10), ("dim_std", 384, 10)}
    assert len(sigs) == 6 and len(_table(con, "lsh_codes")) == 6 * 24
    # z is at most atanh(max_r) * sqrt(384 - 3) ~ 141 (identical signatures): a 150-sd screen keeps none
    assert candidate_pairs(con, {"exhaustive_max": 0, "background_pairs": 0, "min_z": 150.0}) == []
    candidate_pairs(con, {"exhaustive_max": 0, "background_pairs": 0, "bands": 2})
    assert len(_table(con, "lsh_codes")) == 6 * 2


def test_a_drawn_pair_keeps_its_background_label_when_lsh_finds_it_too(store):
    con = connect(store)
    rows = candidate_pairs(con, {"exhaustive_max": 0, "background_pairs": 1})
    drawn = _pairs(_table(con, "background_pairs"))
    # one draw; LSH alone finds all three pairs (above), so the drawn one is found both ways
    assert len(drawn) == 1 and drawn < BLOCK_384
    assert {frozenset((c.a_repo_id, c.b_repo_id)): c.via for c in rows} == {
        p: "background" if p in drawn else "lsh" for p in BLOCK_384
    }
    # more draws than the block has pairs: every pair is drawn, each once
    rows = candidate_pairs(con, {"exhaustive_max": 0, "background_pairs": 50})
    assert len(rows) == 3 and {c.via for c in rows} == {"background"}


def test_every_column_the_candidate_queries_return_is_a_field_of_the_record(store):
    con = connect(store)
    candidate_pairs(con, {"exhaustive_max": 300})  # builds the step tables the last file joins
    fields = {f.name for f in dataclasses.fields(CandidatePair)}
    for name in ("compute_candidate_pairs", "compute_layout_candidate_pairs"):
        rows = fetch_rows(con, name, {"exhaustive_max": 300} if "layout" in name else None)
        assert rows and set(rows[0]) <= fields, name
        columns = {c: [r[c] for r in rows] for c in rows[0]}
        assert [c.key for c in CandidatePair.from_columns(columns)] == [
            (r["a_repo_id"], r["a_revision"], r["b_repo_id"], r["b_revision"]) for r in rows
        ]


def test_a_parameter_no_step_declares_is_refused(store):
    with pytest.raises(
        QueryError, match=r"compute_candidate_pairs\.sql: unknown parameters: exhaustive_maxx$"
    ):
        candidate_pairs(connect(store), {"exhaustive_maxx": 0})


def test_candidates_are_numbered_in_key_order_and_materialised_per_batch(store):
    con = connect(store)
    # the default candidates view: every same-width pair, numbered lazily
    ids = sorted(_table(con, "candidate_ids"), key=lambda r: r["pid"])
    models = {r["mid"]: r["repo_id"] for r in _table(con, "candidate_models")}
    assert [r["pid"] for r in ids] == [1, 2, 3] and sorted(models.values()) == [FINETUNED, COUSIN, MINILM]
    keys = [(r["a_repo_id"], r["a_revision"], r["b_repo_id"], r["b_revision"]) for r in ids]
    assert keys == sorted(keys) and _pairs(ids) == BLOCK_384
    assert all(models[r["a_mid"]] == r["a_repo_id"] and models[r["b_mid"]] == r["b_repo_id"] for r in ids)
    # given pairs: exactly those, kept as temp tables
    use_candidates(con, [CandidatePair.from_row({**ids[2], "hidden": 384, "via": "requested"})])
    one = _table(con, "candidate_ids")
    assert [(r["pid"], r["a_repo_id"], r["b_repo_id"]) for r in one] == [
        (1, ids[2]["a_repo_id"], ids[2]["b_repo_id"])
    ]
    assert len(_table(con, "candidate_models")) == 2
    temp = {r[0] for r in con.sql("SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall()}
    assert {"_candidate_ids", "_candidate_models"} <= temp


def test_signal_files_score_the_fine_tune_against_its_base(store):
    con = connect(store)
    use_candidates(con, candidate_pairs(con, {"exhaustive_max": 300}))
    dims = {frozenset((r["a_repo_id"], r["b_repo_id"])): r for r in fetch_rows(con, "compute_dim_scores")}
    tuned = dims[frozenset((MINILM, FINETUNED))]
    assert min(tuned["gain"], tuned["dim_std"], tuned["col_norms"]) > 0.9999
    # the cousin shares its per-dimension statistics (~0.91 to 0.94), not its matrices (col norms ~0.55)
    cousin = dims[frozenset((MINILM, COUSIN))]
    assert 0.9 < cousin["gain"] < 0.95 and 0.5 < cousin["col_norms"] < 0.6
    # vectors shorter than min_dims are not compared: 384 dims, so 385 leaves nothing
    assert fetch_rows(con, "compute_dim_scores", {"min_dims": 385}) == []
    sketch = {
        frozenset((r["a_repo_id"], r["b_repo_id"])): r for r in fetch_rows(con, "compute_sketch_scores")
    }
    assert sketch[frozenset((MINILM, FINETUNED))]["sketch"] > 0.9999
    assert sketch[frozenset((MINILM, FINETUNED))]["map_is_identity"]
    assert abs(sketch[frozenset((MINILM, COUSIN))]["sketch"]) < 0.05
    layers = fetch_rows(con, "compute_layer_similarity", {"min_dims": 385})
    assert layers and all(r["col_norms_r"] is None for r in layers)
