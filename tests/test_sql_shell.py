"""`hubscan sql --shell`: the plain duckdb CLI on a store with hubscan's views loaded, driven through a pipe."""

import csv
import shutil
import subprocess
import sys

import pytest

from hubscan.jobs import compact
from hubscan.jobs.sql import DUCKDB_CLI
from hubscan.pipeline.config import Settings
from tests.stores import cli_sql, fingerprinted_store

REPOS = ["sentence-transformers/all-MiniLM-L6-v2", "sentence-transformers/paraphrase-MiniLM-L3-v2"]
COUNT_TENSORS = "SELECT repo_id, count(*) AS n FROM tensors GROUP BY ALL ORDER BY repo_id"


@pytest.fixture(scope="module")
def store(testbed, tmp_path_factory):
    """Two models, compacted: the views must find the parts the manifest names, not only loose files."""
    root = fingerprinted_store(testbed, REPOS, tmp_path_factory, "shellstore")
    assert compact.run(Settings(store=root)).models == len(REPOS)
    return root


def _shell(store, typed: str, cwd, env=None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hubscan.jobs.cli", "sql", "--shell", "--store", str(store)],
        input=typed, capture_output=True, text=True, cwd=cwd, env=env, timeout=300,
    )  # fmt: skip


@pytest.mark.skipif(shutil.which(DUCKDB_CLI) is None, reason="duckdb-cli not installed (test extra)")
def test_the_shell_answers_a_query_on_the_views_as_hubscan_sql_does(store, tmp_path):
    done = _shell(
        store, f".mode csv\n{COUNT_TENSORS};\nSELECT count(*) AS pairs FROM candidate_ids;\n", tmp_path
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    # the CLI's answer: the same rows `hubscan sql` gives through the Python API
    tensors = list(csv.DictReader(lines[: len(REPOS) + 1]))
    assert tensors == cli_sql(str(store), COUNT_TENSORS) and {r["repo_id"] for r in tensors} == set(REPOS)
    assert all(int(r["n"]) > 0 for r in tensors)
    # number_candidates.sql ran too: the two models are one candidate pair of the default candidates view
    assert lines[len(REPOS) + 1 :] == ["pairs", "1"]
    assert (
        done.stderr == f"duckdb CLI in {store.resolve()} with the store's views (FROM models; .quit leaves)\n"
    )


def test_without_the_duckdb_cli_the_shell_is_one_line_and_exit_1(store, tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    done = _shell(store, "", tmp_path, env={"PATH": str(empty), "PYTHONPATH": ":".join(sys.path)})
    assert done.returncode == 1
    assert done.stderr == "hubscan: the duckdb CLI is not installed: python -m pip install duckdb-cli\n"


def test_the_shell_takes_no_query_and_needs_a_store(tmp_path):
    assert _shell(tmp_path, "", tmp_path).returncode == 1  # no store here: refused, not created
    assert [p.name for p in tmp_path.iterdir()] == []
    done = subprocess.run(
        [sys.executable, "-m", "hubscan.jobs.cli", "sql", "SELECT 1", "--shell", "--store", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 2 and "--shell takes no QUERY" in done.stderr
