"""The same real model read locally, through the fake Hub, sharded and as GGUF gives the same fingerprint."""

import numpy as np
import pytest

from hubscan.pipeline.chain.model_task import fingerprint_model
from hubscan.pipeline.http import HubHttp
from hubscan.pipeline.sources import hf
from hubscan.pipeline.sources.local import local_model

MINILM = "sentence-transformers/all-MiniLM-L6-v2"


def _remote(settings, repo_id):
    http = HubHttp(settings)
    out = fingerprint_model(hf.resolve(http, repo_id), settings, http)
    assert out.ok, out.errors
    return out


def _by_role(out):
    return {(r["role"], r["layer"], r["kind"]): r for r in out.tensor_rows if r["role"] != "other"}


def test_local_and_remote_reads_agree_exactly(testbed, settings):
    local = fingerprint_model(local_model(testbed / MINILM, MINILM), settings)
    remote = _remote(settings, MINILM)
    assert local.ok and len(local.tensor_rows) == len(remote.tensor_rows) == 104
    a = {r["name"]: r for r in local.tensor_rows}
    for r in remote.tensor_rows:
        assert a[r["name"]]["std"] == r["std"]
        assert a[r["name"]]["sketch"] == r["sketch"]
    assert remote.model_row["base_models"] == ["nreimers/MiniLM-L6-H384-uncased"]
    assert remote.model_row["revision"] == hf.resolve(HubHttp(settings), MINILM).revision


def test_sharded_copy_gives_the_same_tensors(settings):
    single = {r["name"]: r for r in _remote(settings, MINILM).tensor_rows}
    sharded = _remote(settings, "demohub/all-MiniLM-L6-v2-sharded")
    assert len(set(sharded.model_row["files"])) == 3
    assert {r["name"] for r in sharded.tensor_rows} == set(single)
    for r in sharded.tensor_rows:
        assert r["std"] == pytest.approx(single[r["name"]]["std"], rel=1e-12)
        assert r["sketch"] == single[r["name"]]["sketch"]


@pytest.mark.parametrize(
    "repo,rel", [("demohub/all-MiniLM-L6-v2-Q8_0-GGUF", 2e-3), ("demohub/all-MiniLM-L6-v2-bf16", 5e-3)]
)
def test_gguf_and_cast_copies_match_by_role(settings, repo, rel):
    base = _by_role(_remote(settings, MINILM))
    other = _by_role(_remote(settings, repo))
    matched = 0
    for key, r in other.items():
        if key not in base or r["shape"] != base[key]["shape"]:
            continue
        matched += 1
        assert r["std"] == pytest.approx(base[key]["std"], rel=rel), key
        if len(r["sketch"]) > 16 and r["std"] > 0:
            corr = np.corrcoef(r["sketch"], base[key]["sketch"])[0, 1]
            assert corr > 0.999, key
    assert matched >= 90  # every weight and bias of the 6 layers, the embeddings and norms


def test_sampled_fingerprints_track_exact_ones(testbed, settings):
    ref = local_model(testbed / MINILM, MINILM)
    sampled = {r["name"]: r for r in fingerprint_model(ref, settings).tensor_rows}
    exact = {r["name"]: r for r in fingerprint_model(ref, settings.with_(exact=True)).tensor_rows}
    q_names = [
        n
        for n, r in exact.items()
        if r["role"] in ("attn_q", "attn_k", "attn_v", "attn_o") and r["kind"] == "weight"
    ]
    assert len(q_names) == 24 and all(sampled[n]["sampled"] for n in q_names)
    e = [exact[n]["std"] for n in q_names]
    # Head and tail blocks only: cheap in requests, but rows differ in scale between heads.
    assert np.corrcoef([sampled[n]["std"] for n in q_names], e)[0, 1] >= 0.9
    # Spread blocks over the matrix and the profile converges on the exact one.
    dense = {
        r["name"]: r
        for r in fingerprint_model(ref, settings.with_(matrix_blocks=32, rows_per_block=2)).tensor_rows
    }
    assert np.corrcoef([dense[n]["std"] for n in q_names], e)[0, 1] >= 0.99
    emb = "embeddings.word_embeddings.weight"
    assert np.corrcoef(sampled[emb]["dim_std"], exact[emb]["dim_std"])[0, 1] > 0.8
    # Token rows are the hash-chosen ones only, the same tokens in both modes, with the same values.
    assert 8 <= len(sampled[emb]["tokens"]) <= 32
    assert sampled[emb]["tokens"] == exact[emb]["tokens"]
    assert sampled[emb]["token_vectors"] == exact[emb]["token_vectors"]
    # Column norms estimated from spread rows track the exact ones.
    for n in q_names:
        assert np.corrcoef(dense[n]["col_norms"], exact[n]["col_norms"])[0, 1] > 0.6, n


def test_hub_served_only_header_and_planned_rows(settings, hub):
    out = _remote(settings, MINILM)
    weights = [r for r in hub.log.snapshot() if r.filename == "model.safetensors"]
    size = out.model_row["checkpoint_bytes"]
    served = sum(r.bytes_sent for r in weights)
    assert served == out.model_row["bytes_read"]
    assert served < 0.05 * size
    # One resolver request for the weight file; every range went to the signed CDN URL.
    resolves = [r for r in weights if r.origin == "hub"]
    assert [r.status for r in resolves] == [302] and resolves[0].bytes_sent == 0
    ranges = [r for r in weights if r.origin == "cdn"]
    assert ranges and all(r.range and r.status == 206 for r in ranges)
    # Every request but the model-info call was made while fingerprinting and is counted.
    assert out.model_row["requests"] == len(hub.log) - 1
    row = out.model_row
    assert row["resolver_requests"] == len(hub.log.where(origin="hub", path=resolves[0].path)) + len(
        [r for r in hub.log.where(origin="hub") if r.filename == "tokenizer.json"]
    )
    assert (row["cdn_requests"], row["api_requests"]) == (len(hub.log.where(origin="cdn")), 0)


def test_byte_identical_local_folders_are_copies_by_content_hash(settings, tmp_path):
    from hubscan.jobs import fingerprint
    from hubscan.pipeline.sources.content_hash import file_sha256
    from hubscan.pipeline.storage.duckdb import connect
    from hubscan.pipeline.storage.parquet import Store
    from hubscan.testbed.writers.safetensors_write import write_safetensors

    rng = np.random.default_rng(0)
    weights = {"net.0.weight": rng.standard_normal((64, 48)).astype(np.float32)}
    original, copy, other = (tmp_path / "repos" / "org" / n for n in ("net", "net-copy", "net-other"))
    for folder in (original, copy, other):
        folder.mkdir(parents=True)
    write_safetensors(original / "model.safetensors", weights)
    (copy / "model.safetensors").write_bytes((original / "model.safetensors").read_bytes())
    write_safetensors(other / "model.safetensors", {k: v + 1e-3 for k, v in weights.items()})
    # local folders carry no LFS hash: the one in the store is computed from the bytes
    summary = fingerprint.run(settings, [str(original), str(copy), str(other)])
    assert summary.done == 3
    con = connect(settings.store)
    rows = dict(con.execute("SELECT repo_id, (revision, copy_of, bytes_read) FROM models").fetchall())
    assert rows["org/net-copy"][1] == f"org/net@{rows['org/net'][0]}"
    assert rows["org/net-copy"][2] == 0
    assert rows["org/net-other"][1] is None and rows["org/net-other"][2] > 0
    files = Store(settings.store).dataset("files").to_table(columns=["repo_id", "sha256"]).to_pylist()
    hashes = {r["repo_id"]: r["sha256"] for r in files}
    assert hashes["org/net"] == hashes["org/net-copy"] == file_sha256(original / "model.safetensors")


@pytest.mark.parametrize(
    "relative",
    ["demohub/minilm-embed-Q4_0-GGUF/minilm-embed.Q4_0.gguf", f"{MINILM}/model.safetensors"],
)
def test_an_existing_file_is_fingerprinted_as_a_one_file_repo_not_a_hub_id(testbed, tmp_path, relative):
    import os
    import subprocess
    import sys

    from hubscan.pipeline.storage.parquet import Store

    weights = testbed / relative
    # a Hub lookup would have to go here and fail: the path must never reach the Hub client
    env = {**os.environ, "HF_ENDPOINT": "http://127.0.0.1:9", "HUBSCAN_STORE": str(tmp_path / "store")}
    out = subprocess.run(
        [sys.executable, "-m", "hubscan.jobs.cli", "fingerprint", os.path.relpath(weights, tmp_path)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    (model,) = Store(tmp_path / "store").dataset("models").to_table().to_pylist()
    assert model["files"] == [weights.name] and model["source"] == "local"
    assert model["repo_id"] == f"{weights.parent.name}/{weights.name}" and model["tensors"] > 50
