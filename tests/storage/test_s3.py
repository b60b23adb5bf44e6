"""Stores on object storage: every command against a real S3-compatible server (moto's standalone
server) on 127.0.0.1, including a Ray sweep whose workers write there."""

import csv
import os
import socket
import subprocess
import sys
import time

import boto3
import pytest
from typer.testing import CliRunner

from jobs.cli import app
from jobs.demohub.small_repos import main as write_small_repos

BUCKET = "hubscan-test"
STORE = f"s3://{BUCKET}/store"
SERVER_START_S = 30  # moto imports Flask and every service mock before it listens


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3_env():
    """A moto S3 server and the standard AWS environment pointing at it (restored afterwards)."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "test",
           "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_EC2_METADATA_DISABLED": "true"}  # fmt: skip
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        deadline = time.monotonic() + SERVER_START_S
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            assert time.monotonic() < deadline and server.poll() is None, "moto server did not start"
            time.sleep(0.2)
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield env
    finally:
        server.terminate()
        server.wait(timeout=30)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def s3_store(s3_env, ray_session, tmp_path_factory):
    """Small local repos swept by Ray workers into the S3 store."""
    repos = tmp_path_factory.mktemp("small-repos")
    write_small_repos(repos)
    result = CliRunner().invoke(app, ["sweep", "--source", f"local:{repos}", "--store", STORE])
    assert result.exit_code == 0, result.output
    return repos


def _objects(prefix: str) -> list[str]:
    listing = boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=f"store/{prefix}")
    return [o["Key"] for o in listing.get("Contents", [])]


def _sql(query: str) -> list[dict[str, str]]:
    result = CliRunner().invoke(app, ["sql", query, "--store", STORE, "--format", "csv"])
    assert result.exit_code == 0, result.output
    return list(csv.DictReader(result.stdout.splitlines()))


def test_ray_workers_write_the_store_on_s3(s3_store):
    # the sweep compacted its 7 models at its end: one file per block, named by the manifest, on the server
    assert [k for k in _objects("models/") if k.endswith(".parquet")] == ["store/models/_empty.parquet"]
    assert len([k for k in _objects("compacted/models/block-128/") if k.endswith(".parquet")]) == 1
    assert _objects("compacted/manifest.json")
    assert _sql("SELECT count(*) AS n FROM models") == [{"n": "7"}]


def test_flag_export_and_compare_read_the_s3_store_back(s3_store, tmp_path):
    runner = CliRunner()
    assert runner.invoke(app, ["flag", "--store", STORE]).exit_code == 0
    flagged = _sql("SELECT a_repo_id, b_repo_id FROM pairs WHERE flagged ORDER BY ALL")
    assert flagged == [
        {"a_repo_id": "smoke/base", "b_repo_id": "smoke/base-finetune-0"},
        {"a_repo_id": "smoke/base", "b_repo_id": "smoke/base-finetune-1"},
        {"a_repo_id": "smoke/base-finetune-0", "b_repo_id": "smoke/base-finetune-1"},
    ]
    out = tmp_path / "pairs.csv"
    assert runner.invoke(app, ["export", "--store", STORE, "-o", str(out)]).exit_code == 0
    assert len(list(csv.DictReader(out.open()))) == 3
    result = runner.invoke(app, ["compare", "smoke/base", "other/unrelated-1", "--store", STORE])
    assert result.exit_code == 0, result.output
    assert _objects("layer_maps/")


def test_fingerprint_writes_to_the_s3_store(s3_store):
    result = CliRunner().invoke(app, ["fingerprint", str(s3_store / "smoke" / "base"), "--store", STORE])
    assert result.exit_code == 0, result.output
    assert _sql("SELECT count(*) AS n FROM models WHERE repo_id = 'smoke/base'") == [{"n": "1"}]


def test_a_missing_bucket_is_one_line_and_exit_1(s3_env):
    result = CliRunner().invoke(app, ["sql", "SELECT 1", "--store", "s3://no-such-bucket/store"])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("hubscan: s3://no-such-bucket/store: ")
    assert "no-such-bucket" in result.stderr.split(": ", 2)[2]
