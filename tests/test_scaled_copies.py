"""compressed-tensors, block-FP8 and EXL2 copies swept from a fake Hub and flagged: copies found, strangers left alone.

A small hub of its own: the real all-MiniLM-L6-v2, a same-shape unrelated model (six layers of the
real multilingual-e5-small), a fine-tune of MiniLM (Gaussian drift of 25 % of each tensor's std,
beyond every format's rounding), each of the three quantised by every scheme of
testbed/writers/scaled_quant.py, and an EXL2-shaped copy. Swept through Ray from FakeHub, flagged
with DuckDB, nothing of ours mocked.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hubscan.pipeline.chain.model_task import fingerprint_model
from hubscan.pipeline.comparison import verdicts as v
from hubscan.pipeline.config import Settings
from hubscan.pipeline.flagging import engine as flag
from hubscan.pipeline.http import HubHttp
from hubscan.pipeline.runtime import sweep
from hubscan.pipeline.sources import hf
from hubscan.pipeline.sources.local import local_model
from hubscan.pipeline.storage.duckdb import connect
from hubscan.testbed.demohub import structural, variants
from hubscan.testbed.demohub.realmodels import REPO_BUILDERS, default_cache
from hubscan.testbed.fakehub import FakeHub
from hubscan.testbed.writers import scaled_quant
from tests.real_checkpoints import real_model
from tests.stores import pair_row

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
E5_6L = "zoo/e5-small-6L"
TUNED = "zoo/minilm-tuned"
EXL2 = "zoo/minilm-exl2"
SCHEMES = sorted(scaled_quant.SCHEMES)
DTYPES = {
    "w4a16": "INT4-g128",
    "w4a16-asym": "INT4-g64",
    "w8a16": "INT8-channel",
    "w8a8-int8": "INT8-channel",
    "fp8-tensor": "FP8-E4M3-tensor",
    "fp8-channel": "FP8-E4M3-channel",
    "fp8-block": "FP8-E4M3-block128",
    "fp8-scale-inv": "FP8-E4M3-block128",
    "nvfp4": "NVFP4",
    "mxfp4": "MXFP4",
}
# 25 % drift: 1 - r = 0.03 per matrix, above the coarsest band (MXFP4/INT4, 1.5e-2 a side)
TUNE_DRIFT = 0.25


def quant(repo: str, scheme: str) -> str:
    return f"zoo/{repo.rpartition('/')[2]}-{scheme}"


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("scaled-zoo")
    work = tmp_path_factory.mktemp("scaled-src")
    REPO_BUILDERS["minilm-l6"](real_model("minilm-l6"), root / MINILM)
    REPO_BUILDERS["e5-small"](real_model("e5-small"), work / "e5")
    structural.relayer(work / "e5", root / E5_6L, range(0, 12, 2), "Every second layer kept.", None, "F16")
    variants.finetune_like(root / MINILM, root / TUNED, TUNE_DRIFT, seed=5)
    for src in (MINILM, E5_6L, TUNED):
        for scheme in SCHEMES:
            scaled_quant.quantised_repo(root / src, root / quant(src, scheme), scheme)
    scaled_quant.exl2_repo(root / MINILM, root / EXL2)
    assert default_cache().is_dir()
    return root


@pytest.fixture(scope="module")
def swept(zoo, tmp_path_factory, ray_session):
    settings = Settings(store=tmp_path_factory.mktemp("scaled-store") / "store", backoff_base_s=0.01)
    with FakeHub(zoo) as hub:
        summary = sweep.run(settings.with_(endpoint=hub.url), "hub")
    return settings, summary


@pytest.fixture(scope="module")
def result(swept):
    return flag.run(swept[0])


def _query(settings: Settings, sql: str) -> list[dict]:
    con = connect(settings.store)
    cursor = con.execute(sql)
    cols = [d[0] for d in cursor.description]
    return [dict(zip(cols, row, strict=True)) for row in cursor.fetchall()]


def test_the_sweep_stores_every_scaled_copy_and_counts_the_exl2_refusal(swept):
    settings, summary = swept
    assert summary.failed == 1 and len(summary.messages) == 1, summary.messages
    assert summary.messages[0].startswith(f"{EXL2}@")
    assert "EXL2-quantised Linears (36 here) keep no original row in any byte range" in summary.messages[0]
    models = {r["repo_id"]: r for r in _query(settings, "SELECT repo_id, dtype, params FROM models")}
    base = models[MINILM]
    for src in (MINILM, E5_6L, TUNED):
        for scheme in SCHEMES:
            row = models[quant(src, scheme)]
            assert row["dtype"] == DTYPES[scheme], (src, scheme)
            assert row["params"] == models[src]["params"]
    assert base["params"] == 22_713_728
    failures = _query(settings, "SELECT repo_id, category FROM failures")
    assert failures == [{"repo_id": EXL2, "category": "UnsupportedFormat"}]


@pytest.mark.parametrize("scheme", SCHEMES)
def test_each_scaled_copy_of_the_base_is_a_cast_or_quantised_copy(result, scheme):
    row = pair_row(result.rows, MINILM, quant(MINILM, scheme))
    assert row["flagged"] and row["verdict"] == v.CAST_COPY, row["reason"]
    # and of the unrelated model, its own copy is too
    row = pair_row(result.rows, E5_6L, quant(E5_6L, scheme))
    assert row["flagged"] and row["verdict"] == v.CAST_COPY, row["reason"]


@pytest.mark.parametrize("scheme", SCHEMES)
def test_two_unrelated_models_quantised_the_same_way_are_never_flagged(result, scheme):
    row = pair_row(result.rows, quant(MINILM, scheme), quant(E5_6L, scheme))
    assert not row["flagged"], row["reason"]
    strangers = [
        r
        for r in result.rows
        if r["flagged"] and {"e5" in r["a_repo_id"], "e5" in r["b_repo_id"]} == {True, False}
    ]
    assert strangers == []


@pytest.mark.parametrize("scheme", SCHEMES)
def test_a_fine_tune_quantised_the_same_way_is_told_from_the_base(result, scheme):
    row = pair_row(result.rows, MINILM, quant(TUNED, scheme))
    assert row["flagged"] and row["verdict"] == v.FINE_TUNE, row["reason"]
    row = pair_row(result.rows, quant(MINILM, scheme), quant(TUNED, scheme))
    assert row["flagged"] and row["verdict"] == v.FINE_TUNE, row["reason"]


@pytest.mark.parametrize("scheme", ["fp8-channel", "fp8-block", "fp8-scale-inv"])
def test_fp8_sketches_track_the_base_at_r_0999(zoo, scheme):
    settings = Settings()
    base = {r["name"]: r for r in fingerprint_model(local_model(zoo / MINILM, MINILM), settings).tensor_rows}
    repo = quant(MINILM, scheme)
    out = fingerprint_model(local_model(zoo / repo, repo), settings)
    scaled = [r for r in out.tensor_rows if r["dtype"] == DTYPES[scheme]]
    assert len(scaled) == 36
    for r in scaled:
        assert r["row_idx"] == base[r["name"]]["row_idx"]
        assert np.corrcoef(r["sketch"], base[r["name"]]["sketch"])[0, 1] >= 0.999, r["name"]


@pytest.mark.parametrize("scheme", ["nvfp4", "w4a16-asym", "fp8-scale-inv"])
def test_a_scaled_copy_read_through_the_hub_matches_local_and_reads_a_fraction_of_it(zoo, tmp_path, scheme):
    repo = quant(MINILM, scheme)
    local = {r["name"]: r for r in fingerprint_model(local_model(zoo / repo, repo), Settings()).tensor_rows}
    with FakeHub(zoo) as hub:
        settings = Settings(endpoint=hub.url, store=tmp_path / "store")
        http = HubHttp(settings)
        remote = fingerprint_model(hf.resolve(http, repo), settings, http)
        assert not hub.log.where(filename="config.json")  # the listing's quantization_config was enough
    assert remote.ok, remote.errors
    for r in remote.tensor_rows:
        assert r["sketch"] == local[r["name"]]["sketch"] and r["std"] == local[r["name"]]["std"]
    assert remote.model_row["bytes_read"] <= remote.model_row["checkpoint_bytes"] / 3
    assert json.loads((zoo / repo / "config.json").read_text())["quantization_config"]


def test_scores_separate_every_related_pair_from_every_unrelated_one(result):
    # related: both sides MiniLM-derived, or both e5-derived; unrelated: one of each
    def family(repo: str) -> str:
        return "e5" if "e5" in repo else "minilm"

    rows = [r for r in result.rows if EXL2 not in (r["a_repo_id"], r["b_repo_id"])]
    related = [r["score"] for r in rows if family(r["a_repo_id"]) == family(r["b_repo_id"])]
    unrelated = [r["score"] for r in rows if family(r["a_repo_id"]) != family(r["b_repo_id"])]
    # every scheme's copies of both models and of the fine-tune are scored, against each other too
    assert len(related) >= 2 * len(SCHEMES) and len(unrelated) >= len(SCHEMES)
    wins = sum((a > b) + 0.5 * (a == b) for a in related for b in unrelated)
    assert wins / (len(related) * len(unrelated)) >= 0.99  # AUROC
    assert not [r for r in rows if r["flagged"] and family(r["a_repo_id"]) != family(r["b_repo_id"])]
