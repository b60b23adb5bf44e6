"""`hubscan flag` and `hubscan compare` on the structural testbed variants: kind, map, storage, CLI.

Expectations come from the construction (testbed/demohub/testbed.py STRUCTURAL_VARIANTS); nothing of
ours is mocked: real files, shipped SQL, real DuckDB, the CLI as a subprocess.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from hubscan.pipeline.comparison import verdicts as v
from hubscan.pipeline.config import Settings
from hubscan.pipeline.flagging import engine as flag
from hubscan.pipeline.storage.duckdb import connect, load_sql, run_sql
from tests.stores import fingerprinted_store, pair_row

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
COUSIN = "sentence-transformers/paraphrase-MiniLM-L3-v2"
E5, E5_6L = "intfloat/multilingual-e5-small", "demohub/multilingual-e5-small-6L"
L3, UP, REORDER = "demohub/MiniLM-L3-pruned", "demohub/MiniLM-8L-upscaled", "demohub/MiniLM-reordered"
# layers 0-3 of MiniLM, then layers 6-9 of e5-small, MiniLM's embeddings (testbed STRUCTURAL_VARIANTS)
STACK = "demohub/MiniLM-e5-stacked"
SMOL_4L, MOE, FINE, PERMUTED = (
    "demohub/SmolLM2-135M-4L",
    "demohub/SmolLM2-4x135M-4L-MoE",
    "demohub/SmolLM2-4L-fine-MoE",
    "demohub/SmolLM2-4x135M-4L-MoE-permuted",
)
# (source, derived) -> structure the construction implies
KINDS = {
    (E5, E5_6L): "pruned",
    (MINILM, L3): "pruned",
    (MINILM, UP): "up-scaled",
    (MINILM, REORDER): "re-ordered",
    (SMOL_4L, MOE): "upcycled-moe",
    (SMOL_4L, FINE): "upcycled-moe",
    (SMOL_4L, PERMUTED): "upcycled-moe",
    (MOE, PERMUTED): "expert-permuted",
    (MINILM, STACK): "stacked",
    (E5, STACK): "stacked",
}
REPOS = sorted({MINILM, COUSIN, E5, *(x for pair in KINDS for x in pair)})


@pytest.fixture(scope="module")
def store(testbed, tmp_path_factory):
    return fingerprinted_store(testbed, REPOS, tmp_path_factory, "structstore")


@pytest.fixture(scope="module")
def result(store):
    return flag.run(Settings(store=store))


def _map(store, a: str, b: str) -> list[dict]:
    rel = run_sql(connect(store), load_sql("show_layer_map"), {"a_repo_id": a, "b_repo_id": b})
    return rel.to_arrow_table().to_pylist()


@pytest.mark.parametrize(("source", "derived"), sorted(KINDS))
def test_each_structural_variant_is_flagged_with_its_kind(result, source, derived):
    row = pair_row(result.rows, source, derived)
    assert row["flagged"] and row["verdict"] == v.STRUCTURAL, row["reason"]
    assert row["structure"] == KINDS[(source, derived)] and row["reason"].startswith(row["structure"])


def test_the_stored_map_of_the_pruned_e5_is_layer_2k(store, result):
    lines = [m for m in _map(store, E5, E5_6L) if m["kind"] == "layer"]
    derived = "A" if E5_6L < E5 else "B"
    source = "B" if derived == "A" else "A"
    assert [m["map"] for m in lines] == [f"{derived}.layer {k} <- {source}.layer {2 * k}" for k in range(6)]
    assert all(m["matched"] and m["source"] == "flag" and m["evidence"] == "sketch" for m in lines)


def test_the_stored_map_of_the_upscale_repeats_layers_2_and_3(store, result):
    lines = [m for m in _map(store, MINILM, UP) if m["kind"] == "layer"]
    assert [int(m["map"].rsplit(" ", 1)[1]) for m in lines] == [0, 1, 2, 3, 2, 3, 4, 5]
    assert "0-3 + 2-5" in lines[0]["summary"]


def test_the_stored_expert_map_names_each_slice(store, result):
    lines = [m for m in _map(store, SMOL_4L, FINE) if m["kind"] == "expert"]
    assert len(lines) == 16 and all(m["matched"] for m in lines)
    for m in lines:
        got = re.fullmatch(r"[AB]\.layer (\d) expert (\d) <- [AB]\.layer (\d) MLP rows (\d+)-(\d+)", m["map"])
        assert got, m["map"]
        layer, expert, dense_layer, lo, hi = map(int, got.groups())
        assert (dense_layer, lo, hi) == (layer, expert * 384, expert * 384 + 383)
    # the attention layers of the MoE sit at the same index of the dense model
    attention = [m for m in _map(store, SMOL_4L, FINE) if m["kind"] == "layer"]
    assert len(attention) == 4 and all(m["matched"] for m in attention)


def test_unrelated_and_cousin_pairs_get_no_map(store, result):
    unrelated = pair_row(result.rows, MINILM, E5)
    assert not unrelated["flagged"] and unrelated.get("structure") is None and _map(store, MINILM, E5) == []
    cousin = pair_row(result.rows, MINILM, COUSIN)
    assert cousin["flagged"] and cousin["verdict"] == v.SAME_LINEAGE and cousin.get("structure") is None
    # flagged with different depths, so it was mapped: every layer stored as unmatched, no structure
    lines = _map(store, MINILM, COUSIN)
    assert lines and not any(m["matched"] for m in lines) and {m["structure"] for m in lines} == {None}


def _hubscan(*args):
    return subprocess.run(
        [sys.executable, "-m", "hubscan.jobs.cli", *args], capture_output=True, text=True, timeout=300
    )


def test_cli_compare_prints_the_layer_map(store, result):
    out = _hubscan("compare", MINILM, UP, "--store", str(store))
    assert out.returncode == 0, out.stderr
    assert "structure: up-scaled" in out.stdout and "<- " in out.stdout
    doc = json.loads(_hubscan("compare", MINILM, UP, "--store", str(store), "--format", "json").stdout)
    assert doc["structure"] == "up-scaled" and doc["verdict"] == v.STRUCTURAL
    layers = [m for m in doc["maps"] if m["kind"] == "layer"]
    assert len(layers) == 8 and {m["source"] for m in layers} == {"compare"}


def test_cli_compare_of_cousins_reports_no_false_map(store, result):
    doc = json.loads(_hubscan("compare", MINILM, COUSIN, "--store", str(store), "--format", "json").stdout)
    assert doc["structure"] is None and doc["maps"] and not any(m["matched"] for m in doc["maps"])
    assert all("no match beyond chance" in m["map"] for m in doc["maps"])


def test_the_stack_is_mapped_to_both_parents(store, result):
    for parent in (MINILM, E5):
        lines = [m for m in _map(store, parent, STACK) if m["kind"] == "stack"]
        x = "A" if parent > STACK else "B"
        here = "B" if x == "A" else "A"
        want = [f"{x}.layer {k} <- {here if parent == MINILM else MINILM}.layer {k}" for k in range(4)]
        want += [f"{x}.layer {k} <- {here if parent == E5 else E5}.layer {k + 2}" for k in range(4, 8)]
        assert [m["map"] for m in lines] == want, parent
        assert all(m["matched"] and m["structure"] == "stacked" for m in lines)
        summary = lines[0]["summary"]
        assert f"{STACK}.layer 0-3 <- {MINILM}.layer 0-3; {STACK}.layer 4-7 <- {E5}.layer 6-9" in summary


def test_only_pairs_with_the_stack_are_called_stacked(result):
    stacked = [r for r in result.rows if r.get("structure") == "stacked"]
    assert stacked and all(STACK in (r["a_repo_id"], r["b_repo_id"]) for r in stacked)
    # models holding only a few of its layers stay partial: 3 of e5's layers pruned to 6, MiniLM's 1,3,5
    for other in (E5_6L, L3):
        assert pair_row(result.rows, other, STACK)["structure"] == "partial", other
    assert pair_row(result.rows, COUSIN, STACK).get("structure") is None


def test_cli_compare_of_the_stack_and_one_parent_names_the_other(store, result):
    doc = json.loads(_hubscan("compare", MINILM, STACK, "--store", str(store), "--format", "json").stdout)
    assert doc["structure"] == "stacked" and doc["verdict"] == v.STRUCTURAL
    assert E5 in doc["reason"]
    stack = [m for m in doc["maps"] if m["kind"] == "stack"]
    assert [m["parent_repo_id"] for m in stack] == [MINILM] * 4 + [E5] * 4
    text = _hubscan("compare", MINILM, STACK, "--store", str(store)).stdout
    assert "structure: stacked" in text and f"<- {E5}.layer 6" in text
