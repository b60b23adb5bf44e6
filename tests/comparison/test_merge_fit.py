"""Merges found and weighed from the stored sketches of a mergekit zoo of the real all-MiniLM-L6-v2.

The zoo (testbed/demohub/merges.py) merges two fine-tunes of the real checkpoint by each of
mergekit's methods; every model goes through `fingerprint` into a store, and the fit reads the
sketches back through DuckDB, so what is tested is what flag will see.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from hubscan.jobs import fingerprint
from hubscan.pipeline.comparison.merge_fit import find_merge
from hubscan.pipeline.config import Settings
from hubscan.pipeline.storage.duckdb import connect
from hubscan.testbed.demohub.merges import build_merge_zoo

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
UNRELATED = "demohub/multilingual-e5-small-6L"
FT_A, FT_B, FT_C = "zoo/ft-a", "zoo/ft-b", "zoo/ft-c"


@pytest.fixture(scope="module")
def zoo(testbed, tmp_path_factory):
    if not (testbed / MINILM).is_dir() or not (testbed / UNRELATED).is_dir():
        pytest.skip("testbed lacks all-MiniLM-L6-v2 or the 6-layer e5-small")
    root = tmp_path_factory.mktemp("zoo")
    for repo in (MINILM, UNRELATED):
        (root / repo).parent.mkdir(parents=True, exist_ok=True)
        (root / repo).symlink_to(testbed / repo, target_is_directory=True)
    recipes = build_merge_zoo(root, MINILM, UNRELATED)
    store = root / "store"
    repos = [MINILM, UNRELATED, FT_A, FT_B, FT_C, *recipes, BF16_COPY]
    summary = fingerprint.run(Settings(store=store), [str(root / r) for r in repos])
    assert summary.failed == 0, summary.messages
    return recipes, _sketches(store)


def _sketches(store) -> dict[str, dict[str, np.ndarray]]:
    """{model folder name: {tensor name + shape: sketch}} as stored."""
    rows = connect(store).sql("SELECT repo_id, name, shape, sketch FROM tensors").fetchall()
    out: dict[str, dict[str, np.ndarray]] = defaultdict(dict)
    for repo_id, name, shape, sketch in rows:
        out[repo_id][f"{name}{shape}"] = np.asarray(sketch, dtype=np.float32)
    return out


def _by_folder(sketches, repo: str):
    """A local folder is stored under its folder's id: find it by the repo's last two parts."""
    hits = [k for k in sketches if k.endswith(repo.split("/")[-1])]
    assert len(hits) == 1, (repo, hits)
    return sketches[hits[0]], hits[0]


def _fit(sketches, child: str, relatives: list[str], merges=()):
    c, _ = _by_folder(sketches, child)
    rel = dict(_by_folder(sketches, r)[::-1] for r in relatives)
    known = frozenset(_by_folder(sketches, m)[1] for m in merges)
    return find_merge(c, rel, known), {k: r for r, k in zip(relatives, rel, strict=True)}


FAMILY = [MINILM, FT_A, FT_B]
BF16_COPY = "zoo/linear-80-20-bf16"


def _zoo_models(recipes) -> list[str]:
    return sorted({*FAMILY, FT_C, UNRELATED, *recipes, BF16_COPY})


@pytest.mark.parametrize(
    ("merge", "method"),
    [
        ("zoo/linear-50-50", "linear"),
        ("zoo/linear-80-20", "linear"),
        ("zoo/slerp-t03", "slerp"),
        ("zoo/ties-d02", "ties"),
        ("zoo/dare-ties-d01", "dare"),
        ("zoo/linear-unrelated", "linear"),
        ("zoo/slerp-unrelated", "slerp"),
    ],
)
def test_each_merge_is_found_with_its_parents_method_and_weights(zoo, merge, method):
    recipes, sketches = zoo
    recipe = recipes[merge]
    # every other model of the zoo is a candidate: the other merges are linear combinations of
    # the same parents, and the fit must still name the parents themselves
    fit, names = _fit(sketches, merge, [m for m in _zoo_models(recipes) if m != merge])
    assert fit is not None, merge
    assert sorted(names[p] for p in fit.parents) == sorted(recipe.parents), fit
    assert fit.method == method, fit.evidence
    if method in ("linear", "slerp"):  # the bar: within 0.1 of the recipe
        for parent, weight in zip(recipe.parents, recipe.weights, strict=True):
            got = fit.weight_of(next(k for k, v in names.items() if v == parent))
            assert got is not None and abs(got - weight) < 0.1, (parent, got, weight)
    if method in ("ties", "dare"):
        assert names[fit.base] == MINILM


@pytest.mark.parametrize("model", [MINILM, FT_A, FT_B, FT_C, UNRELATED, BF16_COPY])
def test_a_base_a_parent_a_fine_tune_an_unrelated_model_or_a_copy_is_no_merge(zoo, model):
    # every other model of the zoo is a candidate: the base of a DARE merge equals it on 81 % of
    # the positions too, and each parent is a linear combination of a merge and the other parent
    recipes, sketches = zoo
    fit, _ = _fit(sketches, model, [m for m in _zoo_models(recipes) if m != model])
    assert fit is None, fit


def test_a_cast_of_a_merge_is_a_merge_of_its_parents_when_the_merge_is_not_stored(zoo):
    recipes, sketches = zoo
    others = [m for m in _zoo_models(recipes) if m not in (BF16_COPY, "zoo/linear-80-20")]
    # the other merges of the same parents are known as merges by then (flag fits every model)
    fit, names = _fit(sketches, BF16_COPY, others, merges=[m for m in recipes if m in others])
    assert fit is not None and fit.method == "linear"
    assert {names[p]: round(w, 1) for p, w in zip(fit.parents, fit.weights, strict=True)} == {
        FT_A: 0.8,
        FT_B: 0.2,
    }


def test_a_sibling_fine_tune_is_no_merge_of_two_siblings_even_without_their_base(zoo):
    # the midpoint of two siblings is nearer the base, so nearer ft-c than either sibling is
    _, sketches = zoo
    fit, _ = _fit(sketches, FT_C, [FT_A, FT_B])
    assert fit is None, fit


def test_the_base_of_two_fine_tunes_is_no_merge_of_them(zoo):
    _, sketches = zoo
    fit, _ = _fit(sketches, MINILM, [FT_A, FT_B])
    assert fit is None, fit
