"""The built wheel carries every shipped SQL file, and an installed (non-editable) copy finds them."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
BUILD_LEFTOVERS = ("build", "*.egg-info", ".git", "__pycache__", ".tmp", "hubscan-*store")
SOURCE_SQL = sorted(p.name for p in (PROJECT / "queries").glob("*.sql"))
# Every package folder of the source, as it is installed under hubscan/
SOURCE_PACKAGES = sorted(
    "/".join(init.parent.relative_to(PROJECT).parts)
    for top in ("pipeline", "jobs", "queries", "testbed")
    for init in (PROJECT / top).rglob("__init__.py")
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # From a clean copy: a left-over build/ or *.egg-info/SOURCES.txt would hide missing package data.
    source = out / "source"
    shutil.copytree(PROJECT, source, ignore=shutil.ignore_patterns(*BUILD_LEFTOVERS))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out),
         str(source)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (built,) = out.glob("hubscan-*.whl")
    return built


def test_the_wheel_holds_every_sql_file(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert SOURCE_SQL and [n for n in SOURCE_SQL if f"hubscan/queries/{n}" not in names] == []


def test_the_wheel_installs_every_package_under_hubscan_and_no_generic_name(wheel):
    # a package folder missing from pyproject's list would be left out of the wheel silently
    names = set(zipfile.ZipFile(wheel).namelist())
    assert SOURCE_PACKAGES and [p for p in SOURCE_PACKAGES if f"hubscan/{p}/__init__.py" not in names] == []
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"hubscan"}


def test_an_installed_copy_finds_its_sql_and_runs_it(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    # Only the installed copy on the path (not the source tree): run from an empty folder.
    script = (
        "import hubscan.pipeline\n"
        "from hubscan.pipeline.storage.duckdb import connect, fetch_rows, shipped_sql\n"
        "from hubscan.pipeline.storage.parquet import Store\n"
        "Store('store').init()\n"
        "print(hubscan.pipeline.__file__)\n"
        "print(shipped_sql('views'))\n"
        "print(len(fetch_rows(connect('store'), 'show_models')))\n"
    )
    run = tmp_path / "run"
    run.mkdir()
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=run, env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    package, views, rows = out.stdout.split()
    assert package.startswith(str(site)) and views.startswith(str(site))
    assert rows == "0"
