"""Stores on object storage: every command against a real S3-compatible server (moto's standalone
server) on 127.0.0.1, including a Ray sweep whose workers write there."""

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
from typer.testing import CliRunner

from hubscan.jobs.cli import app
from hubscan.testbed.demohub.small_repos import main as write_small_repos
from tests.stores import cli_sql, environment, free_port, wait_for_port

BUCKET = "hubscan-test"
STORE = f"s3://{BUCKET}/store"
LOCKED = "hubscan-locked"
SERVER_START_S = 30  # moto imports Flask and every service mock before it listens


def _moto(port: int, no_auth_actions: int | None = None, log: Path | None = None) -> subprocess.Popen:
    """moto's S3 server; with ``no_auth_actions`` it checks signatures and IAM after that many requests.

    Its request log (one line per request, on stderr) goes to ``log`` when given.
    """
    env = dict(os.environ)
    if no_auth_actions is not None:
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(no_auth_actions)
    err = log.open("w") if log is not None else subprocess.DEVNULL
    return subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=err, env=env,
    )  # fmt: skip


def _aws_env(port: int) -> dict[str, str]:
    return {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true"}  # fmt: skip


@pytest.fixture(scope="module")
def s3_log(tmp_path_factory) -> Path:
    """The request log of the s3_env server."""
    return tmp_path_factory.mktemp("moto") / "requests.log"


@pytest.fixture(scope="module")
def s3_env(s3_log):
    """A moto S3 server and the standard AWS environment pointing at it (restored afterwards)."""
    port = free_port()
    server = _moto(port, log=s3_log)
    env = _aws_env(port)
    try:
        with environment(env):
            wait_for_port(port, server, SERVER_START_S)
            boto3.client("s3").create_bucket(Bucket=BUCKET)
            yield env
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def locked_s3():
    """A moto server enforcing IAM, with a bucket: the environment of a user with no permission at all."""
    port = free_port()
    # three unchecked requests: create the bucket, the user and its access key
    server = _moto(port, no_auth_actions=3)
    env = _aws_env(port)
    try:
        with environment(env):
            wait_for_port(port, server, SERVER_START_S)
            boto3.client("s3").create_bucket(Bucket=LOCKED)
            iam = boto3.client("iam")
            iam.create_user(UserName="nobody")
            key = iam.create_access_key(UserName="nobody")["AccessKey"]
        # applied by each test, so the module's other tests keep the s3_env server
        yield {
            **env,
            "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
        }
    finally:
        server.terminate()
        server.wait(timeout=30)


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


def test_ray_workers_write_the_store_on_s3(s3_store):
    # the sweep compacted its 7 models at its end: one file per block, named by the manifest, on the server
    assert [k for k in _objects("models/") if k.endswith(".parquet")] == ["store/models/_empty.parquet"]
    assert len([k for k in _objects("compacted/models/block-128/") if k.endswith(".parquet")]) == 1
    assert _objects("compacted/manifest.json")
    assert cli_sql(STORE, "SELECT count(*) AS n FROM models") == [{"n": "7"}]


def test_flag_export_and_compare_read_the_s3_store_back(s3_store, tmp_path):
    runner = CliRunner()
    assert runner.invoke(app, ["flag", "--store", STORE]).exit_code == 0
    flagged = cli_sql(STORE, "SELECT a_repo_id, b_repo_id FROM pairs WHERE flagged ORDER BY ALL")
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


def test_report_reads_the_s3_store_not_a_local_folder_named_like_the_bucket(s3_store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a folder named like the bucket would be found here
    runner = CliRunner()
    assert runner.invoke(app, ["flag", "--store", STORE]).exit_code == 0
    result = runner.invoke(app, ["report", "--store", STORE, "-o", str(tmp_path / "site")])
    assert result.exit_code == 0, result.output
    index = (tmp_path / "site" / "index.html").read_text()
    assert STORE in index and "smoke/base-finetune-1" in index
    assert len(list((tmp_path / "site" / "pairs").iterdir())) == 3
    assert not (tmp_path / BUCKET).exists()


def test_fingerprint_writes_to_the_s3_store(s3_store):
    result = CliRunner().invoke(app, ["fingerprint", str(s3_store / "smoke" / "base"), "--store", STORE])
    assert result.exit_code == 0, result.output
    assert cli_sql(STORE, "SELECT count(*) AS n FROM models WHERE repo_id = 'smoke/base'") == [{"n": "1"}]


def test_a_missing_bucket_is_one_line_and_exit_1(s3_env):
    result = CliRunner().invoke(app, ["sql", "SELECT 1", "--store", "s3://no-such-bucket/store"])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("hubscan: s3://no-such-bucket/store: ")
    assert "no-such-bucket" in result.stderr.split(": ", 2)[2]


def test_access_denied_is_one_line_and_exit_1(locked_s3):
    store = f"s3://{LOCKED}/store"
    with environment(locked_s3):
        result = CliRunner().invoke(app, ["sql", "SELECT 1", "--store", store])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"hubscan: {store}: ")
    assert "ACCESS_DENIED" in result.stderr


def test_no_credentials_is_one_line_and_exit_1(locked_s3, tmp_path):
    # nothing in the environment, no credentials file, no instance metadata: the requests go unsigned
    none = str(tmp_path / "absent")
    unset = {"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None}
    with environment({**locked_s3, **unset, "AWS_SHARED_CREDENTIALS_FILE": none, "AWS_CONFIG_FILE": none}):
        result = CliRunner().invoke(app, ["sql", "SELECT 1", "--store", f"s3://{LOCKED}/store"])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"hubscan: s3://{LOCKED}/store: ")


def _files_listings(log: Path) -> int:
    """Listings of the whole loose files table in the server's request log so far."""
    time.sleep(0.5)  # the server writes its log line after answering
    # a dataset lists recursively (no delimiter); existence checks list one key with a delimiter
    return sum("prefix=store/files/ " in line and "delimiter" not in line for line in log.open())


def test_fingerprint_loads_the_file_owners_once_per_run_not_once_per_model(s3_store, s3_log):
    targets = [str(s3_store / "smoke" / m) for m in ("base", "base-finetune-0", "base-finetune-1")]
    before = _files_listings(s3_log)
    result = CliRunner().invoke(app, ["fingerprint", *targets, "--force", "--store", STORE])
    assert result.exit_code == 0, result.output
    assert _files_listings(s3_log) - before == 1
