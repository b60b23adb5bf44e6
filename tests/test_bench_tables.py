"""docs/benchmarks.md is built from the result files benches write, and refuses a malformed one."""

import subprocess
import sys
from pathlib import Path

from bench.results import RESULTS, MalformedResult, Result, parse, write

ROOT = Path(__file__).resolve().parents[1]
# A bench whose whole output is printed by this file, run as `python -m` from a temporary package.
FAKE_BENCH = """\
import sys
from bench.results import recorded
from pathlib import Path

if __name__ == "__main__":
    with recorded("Tiny bench", folder=Path(sys.argv[1])):
        print("tiny bench, 2 rows")
        print("| model | MB |")
        print("|---|---|")
        print("| a | 1.5 |")
        print("| b | 2.25 |")
        print("model     MB")
        sys.exit(0)
"""


def _tables(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench.tables", *argv], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def _result(name: str, body: str) -> Result:
    return Result(
        name=name,
        title=f"The {name} bench",
        command=f"python -m bench.{name}",
        status="measured",
        date="2026-12-07 16:00 UTC",
        commit="abc1234",
        cores="2",
        load="1.00 / 1.00 / 1.00 at start, 1.00 / 1.00 / 1.00 at end (1/5/15 min)",
        body=body,
    )


def test_a_bench_run_writes_what_it_printed_with_its_provenance(tmp_path):
    folder = tmp_path / "results"
    script = tmp_path / "tiny.py"
    script.write_text(FAKE_BENCH)
    done = subprocess.run(
        [sys.executable, str(script), str(folder), "--quick"],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "| b | 2.25 |" in done.stdout  # still printed
    result = parse(folder / "tiny-quick.md")
    assert result.title == "Tiny bench"
    assert result.command == f"python -m bench.tiny {folder} --quick"
    assert result.status == "measured"
    assert result.cores.isdigit()
    assert "at start" in result.load
    # the table as Markdown, the rest fenced
    assert "| a | 1.5 |\n| b | 2.25 |" in result.body
    assert result.body.startswith("```text\ntiny bench, 2 rows\n```")
    assert result.body.endswith("```text\nmodel     MB\n```")


def test_the_page_is_rebuilt_from_result_files_in_order(tmp_path):
    folder = tmp_path / "results"
    write(_result("zeta", "| a | b |\n|---|---|\n| 1 | 2 |"), folder)
    write(_result("reading", "```text\nread 3.19 MB\n```"), folder)
    out = tmp_path / "benchmarks.md"
    done = _tables("--results", str(folder), "--out", str(out))
    assert done.returncode == 0, done.stderr
    page = out.read_text()
    assert page.index("## The reading bench") < page.index("## The zeta bench")  # ORDER, then by name
    assert "| 1 | 2 |" in page and "read 3.19 MB" in page
    assert "`python -m bench.zeta` — measured 2026-12-07 16:00 UTC on commit `abc1234`; 2 cores" in page
    assert _tables("--results", str(folder), "--out", str(out), "--check").returncode == 0
    write(_result("zeta", "| a | b |\n|---|---|\n| 1 | 3 |"), folder)  # a bench ran again
    stale = _tables("--results", str(folder), "--out", str(out), "--check")
    assert stale.returncode == 1
    assert stale.stderr == f"bench.tables: {out} is out of date: run python -m bench.tables\n"


def test_a_malformed_result_file_is_one_line_and_the_page_is_left_alone(tmp_path):
    folder = tmp_path / "results"
    write(_result("reading", "| a | b |\n|---|---|\n| 1 | 2 |"), folder)
    out = tmp_path / "benchmarks.md"
    assert _tables("--results", str(folder), "--out", str(out)).returncode == 0
    before = out.read_text()
    ragged = folder / "sweep.md"
    ragged.write_text(_result("sweep", "x").text().replace("x", "| a | b |\n|---|---|\n| 1 | 2 | 3 |"))
    done = _tables("--results", str(folder), "--out", str(out))
    assert done.returncode == 1
    assert done.stderr == f"bench.tables: {ragged}: body line 3 has 3 cells, its table 2\n"
    assert out.read_text() == before
    ragged.write_text(_result("sweep", "x").text().replace("commit: abc1234\n", ""))
    assert _tables("--results", str(folder), "--out", str(out)).stderr == (
        f"bench.tables: {ragged}: front matter lacks commit\n"
    )


def test_two_results_of_one_title_are_refused(tmp_path):
    folder = tmp_path / "results"
    write(_result("reading", "x"), folder)
    write(Result(**{**_result("sweep", "y").__dict__, "title": "The reading bench"}), folder)
    done = _tables("--results", str(folder), "--out", str(tmp_path / "page.md"))
    assert done.returncode == 1
    assert done.stderr == f"bench.tables: {folder}/sweep.md: title 'The reading bench' is also reading.md's\n"


def test_write_refuses_a_result_it_could_not_read_back(tmp_path):
    try:
        write(_result("open-fence", "```text\nnever closed"), tmp_path)
    except MalformedResult as e:
        assert str(e).endswith("a ``` fence is never closed")
    else:
        raise AssertionError("a result with an open fence was written")
    assert not (tmp_path / "open-fence.md").exists()


def test_the_committed_page_matches_the_committed_results():
    assert any(RESULTS.glob("*.md"))
    done = _tables("--check")
    assert done.returncode == 0, done.stderr
