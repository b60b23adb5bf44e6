"""Layer sketches fetched many models per query: every group gets exactly its models' stored values,
whatever the budget cuts the fetches into, and the budget follows the size of the models read."""

from __future__ import annotations

import numpy as np
import pytest

from bench.hub_families import build_block
from hubscan.pipeline.comparison.candidates import CandidatePair
from hubscan.pipeline.storage import layer_sketches
from hubscan.pipeline.storage.duckdb import connect, fetch_rows, use_candidates
from hubscan.pipeline.storage.layer_sketches import Budget, Group, fetch, fetch_groups, run_end


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("sketches") / "store"
    plan = build_block(root, [8, 1, 1, 1], hidden=64, layers=2)
    return root, [(p.repo_id, "r0") for p in plan]


def _stored(con, model) -> dict:
    """One model's sketches the old way (Python rows), for comparison."""
    use_candidates(con, [CandidatePair(*model, *model, None, "test")])
    return {(r["role"], r["layer"]): r["sketch"] for r in fetch_rows(con, "list_layer_sketches")}


def test_values_are_the_stored_sketches_as_float32(store):
    root, models = store
    con = connect(root)
    got = fetch(con, models[:3])
    assert set(got) == set(models[:3])
    for model in models[:3]:
        want = _stored(con, model)
        assert len(got[model]) == len(want) == 2 * 7
        for slot, sketch in got[model].items():
            assert sketch.values.dtype == np.float32
            np.testing.assert_array_equal(sketch.values, np.asarray(want[(slot[0], slot[1])], np.float32))


def test_every_group_gets_its_own_models_whatever_the_cuts(store, monkeypatch):
    root, models = store
    con = connect(root)
    alone = fetch(con, models)
    groups = [Group(i, frozenset({models[i], models[(i * 3 + 1) % len(models)]})) for i in range(len(models))]
    per_model = max(sum(s.values.size for s in m.values()) for m in alone.values())
    for fit in (2, 3, 5, 100):  # models per fetch once the first fetch has shown their size
        monkeypatch.setattr(layer_sketches, "VALUES_PER_FETCH", fit * per_model)
        budget = Budget(models=2)
        seen = [g.name for g, _ in fetch_groups(con, groups, budget)]
        assert seen == [g.name for g in groups]
        assert budget.models == max(2, fit)
        for group, sketches in fetch_groups(con, groups, Budget(models=2)):
            assert set(sketches) == set(group.models)
            for m in group.models:
                assert sketches[m].keys() == alone[m].keys()
                for slot, s in sketches[m].items():
                    np.testing.assert_array_equal(s.values, alone[m][slot].values)


def test_many_runs_cost_two_scans_of_the_tensors(store, monkeypatch):
    # the first run teaches the budget; the rest are written to a spill in one scan
    root, models = store
    con = connect(root)
    alone = fetch(con, models)
    per_model = max(sum(s.values.size for s in m.values()) for m in alone.values())
    monkeypatch.setattr(layer_sketches, "VALUES_PER_FETCH", 2 * per_model)
    scans = []
    real_fetch, real_spill = layer_sketches.fetch, layer_sketches.spill_sketches
    monkeypatch.setattr(layer_sketches, "fetch", lambda *a: scans.append("fetch") or real_fetch(*a))
    monkeypatch.setattr(layer_sketches, "spill_sketches", lambda *a: scans.append("spill") or real_spill(*a))
    groups = [Group(i, frozenset({models[i]})) for i in range(len(models))]
    got = dict(fetch_groups(con, groups, Budget(models=2)))
    assert scans == ["fetch", "spill"]
    assert len(got) == len(models)
    for group, sketches in got.items():
        (model,) = group.models
        assert sketches[model].keys() == alone[model].keys()


def test_runs_stay_within_the_models_limit_and_a_large_group_runs_alone():
    keys = [(f"m{i}", "r") for i in range(10)]
    groups = [Group(i, frozenset({keys[i], keys[i + 1]})) for i in range(9)]
    groups.append(Group(9, frozenset(keys)))  # ten models, more than the limit
    start, runs = 0, []
    while start < len(groups):
        end = run_end(groups, start, 4)
        runs.append(groups[start:end])
        start = end
    assert [g.name for run in runs for g in run] == list(range(10))
    for run in runs[:-1]:
        assert len({m for g in run for m in g.models}) <= 4
    assert [g.name for g in runs[-1]] == [9]
    assert [len(r) for r in runs[:-1]] == [3, 3, 3]  # chained pairs share a model: 3 pairs in 4 models
