"""PEFT adapters and LoRA merges of the real all-MiniLM-L6-v2, through a real sweep of the fake Hub (real Ray),
`hubscan flag` and `hubscan sql adapters` on real DuckDB.

The LoRA is trained here (testbed/demohub/lora.py: numpy, rank 8 on query and value of every block) and
written in PEFT's own layout. Expectations come from the build (what was merged into what, the widths
written, the rank of the merged change measured on the files), never from hubscan's own output.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from hubscan.jobs import compare, sql
from hubscan.pipeline.comparison import verdicts as v
from hubscan.pipeline.config import Settings
from hubscan.pipeline.flagging import engine as flag
from hubscan.pipeline.outputs import families
from hubscan.pipeline.runtime import sweep
from hubscan.pipeline.storage.duckdb import connect
from hubscan.testbed.demohub.lora import (
    DRIFT,
    MINILM,
    ORG,
    RANK,
    build_lora_repos,
    embedding_inputs,
    train_lora,
)
from hubscan.testbed.fakehub import FakeHub
from hubscan.testbed.writers.safetensors_write import read_safetensors_np
from tests.real_checkpoints import real_model

ADAPTER, COPY, WIDE = f"{ORG}/minilm-lora", f"{ORG}/minilm-lora-f16", f"{ORG}/wide-lora"
SAME_SEED = f"{ORG}/minilm-lora-other-task"
MERGED, DENSE = f"{ORG}/minilm-lora-merged", f"{ORG}/minilm-dense-drift"


@pytest.fixture(scope="module")
def repos(tmp_path_factory):
    return build_lora_repos(real_model("minilm-l6"), tmp_path_factory.mktemp("lora-hub"))


@pytest.fixture(scope="module")
def lora_hub(repos):
    with FakeHub(repos["base"].parents[1]) as hub:
        yield hub


@pytest.fixture(scope="module")
def result(ray_session, lora_hub, tmp_path_factory):
    """The seven repos swept from the fake Hub and flagged: (settings, flag result)."""
    settings = Settings(endpoint=lora_hub.url, store=tmp_path_factory.mktemp("lora-store") / "store",
                        backoff_base_s=0.01, backoff_max_s=0.05)  # fmt: skip
    summary = sweep.run(settings, "hub")
    assert (summary.done, summary.failed) == (7, 0), summary.messages
    return settings, flag.run(settings)


def _pair(result, a: str, b: str) -> dict:
    rows = [r for r in result[1].rows if {r["a_repo_id"], r["b_repo_id"]} == {a, b}]
    assert len(rows) == 1, (a, b)
    return rows[0]


def _side(row: dict, repo: str) -> str:
    return "a" if row["a_repo_id"] == repo else "b"


def test_the_build_is_a_trained_rank_8_lora_merged_into_the_real_base(repos):
    """What the other tests expect, measured on the written files: 12 of 36 matrices moved by a rank-8
    change of about DRIFT, everything else bit-identical, and the adapter's loss below its start."""
    base = read_safetensors_np(repos["base"] / "model.safetensors")
    merged = read_safetensors_np(repos["merged"] / "model.safetensors")
    moved = {}
    for name, w in base.items():
        delta = merged[name].astype(np.float64) - w
        if delta.any():
            moved[name] = (np.linalg.norm(delta) / np.linalg.norm(w), np.linalg.matrix_rank(delta, tol=1e-4 * np.abs(delta).max()))  # fmt: skip
    assert sorted(moved) == sorted(f"encoder.layer.{i}.attention.self.{t}.weight" for i in range(6) for t in ("query", "value"))  # fmt: skip
    assert all(DRIFT <= share <= 1.25 * DRIFT and rank == RANK for share, rank in moved.values()), moved
    config = json.loads((repos["adapter"] / "adapter_config.json").read_text())
    assert (config["peft_type"], config["r"], config["target_modules"]) == ("LORA", RANK, ["query", "value"])
    # trained, not drawn: each adapted projection answers closer to its teacher than the base did, and
    # closer than a random rank-8 change of the same size does
    lora = train_lora(base)
    x = embedding_inputs(base, 0)
    rng = np.random.default_rng(5)
    for module, (a, b) in lora.weights.items():
        layer = int(module.split(".")[2])
        teacher = base[module.replace(f"layer.{layer}", f"layer.{(layer + 1) % 6}") + ".weight"]
        w = base[f"{module}.weight"].astype(np.float64)
        change = lora.scale * b.astype(np.float64) @ a
        drawn = rng.standard_normal((w.shape[0], RANK)) @ rng.standard_normal((RANK, w.shape[1]))
        drawn *= np.linalg.norm(change) / np.linalg.norm(drawn)
        before, after, random = (np.linalg.norm(x @ (w + d - teacher).T) for d in (0.0, change, drawn))
        assert after < before and after < random, (module, before, after, random)


def test_sql_adapters_lists_the_adapters_with_their_base_and_the_fit_check(result):
    settings, _ = result
    rows = {r["repo_id"]: r for r in sql.run(settings, "adapters", {}).to_pylist()}
    assert sorted(rows) == [ADAPTER, COPY, SAME_SEED, WIDE]
    got = rows[ADAPTER]
    assert (got["type"], got["base"], got["rank"], got["alpha"], got["targets"]) == (
        "LORA", MINILM, RANK, 16.0, ["query", "value"]
    )  # fmt: skip
    assert (got["layers"], got["hidden"], got["base_hidden"], got["fit"]) == (
        [0, 1, 2, 3, 4, 5],
        384,
        384,
        "fits",
    )
    assert rows[COPY]["fit"] == rows[SAME_SEED]["fit"] == "fits"
    assert rows[WIDE]["fit"] == "does not fit: base hidden 384, adapter 512"


def test_an_adapter_is_stored_with_the_widths_its_matrices_imply(result, lora_hub):
    settings, _ = result
    got = (
        connect(settings.store)
        .sql(
            "SELECT hidden, base_models, format, params FROM models WHERE repo_id = $r", params={"r": ADAPTER}
        )
        .fetchall()
    )
    # 12 modules x (A [8, 384] + B [384, 8])
    assert got == [(384, [MINILM], "safetensors", 12 * 2 * RANK * 384)]
    # its adapter_config.json is one GET through the Hub, counted in the models row like its weights'
    fetched = lora_hub.log.where(method="GET", repo_id=ADAPTER, filename="adapter_config.json")
    assert [r.status for r in fetched] == [200]
    sql_counted = "SELECT resolver_requests FROM models WHERE repo_id = $r"
    ((counted,),) = connect(settings.store).sql(sql_counted, params={"r": ADAPTER}).fetchall()
    resolves = [r for r in lora_hub.log.where(repo_id=ADAPTER, origin="hub") if "/resolve/" in r.path]
    assert counted == len(resolves) >= 2  # the config and the weights' redirect


def test_the_adapters_f16_re_upload_is_found_as_a_copy(result):
    row = _pair(result, ADAPTER, COPY)
    assert row["flagged"] and row["verdict"] == v.CAST_COPY, row["reason"]
    assert row["sketch"] > 0.9999


def test_an_adapter_trained_from_the_same_seed_on_another_task_is_no_copy_or_fine_tune_of_it(result, repos):
    """Both start from one A (PEFT draws it from the seeded RNG), so A is no evidence; B is learnt from zero."""
    a = read_safetensors_np(repos["adapter"] / "adapter_model.safetensors")
    b = read_safetensors_np(repos["same_seed"] / "adapter_model.safetensors")
    shared_a = [np.corrcoef(a[n].ravel(), b[n].ravel())[0, 1] for n in a if n.endswith("lora_A.weight")]
    assert min(shared_a) > 0.9  # the build: A barely moves from its shared init
    row = _pair(result, ADAPTER, SAME_SEED)
    assert row["verdict"] not in (v.EXACT_COPY, v.CAST_COPY, v.FINE_TUNE, v.LOW_RANK_FINE_TUNE), row["reason"]
    assert row["sketch"] < 0.5


def test_the_merged_lora_is_a_low_rank_fine_tune_of_its_base(result):
    row = _pair(result, MERGED, MINILM)
    assert row["flagged"] and row["verdict"] == v.LOW_RANK_FINE_TUNE, row["reason"]
    assert row["reason"].startswith(f"low-rank fine-tune (rank ≈ {RANK}) of attn_q, attn_v: 12 of 36"), row[
        "reason"
    ]
    assert row["parent"] == _side(row, MINILM)


def test_a_full_rank_change_of_the_same_matrices_is_a_fine_tune_not_a_cast(result):
    row = _pair(result, DENSE, MINILM)
    assert row["flagged"] and row["verdict"] == v.FINE_TUNE, row["reason"]
    assert row["reason"].startswith("12 of 36 same-index matrices moved (attn_q, attn_v;"), row["reason"]


def test_adapters_hang_under_their_declared_base_in_the_family_tree(result):
    settings, _ = result
    fams = families.load_families(connect(settings.store))
    (family,) = [f for f in fams if f.root == MINILM]
    parents = {link.child: (link.parent, link.verdict) for link in family.links}
    assert parents[ADAPTER] == (MINILM, families.ADAPTER_VERDICT)
    assert parents[WIDE] == (MINILM, families.ADAPTER_VERDICT)
    assert parents[COPY][0] in (ADAPTER, MINILM)


def test_compare_of_an_adapter_and_its_base_is_a_comparison_not_a_refusal(result):
    """Before: "not comparable … hidden size None vs 384". Now both sit in the 384 block; no weight signal
    links A/B to the base's matrices, so the verdict rests on the declaration."""
    settings, _ = result
    got = compare.run(settings, ADAPTER, MINILM)
    assert got.row["verdict"] == v.INSUFFICIENT and got.row["declared"]
