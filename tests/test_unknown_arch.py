"""Models outside the roles table: blocked by tensor layout, scored on roles-free signals, judged.

The testbed's unknown-architecture families (testbed/demohub/unknown_arch.py): the real akiki CNN+GRU
and a 2-D CNN, each with a re-upload, another file format, casts, a drift and a renamed copy, and
models of the same layout trained independently from other seeds (the negatives).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hubscan.pipeline.comparison import verdicts as v
from hubscan.pipeline.config import Settings
from hubscan.pipeline.flagging import engine as flag
from hubscan.pipeline.storage.duckdb import connect
from hubscan.testbed.demohub.unknown_arch import AKIKI, CNN, NEGATIVE_SEEDS
from tests.stores import fingerprinted_store, pair_row

# What each derivative's construction implies against its base (the .pt files hold the same bytes
# of weights as the base: exact copies; a renamed copy keeps every value under other names).
EXPECTED = {
    "reupload": v.EXACT_COPY,
    "pt": v.EXACT_COPY,
    "renamed": v.EXACT_COPY,
    "f16": v.CAST_COPY,
    "bf16": v.CAST_COPY,
    "finetuned": v.FINE_TUNE,
}
NEGATIVES = {AKIKI: [f"indep/vad-seed{s}" for s in NEGATIVE_SEEDS],
             CNN: [f"vision-lab/tiny-cnn-s{s}" for s in NEGATIVE_SEEDS]}  # fmt: skip


def _derived(base: str, kind: str) -> str:
    return f"demohub/{base.split('/')[1]}-{kind}"


def _family(base: str) -> list[str]:
    return [base, *(_derived(base, k) for k in EXPECTED)]


@pytest.fixture(scope="module")
def store(testbed, tmp_path_factory):
    repos = [r for base in (AKIKI, CNN) for r in (*_family(base), *NEGATIVES[base])]
    return fingerprinted_store(testbed, repos, tmp_path_factory, "unknownstore")


@pytest.fixture(scope="module")
def result(store):
    return flag.run(Settings(store=store))


def test_unknown_architectures_have_no_roles_and_share_a_layout_block(store, result):
    con = connect(store)
    assert con.execute("SELECT count(*) FROM tensors WHERE role <> 'other'").fetchone() == (0,)
    # the akiki config names a hidden size; its copies without a config do not: one block all the same
    for base in (AKIKI, CNN):
        members = set(_family(base)) | set(NEGATIVES[base])
        layouts = {r["layout"] for r in result.rows if {r["a_repo_id"], r["b_repo_id"]} <= members}
        assert len(layouts) == 1 and None not in layouts
        n = len(members)
        assert sum({r["a_repo_id"], r["b_repo_id"]} <= members for r in result.rows) == n * (n - 1) // 2


@pytest.mark.parametrize("base", [AKIKI, CNN])
@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_each_derivative_is_flagged_with_the_verdict_its_construction_implies(result, base, kind):
    row = pair_row(result.rows, base, _derived(base, kind))
    assert row["flagged"] and row["verdict"] == EXPECTED[kind], (row["verdict"], row["reason"])
    assert "architecture: unknown" in row["reason"]
    by_shape_only = "(0 by name and shape" in row["compared"]
    assert by_shape_only == (kind == "renamed"), row["compared"]


def test_a_reupload_is_copy_of_its_original_by_content_hash(store):
    copy_of = dict(connect(store).execute("SELECT repo_id, copy_of FROM models").fetchall())
    assert copy_of[_derived(AKIKI, "reupload")].startswith(AKIKI + "@")


@pytest.mark.parametrize("base", [AKIKI, CNN])
def test_independently_trained_models_of_the_same_layout_are_not_flagged(result, base):
    members = set(_family(base))
    negatives = [r for r in result.rows if {r["a_repo_id"], r["b_repo_id"]} & set(NEGATIVES[base])]
    assert len(negatives) == len(NEGATIVES[base]) * len(members) + 3
    flagged = [(r["a_repo_id"], r["b_repo_id"], r["score"]) for r in negatives if r["flagged"]]
    assert not flagged
    assert all(r["verdict"] == v.UNRELATED and r["sketch"] < 0.1 for r in negatives)


def test_compare_prints_what_was_matched(store):
    out = subprocess.run(
        [sys.executable, "-m", "hubscan.jobs.cli", "compare", AKIKI, _derived(AKIKI, "renamed"), "--store", str(store)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "architecture: unknown" in out.stdout
    assert "encoder.0.weight <-> features.conv0.weight  (r 1.0000; by shape" in out.stdout
    doc = json.loads(
        subprocess.run(
            [sys.executable, "-m", "hubscan.jobs.cli", "compare", CNN, "vision-lab/tiny-cnn-s1", "--store", str(store),
             "--format", "json"], capture_output=True, text=True, timeout=300,
        ).stdout
    )  # fmt: skip
    assert doc["verdict"] == v.UNRELATED and doc["layout"] and doc["matches"]
