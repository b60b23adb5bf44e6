"""Result files: what a bench printed, with the command, date, commit and machine load it ran under.

A bench wraps its run in ``recorded(title)``: everything it prints still goes to the terminal, and
is also written to ``bench/results/<module>[-<option>...].md`` once the run ends without an error.
``python -m bench.tables`` builds ``docs/benchmarks.md`` from those files, so no figure in the
docs is typed by hand. A file is Markdown: a front matter of ``key: value`` lines between
``---`` lines, then the printed output, its Markdown tables as they are and any other text fenced.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = RESULTS.parents[1]
# "measured": written by the bench run itself; "carried": figures recorded before result files
# existed, copied from the README of that commit and labelled so rather than passed off as a re-run.
STATUSES = ("measured", "carried")
FIELDS = ("title", "command", "status", "date", "commit", "cores", "load")
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")


class MalformedResult(ValueError):
    """A result file the docs cannot be built from; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Result:
    """One bench run as recorded: its front matter and its Markdown body."""

    name: str
    title: str
    command: str
    status: str
    date: str
    commit: str
    cores: str
    load: str
    body: str

    def text(self) -> str:
        """The file's contents."""
        head = "\n".join(f"{key}: {getattr(self, key)}" for key in FIELDS)
        return f"---\n{head}\n---\n\n{self.body.strip()}\n"


def parse(path: Path, name: str | None = None) -> Result:
    """Read one result file (named by its stem unless ``name`` is given). Raises MalformedResult."""
    name = name or path.stem
    if not _NAME.fullmatch(name):
        raise MalformedResult(f"{path}: name must be lower-case letters, digits, '-' or '_'")
    lines = path.read_text().splitlines()
    if not lines or lines[0] != "---" or "---" not in lines[1:]:
        raise MalformedResult(f"{path}: no front matter (a '---' line, key: value lines, a '---' line)")
    end = lines.index("---", 1)
    meta: dict[str, str] = {}
    for line in lines[1:end]:
        key, sep, value = line.partition(": ")
        if not sep or key not in FIELDS or not value.strip():
            raise MalformedResult(f"{path}: front matter line {line!r} is not one of {', '.join(FIELDS)}")
        meta[key] = value.strip()
    missing = [key for key in FIELDS if key not in meta]
    if missing:
        raise MalformedResult(f"{path}: front matter lacks {', '.join(missing)}")
    if meta["status"] not in STATUSES:
        raise MalformedResult(f"{path}: status {meta['status']!r} is not one of {', '.join(STATUSES)}")
    body = "\n".join(lines[end + 1 :]).strip()
    if not body:
        raise MalformedResult(f"{path}: no output after the front matter")
    _check_tables(path, body)
    return Result(name=name, body=body, **meta)


def _check_tables(path: Path, body: str) -> None:
    """Every Markdown table outside a fence has as many cells in each row as in its header."""
    fenced = False
    width = 0
    for number, line in enumerate(body.splitlines(), 1):
        if line.startswith("```"):
            fenced = not fenced
        if fenced or not line.startswith("|"):
            width = 0
            continue
        cells = len(_cells(line))
        if width == 0:
            width = cells
        elif cells != width:
            raise MalformedResult(f"{path}: body line {number} has {cells} cells, its table {width}")
    if fenced:
        raise MalformedResult(f"{path}: a ``` fence is never closed")


def _cells(row: str) -> list[str]:
    """A table row's cells; an escaped pipe (\\|) stays inside its cell."""
    return re.split(r"(?<!\\)\|", row.strip().strip("|"))


def as_markdown(printed: str) -> str:
    """Printed output as Markdown: runs of table rows kept, every other run of lines fenced as text."""
    blocks: list[tuple[bool, list[str]]] = []
    for line in printed.rstrip().splitlines():
        is_table = line.startswith("|")
        if blocks and blocks[-1][0] == is_table:
            blocks[-1][1].append(line)
        else:
            blocks.append((is_table, [line]))
    parts = []
    for is_table, lines in blocks:
        text = "\n".join(lines).strip("\n")
        if not text.strip():
            continue
        parts.append(text if is_table else f"```text\n{text}\n```")
    return "\n\n".join(parts)


def machine() -> tuple[str, str]:
    """(cores, 1/5/15-minute load average): the machine is shared, so every figure says how busy it was."""
    one, five, fifteen = os.getloadavg()
    return str(os.cpu_count()), f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def commit() -> str:
    """The short sha of the checkout the bench ran from, '+changes' when its code differs from it."""
    git = ["git", "-C", str(ROOT)]
    sha = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout
    # docs do not change figures: only code makes a result "+changes"
    code = ["pipeline", "jobs", "queries", "testbed", "bench", ":!bench/results"]
    dirty = subprocess.run([*git, "diff", "--quiet", "HEAD", "--", *code]).returncode
    return (sha.strip() or "unknown") + ("+changes" if dirty else "")


def write(result: Result, folder: Path = RESULTS) -> Path:
    """Write a result file (to a temporary name, then renamed), after checking it parses."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{result.name}.md"
    tmp = folder / f".{result.name}.md.tmp"
    tmp.write_text(result.text())
    try:
        parse(tmp, result.name)  # a bench that prints a ragged table fails here, not in the docs build
    except MalformedResult:
        tmp.unlink()
        raise
    return tmp.replace(path)


class _Tee(io.TextIOBase):
    """Writes to the terminal and keeps a copy; says it is no tty, so nothing prints colour codes into it."""

    def __init__(self, out: TextIO) -> None:
        self.out, self.copy = out, io.StringIO()

    def write(self, text: str) -> int:
        self.copy.write(text)
        return self.out.write(text)

    def flush(self) -> None:
        self.out.flush()

    def fileno(self) -> int:
        """The terminal's descriptor (what is written to it directly is not recorded)."""
        return self.out.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self.out.encoding


def run_name(argv: list[str]) -> str:
    """``bench.reading --quick`` -> ``reading-quick``: the module and its options, not their values."""
    module = Path(argv[0]).stem
    options = [arg.lstrip("-").split("=")[0] for arg in argv[1:] if arg.startswith("--")]
    return "-".join([module, *options]).lower().replace(".", "_")


@contextlib.contextmanager
def recorded(title: str, folder: Path = RESULTS) -> Iterator[None]:
    """Print as usual, and on success write what was printed to ``<folder>/<run_name>.md``.

    A ``SystemExit`` with code 0 (``sys.exit(main())`` inside the block) still records; any other
    exit or exception records nothing, so a failed run never replaces a good result.
    """
    cores, load_before = machine()
    started, code = datetime.now(UTC), commit()  # the code that runs, not what is checked out at the end
    tee = _Tee(sys.stdout)
    exit_after: SystemExit | None = None
    with contextlib.redirect_stdout(tee):
        try:
            yield
        except SystemExit as e:
            if e.code not in (0, None):
                raise
            exit_after = e
    load_after = machine()[1]
    command = shlex.join(["python", "-m", f"bench.{Path(sys.argv[0]).stem}", *sys.argv[1:]])
    result = Result(
        name=run_name(sys.argv),
        title=title,
        command=command,
        status="measured",
        date=started.strftime("%Y-%m-%d %H:%M UTC"),
        commit=code,
        cores=cores,
        load=f"{load_before} at start, {load_after} at end (1/5/15 min)",
        body=as_markdown(tee.copy.getvalue()),
    )
    print(f"bench: wrote {write(result, folder)}", file=sys.stderr)
    if exit_after is not None:
        raise exit_after
