"""`hubscan flag --incremental` on a block that grows, through the real flag on real DuckDB: the models a
later sweep adds get their lineage edges scored, the pairs already placed stay as the last run wrote them,
and the families come out as a full run's."""

from __future__ import annotations

import pyarrow as pa
import pytest

from bench.hub_families import build_block
from hubscan.pipeline.config import Settings
from hubscan.pipeline.flagging import engine as flag
from hubscan.pipeline.outputs.families import load_families
from hubscan.pipeline.storage.duckdb import connect

SIZES = [341] + [1] * 60
FIRST = 380  # models of the first sweep; the other 21 come with the second
KEY = ["a_repo_id", "a_revision", "b_repo_id", "b_revision"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("incremental") / "store"
    plan = build_block(root, SIZES, seed=21, models=slice(0, FIRST))
    first = flag.run(Settings(store=root))
    build_block(root, SIZES, seed=21, models=slice(FIRST, None))
    second = flag.run(Settings(store=root), incremental=True)
    return root, plan, first, second


def test_the_pairs_already_placed_are_kept_as_the_last_run_wrote_them(runs):
    _, plan, first, second = runs
    new = {p.repo_id for p in plan[FIRST:]}
    kept = second.pairs.filter(pa.compute.equal(second.pairs["flag_id"], first.flag_id))
    edges = first.pairs.filter(pa.compute.equal(first.pairs["via"], "lsh"))
    # every lineage edge of the first run untouched (scores and flags as written), unless the grown block's
    # new random sample drew it: then it is rescored as one of the sample's pairs
    cols = ["score", "q", "flagged", "verdict"]
    redrawn = _rows(second.pairs.filter(pa.compute.equal(second.pairs["via"], "background")), [])
    untouched = {r for r in _rows(edges, cols) if r[:4] not in redrawn}
    assert untouched <= _rows(kept, cols) and len(untouched) > 0.9 * edges.num_rows
    scored = second.pairs.filter(pa.compute.equal(second.pairs["flag_id"], second.flag_id)).to_pylist()
    # what the second run scored: the new models' edges and the block's background sample, nothing else
    assert scored and all(r["via"] == "background" or {r["a_repo_id"], r["b_repo_id"]} & new for r in scored)
    assert sum(r["via"] != "background" for r in scored) <= 10 * len(new)
    assert second.candidates == len(scored) < second.pairs.num_rows
    # the first run's random sample was drawn again for the grown block, not kept beside the new one
    assert set(kept["via"].to_pylist()) == {"lsh"}


def test_the_new_models_land_in_their_families_as_in_a_full_run(runs, tmp_path):
    root, plan, _, second = runs
    base = next(p.repo_id for p in plan if p.family == 0 and p.parent is None)
    members = {p.repo_id for p in plan if p.family == 0}
    families = load_families(connect(root))
    of_base = next(f for f in families if base in {m.repo_id for m in f.members})
    assert {m.repo_id for m in of_base.members} == members
    flagged = second.pairs.filter(second.pairs["flagged"]).select(["a_repo_id", "b_repo_id"]).to_pylist()
    assert all(r["a_repo_id"] in members and r["b_repo_id"] in members for r in flagged)


def test_a_run_with_nothing_new_scores_nothing(runs):
    root, _, _, second = runs
    again = flag.run(Settings(store=root), incremental=True)
    assert _rows(again.pairs, ["flag_id", "score", "flagged"]) == _rows(
        second.pairs, ["flag_id", "score", "flagged"]
    )


def _rows(table: pa.Table, cols: list[str]) -> set[tuple]:
    return {tuple(r.values()) for r in table.select(KEY + cols).to_pylist()}


def test_a_placed_model_is_rescored_under_a_new_revision_only(runs):
    root, plan, _, second = runs
    moved = plan[7].repo_id
    build_block(root, SIZES, seed=21, models=slice(7, 8), revision="r1")
    third = flag.run(Settings(store=root), incremental=True)
    scored = third.pairs.filter(pa.compute.equal(third.pairs["flag_id"], third.flag_id)).to_pylist()
    assert scored and all(
        r["via"] == "background"
        or (moved, "r1") in {(r["a_repo_id"], r["a_revision"]), (r["b_repo_id"], r["b_revision"])}
        for r in scored
    )
    # its earlier revision's edges stay as written while that revision is stored
    earlier = _rows(second.pairs.filter(pa.compute.equal(second.pairs["via"], "lsh")), ["flag_id", "score"])
    redrawn = _rows(third.pairs.filter(pa.compute.equal(third.pairs["via"], "background")), [])
    assert {r for r in earlier if r[:4] not in redrawn} <= _rows(third.pairs, ["flag_id", "score"])
