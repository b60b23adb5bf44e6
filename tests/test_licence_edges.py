"""Licences along flagged edges on the real flag path: the testbed's licence variants fingerprinted,
flagged, queried, compared and exported; and the Hub path's createdAt, licence name and --read-code.

The variants (testbed/demohub/licence_variants.py) are F16 casts and 1% drifts of paraphrase-MiniLM-L3-v2
whose cards carry conflicting or compatible licences; every expectation comes from their construction.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hubscan.jobs import compare, export, fingerprint
from hubscan.pipeline.comparison.licences import (
    ATTRIBUTION_MISSING,
    LICENCE_UNKNOWN,
    RELICENSED,
    finding_text,
)
from hubscan.pipeline.config import Settings
from hubscan.pipeline.flagging import engine as flag
from hubscan.pipeline.runtime import sweep
from hubscan.pipeline.storage.duckdb import connect, load_sql, run_sql
from hubscan.pipeline.storage.parquet import Store
from hubscan.pipeline.storage.schema import MODELS
from hubscan.testbed.demohub.licence_variants import CODE_FILE, LLAMA_PARENT, NC_PARENT, ROOT
from hubscan.testbed.fakehub import FakeHub
from hubscan.testbed.fakehub.repos import OVERRIDES_FILE
from tests.stores import fingerprinted_store, pair_row

OPEN = "licbed/minilm-l3-open"  # apache-2.0, declares the cc-by-nc parent
NC_FT = "licbed/minilm-l3-nc-ft"  # cc-by-nc-4.0, declares the cc-by-nc parent
CHAT = "licbed/encoder-chat-l3"  # llama3, no base_model, no "Llama 3" in its name
NOLICENCE = "licbed/minilm-l3-nolicence"
REPOS = [ROOT, NC_PARENT, OPEN, NC_FT, LLAMA_PARENT, CHAT, NOLICENCE]


@pytest.fixture(scope="module")
def store(testbed, tmp_path_factory):
    return fingerprinted_store(testbed, REPOS, tmp_path_factory, "licstore")


@pytest.fixture(scope="module")
def result(store):
    return flag.run(Settings(store=store))


def _pair(result, a, b):
    row = pair_row(result.rows, a, b)
    assert row["flagged"], (a, b, row["verdict"])
    return row


def _parent(row):
    return {"a": row["a_repo_id"], "b": row["b_repo_id"]}.get(row["parent"], row["parent"])


def test_a_derivative_relicensed_apache_from_a_non_commercial_parent_is_relicensed(result):
    row = _pair(result, NC_PARENT, OPEN)
    assert _parent(row) == NC_PARENT and "declares" in row["parent_how"]
    assert {row["a_license"], row["b_license"]} == {"cc-by-nc-4.0", "apache-2.0"}
    assert row["license_finding"] == RELICENSED
    assert "apache-2.0 does not carry: non-commercial" in row["license_reason"]
    assert "by-nc/4.0/legalcode s.2(a)(1)" in row["license_reason"]


def test_compatible_edges_have_no_finding(result):
    ft = _pair(result, NC_PARENT, NC_FT)  # same licence
    assert _parent(ft) == NC_PARENT and ft["license_finding"] is None
    added = _pair(result, ROOT, NC_PARENT)  # apache-2.0 parent, the child adds non-commercial
    assert _parent(added) == ROOT and added["license_finding"] is None
    siblings = _pair(result, OPEN, NC_FT)  # both declare the same parent: judged against it, not each other
    assert siblings["parent"] == "neither" and siblings["license_finding"] is None


def test_an_undeclared_llama3_derivative_without_the_name_prefix_misses_attribution(result):
    row = _pair(result, LLAMA_PARENT, CHAT)
    assert not row["declared"] and row["license_finding"] == ATTRIBUTION_MISSING
    # no card and no structure orders the two, so the reason says which reading it rests on
    assert row["parent"] is None and row["license_reason"].startswith("parent unknown;")
    assert f"if {LLAMA_PARENT} is the parent: {CHAT} (llama3) derives from" in row["license_reason"]
    assert 'lacks "Llama 3"' in row["license_reason"] and "Built with Meta Llama 3" in row["license_reason"]


def test_a_missing_licence_is_licence_unknown(result):
    row = _pair(result, ROOT, NOLICENCE)
    assert (
        row["license_finding"] == LICENCE_UNKNOWN
        and row["license_reason"] == f"{NOLICENCE} states no licence"
    )


def test_queries_export_and_compare_carry_the_licences(store, result, tmp_path):
    con = connect(store)
    conflicts = (
        run_sql(con, load_sql("find_licence_conflicts"), {"finding": "%"}).to_arrow_table().to_pylist()
    )
    assert {(c["parent_repo_id"], c["license_finding"]) for c in conflicts} >= {(NC_PARENT, RELICENSED)}
    assert [c["declared"] for c in conflicts] == sorted(c["declared"] for c in conflicts)  # undeclared first
    assert conflicts[0]["declared"] is False
    family = run_sql(con, load_sql("show_model_family"), {"repo_id": NC_PARENT}).to_arrow_table().to_pylist()
    by_repo = {f["repo_id"]: f for f in family}
    assert by_repo[NC_PARENT]["license"] == "cc-by-nc-4.0" and by_repo[OPEN]["license_finding"] == RELICENSED
    assert by_repo[NOLICENCE]["license"] is None
    assert export.run(Settings(store=store), "json", tmp_path / "x.json") == result.flagged
    exported = {(r["a_repo_id"], r["b_repo_id"]): r for r in json.loads((tmp_path / "x.json").read_text())}
    row = exported[tuple(sorted((NC_PARENT, OPEN)))]
    assert row["license_finding"] == RELICENSED and row["a_license"] and row["parent"]
    cmp = compare.run(Settings(store=store), OPEN, NC_PARENT)
    assert cmp.as_json()["license_finding"] == RELICENSED and cmp.as_json()["b_license"] == "apache-2.0"
    assert finding_text(cmp.row) in cmp.summary_lines()


def test_the_hub_path_records_created_at_licence_name_and_code_notices(settings, hub, tmp_path):
    plain = fingerprint.run(settings, [CHAT])
    assert plain.failed == 0
    read = settings.with_(store=tmp_path / "code", read_code=True)
    hub.log.clear()
    assert fingerprint.run(read, [CHAT]).failed == 0
    (code_get,) = hub.log.where(filename=CODE_FILE)
    assert code_get.range == "bytes=0-" + str(code_get.bytes_sent - 1)  # the head only, by one range request
    rows = {}
    for name, st in (("plain", settings), ("read", read)):
        (rows[name],) = Store(st.store).dataset("models").to_table().to_pylist()
    assert rows["plain"]["code_notices"] is None and rows["plain"]["created_at"] is not None
    assert rows["plain"]["license"] == "llama3" and rows["read"]["requests"] == rows["plain"]["requests"] + 1
    (notice,) = [n for n in rows["read"]["code_notices"] if "Copyright" in n]
    assert notice == f"{CODE_FILE}:1: Copyright (c) Meta Platforms, Inc. and affiliates."
    assert any("Llama 3 Community License" in n for n in rows["read"]["code_notices"])


def test_a_read_code_sweep_draws_the_code_request_from_its_budget(ray_session, settings, hub):
    result = sweep.run(settings.with_(read_code=True), "hub", sweep.ListingFilters(search="encoder-chat"))
    assert result.done == 1 and result.failed == 0
    (code_get,) = hub.log.where(filename=CODE_FILE)
    assert code_get.range is not None and code_get.status == 206
    con = connect(settings.store)
    notices, requests = con.sql("SELECT code_notices, requests FROM models").fetchall()[0]
    assert notices[0].startswith(f"{CODE_FILE}:1: Copyright (c) Meta Platforms")
    # models.requests counts the model's file requests, the code file's included (the model-info API
    # call belongs to the sweep); the sweep's record counts every request its workers asked the budget for
    files = len([r for r in hub.log.snapshot() if r.repo_id == CHAT and r.filename])
    assert (
        requests == files
        and con.sql("SELECT requests FROM read_parquet('sweeps/*.parquet')").fetchall()[0][0] >= files
    )


def test_cli_sweep_has_the_read_code_option():
    out = subprocess.run(
        [sys.executable, "-m", "hubscan.jobs.cli", "sweep", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "--read-code" in out.stdout


def test_creation_time_orders_an_undeclared_pair_served_by_the_hub(testbed, tmp_path):
    # the same two repos, dated by the fake hub's createdAt override as the real Hub dates uploads
    root = tmp_path / "hub"
    for repo, created in ((LLAMA_PARENT, "2024-02-01T00:00:00.000Z"), (CHAT, "2024-05-01T00:00:00.000Z")):
        shutil.copytree(testbed / repo, root / repo)
        (root / repo / OVERRIDES_FILE).write_text(json.dumps({"createdAt": created}))
    with FakeHub(root) as hub:
        settings = Settings(endpoint=hub.url, store=tmp_path / "store")
        assert fingerprint.run(settings, [LLAMA_PARENT, CHAT]).failed == 0
    row = _pair(flag.run(settings), LLAMA_PARENT, CHAT)
    assert _parent(row) == LLAMA_PARENT and row["parent_how"] == "created first (2024-02-01 vs 2024-05-01)"
    assert row["license_finding"] == ATTRIBUTION_MISSING and row["license_reason"].startswith(
        f"{CHAT} (llama3)"
    )


def test_a_store_written_before_the_licence_columns_gets_them(store, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(store, old)
    legacy = [f for f in MODELS if f.name not in ("license_name", "created_at", "code_notices")]
    pq.write_table(pa.schema(legacy).empty_table(), old / "models" / "_empty.parquet")
    for f in (old / "models").glob("[!_]*.parquet"):  # model files of that time lack the columns too
        pq.write_table(pq.read_table(f).select([x.name for x in legacy]), f)
    Store(old).init()
    family = run_sql(connect(old), load_sql("show_model_family"), {"repo_id": NC_PARENT}).to_arrow_table()
    assert {r["license"] for r in family.to_pylist()} >= {"cc-by-nc-4.0", "apache-2.0"}
