"""`hubscan flag` on a mergekit zoo of the real all-MiniLM-L6-v2: merges found, weighed and directed.

The zoo (testbed/demohub/merges.py): three fine-tunes of the real checkpoint, merges of two of them
by linear (0.5/0.5, 0.8/0.2), SLERP (t = 0.3), TIES (density 0.2) and DARE-TIES (density 0.1), a
linear and a SLERP merge of a fine-tune with an unrelated model of the same shape (six layers of the
real multilingual-e5-small), and a BF16 cast of a merge. The merges' cards name no parent and
nothing is handed to flag but the store: the weights alone find, weigh and direct every merge.
"""

from __future__ import annotations

import shutil

import pytest

from hubscan.pipeline.comparison.verdicts import MERGED
from hubscan.pipeline.config import Settings
from hubscan.pipeline.flagging import engine as flag
from tests.comparison.test_merge_fit import BF16_COPY, FT_A, FT_B, FT_C, MINILM, UNRELATED
from tests.stores import fingerprinted_store

MERGES = {
    "zoo/linear-50-50": ("linear", {FT_A: 0.5, FT_B: 0.5}),
    "zoo/linear-80-20": ("linear", {FT_A: 0.8, FT_B: 0.2}),
    "zoo/slerp-t03": ("slerp", {FT_A: 0.7, FT_B: 0.3}),
    "zoo/ties-d02": ("ties", {FT_A: None, FT_B: None}),
    "zoo/dare-ties-d01": ("dare", {FT_A: None, FT_B: None}),
    "zoo/linear-unrelated": ("linear", {FT_A: 0.8, UNRELATED: 0.2}),
    "zoo/slerp-unrelated": ("slerp", {FT_A: 0.6, UNRELATED: 0.4}),
}


MISLABELLED, CLAIMED = "zoo/merge-declaring-ft-c", "zoo/ft-c-claiming-a-merge"


@pytest.fixture(scope="module")
def zoo_testbed(testbed, tmp_path_factory):
    from hubscan.testbed.demohub.merges import MergeRecipe, build_merge_zoo, write_merge

    if not (testbed / MINILM).is_dir() or not (testbed / UNRELATED).is_dir():
        pytest.skip("testbed lacks all-MiniLM-L6-v2 or the 6-layer e5-small")
    root = tmp_path_factory.mktemp("mergezoo")
    for repo in (MINILM, UNRELATED):
        (root / repo).parent.mkdir(parents=True, exist_ok=True)
        (root / repo).symlink_to(testbed / repo, target_is_directory=True)
    # undeclared: the merges' cards name no parent, so the weights alone must find and direct them
    build_merge_zoo(root, MINILM, UNRELATED, declare=False)
    # two cards that lie: a merge of ft-a and ft-b declaring ft-a and ft-c, and a plain copy of ft-c
    # declaring itself a merge of ft-a and ft-b
    write_merge(root, MergeRecipe(MISLABELLED, (FT_A, FT_B), "linear", (0.6, 0.4)))
    card = root / MISLABELLED / "README.md"
    card.write_text(card.read_text().replace(f"- {FT_B}", f"- {FT_C}"))
    shutil.copytree(root / FT_C, root / CLAIMED)
    (root / CLAIMED / "README.md").write_text(f"---\nbase_model:\n- {FT_A}\n- {FT_B}\ntags:\n- merge\n---\n")
    return root


@pytest.fixture(scope="module")
def result(zoo_testbed, tmp_path_factory):
    repos = [MINILM, UNRELATED, FT_A, FT_B, FT_C, *MERGES, BF16_COPY, MISLABELLED, CLAIMED]
    store = fingerprinted_store(zoo_testbed, repos, tmp_path_factory, "mergestore")
    return store, flag.run(Settings(store=store)).rows


def _repo(stored: str) -> str:
    """A local folder is stored as <parent folder>/<folder>: the zoo's ids are its last two parts."""
    return "/".join(stored.split("/")[-2:])


def _edges(rows):
    return {frozenset((_repo(r["a_repo_id"]), _repo(r["b_repo_id"]))): r for r in rows if r["flagged"]}


def _parent(row) -> str | None:
    side = row["parent"]
    return _repo(row[f"{side}_repo_id"]) if side in ("a", "b") else None


@pytest.mark.parametrize("merge", sorted(MERGES))
def test_every_merge_parent_edge_is_a_merge_with_the_parent_on_the_right_side(result, merge):
    _, rows = result
    method, weights = MERGES[merge]
    edges = _edges(rows)
    for parent, weight in weights.items():
        row = edges.get(frozenset((merge, parent)))
        assert row is not None, f"{merge} / {parent} not flagged"
        assert row["verdict"] == MERGED and row["merge_method"] == method, (row["verdict"], row["reason"])
        assert _parent(row) == parent and row["parent_evidence"] == "merge", row["parent_how"]
        assert row["reason"].startswith("merge of ")
        if weight is not None:  # linear and SLERP: within 0.1 of the recipe
            assert abs(row["merge_weight"] - weight) < 0.1, (parent, row["merge_weight"])


def test_the_cast_of_a_merge_has_the_merge_as_its_parent(result):
    _, rows = result
    row = _edges(rows)[frozenset((BF16_COPY, "zoo/linear-80-20"))]
    assert row["verdict"] == "cast/quantised copy"
    assert _parent(row) == "zoo/linear-80-20" and row["parent_evidence"] in ("declared", "precision")


def test_the_unrelated_parent_is_flagged_with_nothing_but_its_merges(result):
    _, rows = result
    linked = {m for pair in _edges(rows) if UNRELATED in pair for m in pair if m != UNRELATED}
    assert linked == {"zoo/linear-unrelated", "zoo/slerp-unrelated"}


def test_no_sibling_fine_tune_or_base_is_called_a_merge(result):
    _, rows = result
    for pair, row in _edges(rows).items():
        if row["verdict"] == MERGED:
            assert pair & {*MERGES, MISLABELLED}, (pair, row["reason"])


def test_a_merge_card_is_checked_against_the_measured_weights(result):
    _, rows = result
    edges = _edges(rows)
    row = edges[frozenset((MISLABELLED, FT_B))]  # measured, not declared
    assert row["verdict"] == MERGED and abs(row["merge_weight"] - 0.4) < 0.1
    assert f"{FT_A} and {FT_C}; the weights show merge of" in row["declared_finding"], row["declared_finding"]
    claimed = [r for pair, r in edges.items() if CLAIMED in pair and pair & {FT_A, FT_B}]
    assert claimed and all("the weights show no mixture" in (r["declared_finding"] or "") for r in claimed)
    assert edges[frozenset((CLAIMED, FT_C))]["verdict"] == "exact copy"
