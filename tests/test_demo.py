"""`hubscan demo`: a real sweep of the demo hub on Ray, then the flagged pairs printed (issue 4),
and every command of its "Try next" list working once the demo has exited (issue 13)."""

import csv
import io
import re
import shlex
import subprocess
from contextlib import redirect_stderr, redirect_stdout
from importlib import metadata
from pathlib import Path

import pytest

from hubscan.jobs import demo
from hubscan.pipeline.config import Settings
from tests.browser import looks_rendered
from tests.demo_install import demo_install

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
# What the test types into a suggested interactive shell (`hubscan sql --shell`), through a pipe.
SHELL_INPUT = "SELECT repo_id, format FROM models ORDER BY repo_id;\n"
# A suggested command gets this long: compare re-reads whole MLP matrices and scores the pair's block.
COMMAND_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def demo_run(ray_session, testbed, tmp_path_factory):
    """One real demo run: (summary, stdout, stderr); its demo hub server has stopped when this returns."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        summary = demo.run(Settings(store=tmp_path_factory.mktemp("demo") / "store"), workdir=testbed)
    return summary, out.getvalue(), err.getvalue()


def _line(lines: list[str], repo: str) -> str:
    found = [line for line in lines if f"─ {repo}  " in line]
    assert len(found) == 1, f"{repo}: {found}"
    return found[0]


def test_the_demo_sweeps_then_prints_the_families_of_flagged_models(demo_run):
    summary, out, err = demo_run
    assert summary.failed == 0, summary.messages
    lines = out.splitlines()
    # a tree per family, MiniLM's first, not one line per pair
    assert lines[0].startswith("family 1: ") and f"root {MINILM}" in lines[0] and lines[1].startswith(MINILM)
    assert sum(line.startswith("family ") for line in lines) >= 2
    # the byte-identical re-upload: an exact copy no model card declares, right under MiniLM
    reupload = _line(lines, "demohub/minilm-reupload")
    assert reupload.startswith(("├─ ", "└─ ")) and "exact copy" in reupload and "[UNDECLARED]" in reupload
    bf16 = _line(lines, "demohub/all-MiniLM-L6-v2-bf16")
    assert "cast/quantised copy" in bf16 and "UNDECLARED" not in bf16
    assert "same lineage" in _line(lines, "sentence-transformers/paraphrase-MiniLM-L3-v2")
    assert "flagged (" in err and "hubscan compare" in err and "hubscan export" in err
    assert "hubscan sql" in err


def test_the_demo_writes_the_report_and_prints_the_path_it_wrote(demo_run, tmp_path):
    _, out, err = demo_run
    said = [line for line in err.splitlines() if "opens from disk, in any browser: " in line]
    assert len(said) == 1, err
    index = Path(said[0].rsplit(": ", 1)[1])
    assert index.is_absolute() and index.name == "index.html" and index.parent.name == "hubscan-report"
    # beside the demo's store, written by this run (the stated number of pair pages are there)
    assert (index.parent.parent / "store").is_dir()
    pages = int(said[0].split("(", 1)[1].split(" pair pages")[0])
    assert pages > 0 and len(list((index.parent / "pairs").glob("*.html"))) == pages
    text = looks_rendered(tmp_path, index).text()
    # the families the demo printed are the ones the report draws
    printed = [re.match(r"family (\d+): .*?, root (\S+)", line) for line in out.splitlines()]
    assert [m for m in printed if m]
    for m in filter(None, printed):
        assert f"Family {m[1]}: root {m[2]}" in text, m[0]


def _try_next(err: str) -> list[str]:
    """The suggested commands, exactly as the demo printed them."""
    tail = err.split("Try next:\n", 1)[1]
    return [line.strip() for line in tail.splitlines() if line.startswith("  ") and line.strip()]


def _table_rows(stdout: str) -> int:
    """Data rows of a rich table (lines between the header rule and the bottom border)."""
    lines = stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith(("┡", "├")))
    return sum(1 for line in lines[header + 1 :] if line.startswith("│"))


def _meaningful(command: str, stdout: str, cwd: Path) -> None:
    """What each kind of suggestion must show; a new kind of suggestion needs its check here."""
    words = shlex.split(command)
    if words[:2] == ["hubscan", "compare"]:
        a, b = words[2:4]
        assert f"{a} vs {b}" in stdout or f"{b} vs {a}" in stdout
        # the permutation test re-read whole MLP matrices, from the demo hub's folder
        assert "verdict:" in stdout and "permutation test: held-out r" in stdout
    elif words[:2] == ["hubscan", "export"]:
        with (cwd / words[words.index("-o") + 1]).open() as fh:
            rows = list(csv.DictReader(fh))
        assert rows and all(r["declared"].lower() == "false" for r in rows)
    elif words[:2] == ["hubscan", "report"]:
        index = (cwd / words[words.index("-o") + 1] / "index.html").read_text()
        assert MINILM in index and "family" in index.lower()
    elif words[:3] == ["hubscan", "sql", "--shell"]:
        # the duckdb CLI answered the typed query on the store's views
        assert MINILM in stdout and "safetensors" in stdout, stdout
    elif words[:2] == ["hubscan", "sql"]:
        assert _table_rows(stdout) >= 1, stdout
    else:
        pytest.fail(f"no check for the suggested command {command!r}: add one to _meaningful")


def _installed_programs() -> set[str]:
    """Console scripts of hubscan and of every distribution the README's demo install brings."""
    dists, scripts = demo_install()
    return set(scripts) | {
        ep.name
        for d in dists
        for ep in metadata.distribution(d).entry_points
        if ep.group == "console_scripts"
    }


def test_every_try_next_command_works_after_the_demo_has_exited(demo_run, tmp_path):
    _, _, err = demo_run
    commands = _try_next(err)
    assert len(commands) >= 5, err
    # the plain-duckdb suggestion once needed a CLI only the test extra installed
    programs = {shlex.split(step)[0] for c in commands for step in c.split("&&")} - {"cd"}
    assert programs <= _installed_programs(), programs
    for command in commands:
        # from another folder than the demo's, with the demo hub's server gone
        typed = SHELL_INPUT if "--shell" in shlex.split(command) else ""
        done = subprocess.run(
            command,
            shell=True,
            cwd=tmp_path,
            input=typed,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
        )
        assert done.returncode == 0, f"{command}\n{done.stderr}"
        _meaningful(command, done.stdout, tmp_path)
