"""The CLI: every command has help text and is documented in README; exit codes follow the contract."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hubscan.jobs.cli import app
from hubscan.pipeline.storage.parquet import Store
from tests.demo_install import demo_install

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
COMMANDS = sorted(c.name or c.callback.__name__ for c in app.registered_commands)


def test_commands_are_registered():
    assert {"fingerprint", "sql", "demo"} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_and_is_in_the_readme(command):
    (callback,) = [c.callback for c in app.registered_commands if (c.name or c.callback.__name__) == command]
    summary = " ".join(callback.__doc__.split())
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "400"})  # no wrapping
    assert result.exit_code == 0
    assert summary in " ".join(result.output.split())
    assert "--store" in result.output
    assert f"hubscan {command}" in README


# Commands that only read the store (flag writes pairs into an existing one): a missing store is an error.
READ_ONLY = {
    "sql": ["sql", "SELECT 1"],
    "export": ["export", "-o", "out.csv"],
    "report": ["report", "-o", "site"],
    "flag": ["flag"],
    "check": ["check"],
}


@pytest.mark.parametrize("command", sorted(READ_ONLY))
def test_a_missing_store_is_one_line_and_exit_1_and_is_not_created(command, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    typo = tmp_path / "hubscan-stroe"
    result = CliRunner().invoke(app, [*READ_ONLY[command], "--store", str(typo)])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == f"hubscan: {typo}: no hubscan store here (no _hubscan.json)\n"
    assert list(tmp_path.iterdir()) == []  # neither the store nor the command's output


@pytest.mark.parametrize("command", sorted(READ_ONLY))
def test_a_folder_that_is_not_a_store_is_refused_and_left_untouched(command, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("not a store")
    result = CliRunner().invoke(app, [*READ_ONLY[command], "--store", str(tmp_path)])
    assert result.exit_code == 1
    assert result.stderr == f"hubscan: {tmp_path}: no hubscan store here (no _hubscan.json)\n"
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def _hubscan(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "hubscan.jobs.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


def test_fingerprint_a_local_repo_then_query_it_as_json(testbed, tmp_path):
    store = tmp_path / "store"
    repo = testbed / "sentence-transformers/all-MiniLM-L6-v2"
    first = _hubscan("fingerprint", str(repo), "--store", str(store))
    assert first.returncode == 0, first.stderr
    again = _hubscan("fingerprint", str(repo), "--store", str(store))
    assert again.returncode == 0 and "already in the store" in again.stderr
    out = _hubscan(
        "sql",
        "SELECT repo_id, count(*) AS n FROM tensors GROUP BY ALL",
        "--store",
        str(store),
        "--format",
        "json",
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [{"repo_id": "sentence-transformers/all-MiniLM-L6-v2", "n": 104}]


def test_some_models_failed_exits_3_with_one_line_each(testbed, tmp_path):
    result = _hubscan("fingerprint", str(testbed / "badhub/malicious-pickle"), "--store", str(tmp_path / "s"))
    assert result.returncode == 3
    fails = [line for line in result.stderr.splitlines() if line.startswith("fail ")]
    assert fails == [
        f"fail badhub/malicious-pickle@{fails[0].split('@')[1][:7]}:pytorch_model.bin: archive/data.pkl: pickle calls os.system; refused, never executed"
    ]


def test_usage_errors_exit_2(tmp_path):
    assert _hubscan("sql", "SELECT 1", "--format", "yaml", "--store", str(tmp_path)).returncode == 2
    assert _hubscan("sql", "SELECT 1", "--param", "novalue", "--store", str(tmp_path)).returncode == 2
    assert _hubscan("no-such-command").returncode == 2


def test_sql_views_path_names_the_views_file_for_the_duckdb_cli():
    result = CliRunner().invoke(app, ["sql", "--views-path"])
    path = Path(result.stdout.strip())
    assert result.exit_code == 0 and path.name == "views.sql"
    assert "CREATE OR REPLACE VIEW models AS" in path.read_text()


def test_sql_without_a_query_is_a_usage_error():
    result = CliRunner().invoke(app, ["sql"])
    assert result.exit_code == 2 and "--views-path" in result.output


def test_a_failing_query_is_one_line_and_exit_1(tmp_path):
    Store(tmp_path / "s").init()
    result = _hubscan("sql", "SELECT * FROM no_such_table", "--store", str(tmp_path / "s"))
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("hubscan: <command line>: Catalog Error")


def test_the_readme_demo_command_installs_every_module_the_demo_imports():
    """The first set-up command must work on a fresh machine: the extras it installs hold the demo's
    third-party imports (onnx came only with the test extra once, and the demo failed to start)."""
    import ast

    names = {d.lower().replace("-", "_") for d in demo_install()[0]}
    # distribution names whose import name differs
    names |= {"yaml"} if "pyyaml" in names else set()
    names |= {"huggingface_hub"}
    root = Path(__file__).resolve().parents[1]
    stdlib = set(sys.stdlib_module_names)
    for path in [
        root / "jobs" / "demo.py",
        *root.joinpath("testbed", "demohub").glob("*.py"),
        *root.joinpath("testbed", "fakehub").glob("*.py"),
        *root.joinpath("testbed", "writers").glob("*.py"),
    ]:
        for node in ast.walk(ast.parse(path.read_text())):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                mods = [node.module]
            for mod in mods:
                top = mod.split(".")[0]
                assert top in stdlib or top in names or top == "hubscan", f"{path.name} imports {top}"
