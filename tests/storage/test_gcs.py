"""Stores on Google Cloud Storage: sweep, sql, flag, export and fingerprint against a real GCS API
emulator (gcp-storage-emulator) on 127.0.0.1, found through STORAGE_EMULATOR_HOST."""

import csv
import subprocess
import sys

import pyarrow.fs as pafs
import pytest
from typer.testing import CliRunner

from hubscan.jobs.cli import app
from hubscan.pipeline.storage.remote import gcs_filesystem
from hubscan.testbed.demohub.small_repos import main as write_small_repos
from tests.stores import cli_sql, environment, free_port, wait_for_port

BUCKET = "hubscan-gcs-test"
STORE = f"gs://{BUCKET}/store"
SERVER_START_S = 30


@pytest.fixture(scope="module")
def gcs_env():
    """A GCS emulator and the environment pointing at it (restored afterwards)."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gcp_storage_emulator", "start", "--host", "127.0.0.1", "--port", str(port),
         "--in-memory"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    env = {"STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{port}", "GOOGLE_CLOUD_PROJECT": "hubscan-test"}
    try:
        with environment(env):
            wait_for_port(port, server, SERVER_START_S)
            gcs_filesystem().create_dir(BUCKET)  # a bucket needs a project: GOOGLE_CLOUD_PROJECT
            yield env
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def gcs_store(gcs_env, ray_session, tmp_path_factory):
    """Small local repos swept by Ray workers into the GCS store."""
    repos = tmp_path_factory.mktemp("small-repos-gcs")
    write_small_repos(repos)
    result = CliRunner().invoke(app, ["sweep", "--source", f"local:{repos}", "--store", STORE])
    assert result.exit_code == 0, result.output
    return repos


def _objects(prefix: str) -> list[str]:
    infos = gcs_filesystem().get_file_info(pafs.FileSelector(f"{BUCKET}/store/{prefix}", recursive=True))
    return [i.path for i in infos if i.type == pafs.FileType.File]


def test_ray_workers_write_the_store_on_gcs(gcs_store):
    assert _objects("compacted/models/")
    assert cli_sql(STORE, "SELECT count(*) AS n FROM models") == [{"n": "7"}]


def test_flag_and_export_read_the_gcs_store_back(gcs_store, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["flag", "--store", STORE])
    assert result.exit_code == 0, result.output
    flagged = cli_sql(STORE, "SELECT a_repo_id, b_repo_id FROM pairs WHERE flagged ORDER BY ALL")
    assert [(r["a_repo_id"], r["b_repo_id"]) for r in flagged] == [
        ("smoke/base", "smoke/base-finetune-0"),
        ("smoke/base", "smoke/base-finetune-1"),
        ("smoke/base-finetune-0", "smoke/base-finetune-1"),
    ]
    out = tmp_path / "pairs.csv"
    assert runner.invoke(app, ["export", "--store", STORE, "-o", str(out)]).exit_code == 0
    assert len(list(csv.DictReader(out.open()))) == 3


def test_fingerprint_writes_to_the_gcs_store(gcs_store):
    result = CliRunner().invoke(app, ["fingerprint", str(gcs_store / "smoke" / "base"), "--store", STORE])
    assert result.exit_code == 0, result.output
    assert cli_sql(STORE, "SELECT count(*) AS n FROM models WHERE repo_id = 'smoke/base'") == [{"n": "1"}]


def test_a_missing_gcs_bucket_is_one_line_and_exit_1(gcs_env):
    result = CliRunner().invoke(app, ["sql", "SELECT 1", "--store", "gs://no-such-bucket/store"])
    assert result.exit_code == 1
    assert result.stderr == "hubscan: gs://no-such-bucket/store: bucket no-such-bucket does not exist\n"
    # and it was not created on the way (GCS's create_dir would have)
    assert gcs_filesystem().get_file_info("no-such-bucket").type == pafs.FileType.NotFound


def test_unreadable_gcs_credentials_are_one_line_and_exit_1(gcs_env, tmp_path):
    missing = str(tmp_path / "no-such-key.json")
    with environment({"STORAGE_EMULATOR_HOST": None, "GOOGLE_APPLICATION_CREDENTIALS": missing}):
        result = CliRunner().invoke(app, ["sql", "SELECT 1", "--store", STORE])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"hubscan: {STORE}: ")
    assert "Cannot open credentials file" in result.stderr


def test_no_gcs_credentials_is_one_line_and_exit_1(gcs_env, tmp_path):
    # off GCP with nothing configured the client asks the metadata server until its retry limit (~25 s)
    none = {"STORAGE_EMULATOR_HOST": None, "GOOGLE_APPLICATION_CREDENTIALS": None, "HOME": str(tmp_path)}
    with environment(none):
        result = CliRunner().invoke(app, ["sql", "SELECT 1", "--store", STORE])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"hubscan: {STORE}: ")
    assert "Could not create a OAuth2 access token" in result.stderr
