"""Sweeps on real Ray over the fake Hub: every model exactly once, resumable, polite under quota and faults."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tracemalloc

import duckdb
import pytest

from hubscan.pipeline.http import HubHttp
from hubscan.pipeline.runtime import sweep
from hubscan.pipeline.runtime.sweep_task import Candidate, process
from hubscan.pipeline.sources import hf
from hubscan.pipeline.storage.duckdb import connect
from hubscan.testbed.demohub.badrepos import BAD_REPOS
from hubscan.testbed.fakehub import Fault

MINILM = "sentence-transformers/all-MiniLM-L6-v2"


def _counts(store):
    con = connect(store)
    models = con.execute("SELECT count(*), count(DISTINCT (repo_id, revision)) FROM models").fetchone()
    tensors = con.execute(
        "SELECT count(*), count(DISTINCT (repo_id, revision, name)) FROM tensors"
    ).fetchone()
    return models, tensors


def _good_repos(testbed):
    manifest = json.loads((testbed / "manifest.json").read_text())
    return sorted(r for r in manifest if not r.startswith("badhub/"))


def test_sweep_fingerprints_every_model_once_and_a_rerun_reads_nothing(ray_session, settings, hub, testbed):
    originals = sweep.run(settings, "hub", sweep.ListingFilters(author="sentence-transformers"))
    assert originals.done == 2
    first = sweep.run(settings, "hub")
    good = _good_repos(testbed)
    assert first.done + first.skipped == len(good) and first.skipped == 2
    assert first.failed == len(BAD_REPOS)
    assert first.exit_code == 3
    (models, distinct), (tensors, distinct_t) = _counts(settings.store)
    assert models == distinct == len(good)
    assert tensors == distinct_t
    con = connect(settings.store)
    gated = con.execute("SELECT category FROM failures WHERE repo_id = 'badhub/gated-model'").fetchall()
    assert gated == [("RepoGated",)]
    # Gated repos are refused from the listing: not a single request reached them.
    assert not [r for r in hub.log.snapshot() if r.repo_id == "badhub/gated-model"]
    # The re-upload's weight file is byte-identical to one already stored: not a byte of it
    # was read, and it is recorded as an exact copy.
    read, copy_of = con.execute(
        "SELECT bytes_read, copy_of FROM models WHERE repo_id = 'demohub/minilm-reupload'"
    ).fetchone()
    assert read == 0 and copy_of.startswith(MINILM + "@")
    # The listing names files without hashes: one resolve per file gives its sha256 (X-Linked-ETag),
    # and no range of it reaches the CDN.
    reupload = [r for r in hub.log.snapshot() if r.repo_id == "demohub/minilm-reupload" and r.filename]
    assert reupload and {(r.origin, r.status) for r in reupload} == {("hub", 302)}
    # The expanded listing is the only API traffic: no model-info call per model.
    assert not [r for r in hub.log.snapshot() if r.path.startswith("/api/models/")]
    reused = con.execute(
        "SELECT count(*) FROM tensors a JOIN tensors b USING (name) "
        "WHERE a.repo_id = ? AND b.repo_id = 'demohub/minilm-reupload' AND a.sketch = b.sketch",
        [MINILM],
    ).fetchone()
    assert reused == (104,)
    hub.log.clear()
    second = sweep.run(settings, "hub")
    # Stored models and revisions whose bytes fail for good are skipped; only the gated repo
    # (a token may come) is refused again, from the listing.
    assert second.skipped == len(good) + len(BAD_REPOS) - 1 and second.done == 0
    assert second.failed == 1
    assert not [r for r in hub.log.snapshot() if r.filename], "a re-run must not fetch any file"
    assert _counts(settings.store)[0] == (len(good), len(good))
    record = con.execute(
        "SELECT count(*), sum(done), max(projected_hub_hours) FROM read_parquet('sweeps/*.parquet')"
    ).fetchone()
    assert record[0] == 3 and record[1] == len(good) and record[2] > 0
    # The first run's record: requests by bucket, and the projection under each account's quota.
    buckets = con.execute(
        "SELECT api_requests, resolver_requests, cdn_requests, projected_hours_anonymous,"
        " projected_hours_free, projected_hours_pro FROM read_parquet('sweeps/*.parquet')"
        " WHERE done = ? ORDER BY started_at LIMIT 1",
        [first.done],
    ).fetchone()
    api, resolvers, cdn, anonymous, free, pro = buckets
    assert 0 < resolvers < cdn and api > 0
    assert anonymous > free > pro > 0


def test_a_listed_revision_that_moved_on_is_fingerprinted_at_its_current_sha(settings):
    current = hf.resolve(HubHttp(settings), MINILM).revision
    result = process(Candidate(MINILM, "0" * 40), settings, None, "t", None)
    assert result.status == "done" and result.revision == current


def test_the_shared_budget_keeps_a_sweep_under_the_server_quota(ray_session, settings, hub):
    hub.set_quota({"resolvers": 60}, window=2.0)
    limited = settings.with_(quota_resolvers=60, quota_window_s=2.0)
    summary = sweep.run(limited, "hub", sweep.ListingFilters(search="all-MiniLM-L6-v2", limit=2))
    assert summary.done == 2 and summary.failed == 0
    assert not [r for r in hub.log.snapshot() if r.status == 429]


def test_a_429_storm_is_waited_out_and_every_model_lands(ray_session, settings, hub):
    hub.script("*.safetensors", [Fault(status=429, retry_after=0.2)] * 6 + [503, 502])
    summary = sweep.run(settings, "hub", sweep.ListingFilters(author="demohub", limit=3))
    assert (summary.done, summary.failed) == (3, 0)
    assert hub.pending_steps() == 0


def test_listing_100k_models_keeps_memory_flat(settings, hub):
    hub.synthetic_models = 100_000
    hub.page_size = 1000
    tracemalloc.start()
    summary = sweep.run(settings, "hub", sweep.ListingFilters(search="synthetic"), plan_only=True)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert summary.done == 0
    con = duckdb.connect()
    listed = con.execute(
        f"SELECT listed FROM read_parquet('{settings.store}/sweeps/sweep-*.parquet')"
    ).fetchone()[0]
    assert listed == 100_000
    assert peak < 64 * 2**20, f"peak {peak / 2**20:.1f} MiB"


def _driver(settings, sweep_id, extra_env=None):
    env = {**os.environ, "HF_ENDPOINT": settings.endpoint, "RAY_AUTH_MODE": "disabled", **(extra_env or {})}
    env.pop("RAY_ADDRESS", None)
    cmd = [
        sys.executable,
        "-m",
        "hubscan.jobs.sweep",
        "--store",
        str(settings.store),
        "--sweep-id",
        sweep_id,
        "--exclude-author",
        "badhub",
        "--max-in-flight",
        "2",
    ]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_driver_killed_mid_sweep_resumes_with_nothing_lost_or_doubled(settings, hub, testbed):
    good = _good_repos(testbed)
    hub.latency = 0.01  # slow enough that the kill lands mid-sweep
    proc = _driver(settings, "killed")
    deadline = time.monotonic() + 120
    models_dir = settings.store / "models"
    while time.monotonic() < deadline:
        done = (
            [p for p in models_dir.glob("*.parquet") if not p.name.startswith("_")]
            if models_dir.exists()
            else []
        )
        if len(done) >= 3:
            break
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    (partial, _), _ = _counts(settings.store)
    assert 3 <= partial < len(good)
    hub.latency = 0.0
    rerun = _driver(settings, "killed")
    _out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err[-2000:]
    (models, distinct), (tensors, distinct_t) = _counts(settings.store)
    assert models == distinct == len(good)
    assert tensors == distinct_t


@pytest.mark.timeout(300)
def test_a_worker_node_killed_mid_sweep_loses_no_model(testbed, tmp_path):
    script = os.path.join(os.path.dirname(__file__), "cluster_kill_check.py")
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    out = subprocess.run(
        [sys.executable, script, str(testbed), str(tmp_path / "store")],
        capture_output=True,
        text=True,
        env=env,
        timeout=280,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    prefix = "cluster-kill-result: "
    lines = [line for line in out.stdout.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1, out.stdout[-3000:]
    result = json.loads(lines[0][len(prefix) :])
    good = _good_repos(testbed)
    assert result["killed_node"] is True
    assert result["models"] == result["distinct_models"] == len(good), result["failures"]
    assert result["tensors"] == result["distinct_tensors"]


def _cache_repo(cache, repo_id, snapshot, src):
    """Lay out a repo as huggingface_hub caches it: blobs named by sha256, snapshot symlinks."""
    import hashlib

    root = cache / f"models--{repo_id.replace('/', '--')}"
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    snap = root / "snapshots" / snapshot
    snap.mkdir(parents=True)
    for name in ("model.safetensors", "config.json", "tokenizer.json"):
        data = (src / name).read_bytes()
        blob = root / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snap / name).symlink_to(os.path.relpath(blob, snap))


def test_sweep_of_a_local_hf_cache_pins_snapshots_and_spots_copies(ray_session, settings, testbed, tmp_path):
    cache = tmp_path / "hf-cache"
    _cache_repo(cache, MINILM, "a" * 40, testbed / MINILM)
    _cache_repo(cache, "someone/minilm-copy", "b" * 40, testbed / MINILM)
    first = sweep.run(settings, f"cache:{cache}", sweep.ListingFilters(limit=1))
    assert first.done == 1
    second = sweep.run(settings, f"cache:{cache}")
    assert (second.done, second.skipped) == (1, 1)
    con = connect(settings.store)
    rows = dict(con.execute("SELECT repo_id, (revision, copy_of, bytes_read) FROM models").fetchall())
    assert rows[MINILM][0] == "a" * 40
    assert rows["someone/minilm-copy"] == ("b" * 40, f"{MINILM}@{'a' * 40}", 0)


def test_sweep_of_a_local_folder_of_repos(ray_session, settings, testbed, tmp_path):
    root = tmp_path / "repos"
    (root / "org").mkdir(parents=True)
    # a copy: a link to a folder outside the source is refused (tests/test_local_source.py)
    shutil.copytree(testbed / "sentence-transformers/paraphrase-MiniLM-L3-v2", root / "org/l3")
    summary = sweep.run(settings, f"local:{root}")
    assert summary.done == 1
    layers = connect(settings.store).execute("SELECT layers FROM models WHERE repo_id = 'org/l3'").fetchone()
    assert layers == (3,)
