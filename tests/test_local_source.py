"""A local source stays inside its folder: one sweep over hostile repos beside a good one.

Links out of the source, pipes and devices fail their model in one failures row (never with the bytes of
a file outside); absurdly nested cards and configs are ignored; the good models are stored; the sweep
neither hangs nor dies.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hubscan.jobs import fingerprint
from hubscan.jobs.cli import app
from hubscan.pipeline.config import Settings
from hubscan.pipeline.runtime import sweep
from hubscan.pipeline.storage.duckdb import connect
from tests.storage.test_keys import small_repo
from tests.storage.test_store_files import read_only_prefix

OUTSIDE = "a link to outside the source folder: not followed"
SPECIAL = "not a regular file (a pipe, socket or device): not read"
# what a secret's first 8 bytes looked like as a safetensors header length in a failure message
SECRET = b"password=hunter2 and more secret words\n"
SPARSE_BYTES = 64 << 30


def hostile_source(tmp_path: Path) -> tuple[Path, dict[str, str | None]]:
    """A folder of org/name repos and the failure reason expected of each (None: stored)."""
    root = tmp_path / "repos"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(SECRET)
    with (outside / "sparse.safetensors").open("wb") as fh:
        fh.truncate(SPARSE_BYTES)  # 64 GiB that cost no disk: hashing it whole took 90 s
    expected: dict[str, str | None] = {"org/good": None}
    small_repo(root, "org/good")

    secret = small_repo(root, "org/secret-weights", seed=1)
    (secret / "model.safetensors").unlink()
    os.symlink(outside / "secret.txt", secret / "model.safetensors")
    expected["org/secret-weights"] = f"model.safetensors: {OUTSIDE}"

    sparse = small_repo(root, "org/sparse-weights", seed=2)
    (sparse / "model.safetensors").unlink()
    os.symlink(outside / "sparse.safetensors", sparse / "model.safetensors")
    expected["org/sparse-weights"] = f"model.safetensors: {OUTSIDE}"

    zero = small_repo(root, "org/zero-config", seed=3)
    os.symlink("/dev/zero", zero / "config.json")
    expected["org/zero-config"] = f"config.json: {OUTSIDE}"

    pipe = small_repo(root, "org/pipe-card", seed=4)
    os.mkfifo(pipe / "README.md")
    expected["org/pipe-card"] = f"README.md: {SPECIAL}"

    os.symlink(small_repo(outside, "else/where", seed=5), root / "org" / "linked-folder")
    expected["org/linked-folder"] = f"the folder is {OUTSIDE}"

    deep_card = small_repo(root, "org/deep-card", seed=6)
    (deep_card / "README.md").write_text("---\nlicense: " + "[" * 5000 + "]" * 5000 + "\n---\n")
    expected["org/deep-card"] = None
    deep_config = small_repo(root, "org/deep-config", seed=7)
    (deep_config / "config.json").write_text('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}")
    expected["org/deep-config"] = None

    odd_card = small_repo(root, "org/odd-card", seed=9)  # values of the wrong type are ignored
    (odd_card / "README.md").write_text("---\ntags: 5\nlicense: [1]\nbase_model: {a: 1}\n---\n")
    expected["org/odd-card"] = None

    inner = small_repo(root, "org/inner-link", seed=8)  # a link that stays inside the source is followed
    (inner / "model.safetensors").rename(root / "org" / "shared.safetensors")
    os.symlink(root / "org" / "shared.safetensors", inner / "model.safetensors")
    expected["org/inner-link"] = None
    return root, expected


def _unblock_pipes(root: Path) -> threading.Timer:
    """If anything opens a pipe for reading (the bug), a writer opened a minute later lets the test end."""

    def open_writers() -> None:
        for pipe in (p for p in root.rglob("README.md") if p.is_fifo()):
            # succeeds only while a reader waits; closing at once gives that reader end-of-file
            with contextlib.suppress(OSError):
                os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))

    timer = threading.Timer(60.0, open_writers)
    timer.start()
    return timer


def test_a_sweep_of_a_hostile_local_folder_stores_the_good_models_and_one_row_per_hostile_one(
    ray_session, tmp_path
):
    root, expected = hostile_source(tmp_path)
    settings = Settings(store=tmp_path / "store")
    timer = _unblock_pipes(root)
    try:
        summary = sweep.run(settings, f"local:{root}")
    finally:
        timer.cancel()
    con = connect(settings.store)
    stored = {r for (r,) in con.execute("SELECT repo_id FROM models").fetchall()}
    assert stored == {r for r, why in expected.items() if why is None}
    failures = dict(con.execute("SELECT repo_id, message FROM failures").fetchall())
    refused = {r: why for r, why in expected.items() if why is not None}
    assert set(failures) == set(refused)
    for repo_id, why in refused.items():
        assert failures[repo_id].startswith(f"{repo_id}@") and failures[repo_id].endswith(why), failures[
            repo_id
        ]
        assert "password" not in failures[repo_id] and "hunter2" not in failures[repo_id]
    assert (summary.done, summary.failed) == (len(stored), len(refused))


def test_a_hugging_face_cache_snapshot_named_directly_may_read_its_blobs(tmp_path):
    repo = tmp_path / "hub" / "models--org--cached"
    folder = small_repo(tmp_path / "plain", "org/cached")
    (repo / "blobs").mkdir(parents=True)
    snapshot = repo / "snapshots" / ("c" * 40)
    snapshot.mkdir(parents=True)
    blob = repo / "blobs" / ("d" * 64)
    (folder / "model.safetensors").rename(blob)
    os.symlink(os.path.relpath(blob, snapshot), snapshot / "model.safetensors")
    result = CliRunner().invoke(app, ["fingerprint", "--store", str(tmp_path / "store"), str(snapshot)])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("hostile", ["pipe-card", "zero-config", "secret-weights"])
def test_fingerprint_of_one_hostile_folder_is_one_failure_line_and_exit_3(tmp_path, hostile):
    root, expected = hostile_source(tmp_path)
    timer = _unblock_pipes(root)
    try:
        result = CliRunner().invoke(
            app, ["fingerprint", "--store", str(tmp_path / "store"), str(root / "org" / hostile)]
        )
    finally:
        timer.cancel()
    assert result.exit_code == 3, result.output
    assert expected[f"org/{hostile}"] in result.stderr
    assert "Traceback" not in result.output and "hunter2" not in result.output


def test_the_config_and_card_of_a_good_folder_still_reach_the_store(tmp_path):
    folder = small_repo(tmp_path / "repos", "org/carded")
    (folder / "README.md").write_text("---\nlicense: mit\nbase_model: org/base\n---\n# a card\n")
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 64}))
    result = CliRunner().invoke(app, ["fingerprint", "--store", str(tmp_path / "store"), str(folder)])
    assert result.exit_code == 0, result.output
    row = connect(tmp_path / "store").execute("SELECT license, base_models FROM models").fetchone()
    assert row == ("mit", ["org/base"])


def test_a_card_the_user_cannot_read_fails_its_model_in_one_line(tmp_path):
    folder = small_repo(tmp_path / "repos", "org/closed-card")
    (folder / "README.md").write_text("---\nlicense: mit\n---\n")
    os.chmod(folder / "README.md", 0)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "RAY_AUTH_MODE": "disabled"}
    done = subprocess.run(
        [*read_only_prefix(), sys.executable, "-m", "hubscan.jobs.cli", "fingerprint", "--store", str(tmp_path / "store"),
         str(folder)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr
    assert "org/closed-card@refused:README.md: cannot be read: Permission denied" in done.stderr


def _cached(cache: Path, repo_id: str, folder: Path) -> Path:
    """``folder`` laid out as huggingface_hub caches it (blobs named by sha256, snapshot links); the snapshot."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir()
    for item in folder.iterdir():
        data = item.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        os.symlink(os.path.relpath(blob, snapshot), snapshot / item.name)
    return snapshot


def test_a_cache_snapshot_linking_out_of_the_cache_fails_alone(ray_session, tmp_path):
    cache = tmp_path / "hub"
    _cached(cache, "org/good", small_repo(tmp_path / "plain", "org/good"))
    leaky = _cached(cache, "org/leaky", small_repo(tmp_path / "plain", "org/leaky", seed=1))
    (tmp_path / "secret.txt").write_bytes(SECRET)
    os.symlink(tmp_path / "secret.txt", leaky / "config.json")
    settings = Settings(store=tmp_path / "store")
    summary = sweep.run(settings, f"cache:{cache}")
    assert (summary.done, summary.failed) == (1, 1)
    con = connect(settings.store)
    assert con.execute("SELECT repo_id FROM models").fetchall() == [("org/good",)]
    assert con.execute("SELECT message FROM failures").fetchall() == [
        (f"org/leaky@{'a' * 7}:config.json: {OUTSIDE}",)
    ]


def _bytes_read_by_this_process() -> int:
    """Bytes this process has read through read(2) and friends (``rchar``): counts reads, not time."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


@pytest.mark.timeout(600)  # the old code hashed all 64 GiB before reading the header
def test_a_sparse_weight_file_inside_the_folder_fails_on_its_header_before_it_is_hashed(tmp_path):
    good = small_repo(tmp_path / "repos", "org/good")
    sparse = small_repo(tmp_path / "repos", "org/sparse-inside", seed=2)
    garbage = b"{not a safetensors header at all}" + b" " * 31  # 64 bytes
    with (sparse / "model.safetensors").open("wb") as fh:
        fh.write(len(garbage).to_bytes(8, "little") + garbage)
        fh.truncate(SPARSE_BYTES)  # 64 GiB that cost no disk, inside the source folder
    settings = Settings(store=tmp_path / "store")
    before = _bytes_read_by_this_process()
    summary = fingerprint.run(settings, [str(sparse), str(good)])
    read = _bytes_read_by_this_process() - before
    assert (summary.done, summary.failed) == (1, 1), summary.messages
    assert read < 64 << 20, f"{read:,} bytes read"  # the header and the good model, not 64 GiB
    con = connect(settings.store)
    assert [r for (r,) in con.execute("SELECT repo_id FROM models").fetchall()] == ["org/good"]
    rows = con.execute("SELECT repo_id, file, category FROM failures").fetchall()
    assert rows == [("org/sparse-inside", "model.safetensors", "MalformedHeader")]
