"""The `hubscan` command: thin typer commands over jobs/<command>.py:run()."""

from __future__ import annotations

import os
import traceback
from pathlib import Path
from typing import Annotated

import typer

from hubscan.jobs.output import FORMATS, emit
from hubscan.pipeline.config import Settings, settings_from_env
from hubscan.pipeline.errors import HubscanError
from hubscan.pipeline.outputs.values import json_safe
from hubscan.pipeline.summary import EXIT_FATAL, EXIT_USAGE, RunSummary

app = typer.Typer(
    help="hubscan: fingerprint model checkpoints and check where a model really came from.",
    no_args_is_help=True,
    add_completion=False,
)

StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store", help="Store folder or s3://, gs:// prefix (default $HUBSCAN_STORE or ./hubscan-store)."
    ),
]
FormatOpt = Annotated[str, typer.Option("--format", help="Output format: table, csv or json.")]


@app.command()
def fingerprint(
    targets: Annotated[list[str], typer.Argument(help="Hub repo ids (org/name) or local repo folders.")],
    store: StoreOpt = None,
    revision: Annotated[str, typer.Option(help="Branch, tag or commit to pin (Hub repos).")] = "main",
    exact: Annotated[
        bool, typer.Option("--exact", help="Read whole tensors instead of sampled rows.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Fingerprint again even if the revision is stored.")
    ] = False,
) -> None:
    """Fingerprint models into the store (reads only headers and sampled rows)."""
    from hubscan.jobs import fingerprint as job

    settings = settings_from_env(store=store, exact=exact or None)
    _finish(_guard(lambda: job.run(settings, targets, revision=revision, force=force)))


@app.command()
def sweep(
    store: StoreOpt = None,
    source: Annotated[
        str,
        typer.Option(help="hub (HF_ENDPOINT), local:PATH (org/name folders) or cache:PATH (an HF cache)."),
    ] = "hub",
    search: Annotated[str | None, typer.Option(help="Hub listing: substring of the repo id.")] = None,
    author: Annotated[str | None, typer.Option(help="Hub listing: user or organisation.")] = None,
    tag: Annotated[list[str] | None, typer.Option("--filter", help="Hub listing: tag (repeatable).")] = None,
    pipeline_tag: Annotated[str | None, typer.Option(help="Hub listing: e.g. text-generation.")] = None,
    library: Annotated[str | None, typer.Option(help="Hub listing: e.g. transformers, gguf.")] = None,
    sort: Annotated[
        str | None, typer.Option(help="downloads, likes, lastModified or createdAt (descending).")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Stop after this many listed models.")] = None,
    exclude_author: Annotated[
        list[str] | None, typer.Option(help="Skip repos of this org (repeatable).")
    ] = None,
    sweep_id: Annotated[
        str | None,
        typer.Option(help="Resume this sweep from its saved listing cursor (default: a new sweep)."),
    ] = None,
    plan_only: Annotated[bool, typer.Option("--plan-only", help="List and count; fetch no weights.")] = False,
    max_in_flight: Annotated[int | None, typer.Option(help="Models fingerprinted concurrently.")] = None,
    exact: Annotated[
        bool, typer.Option("--exact", help="Read whole tensors instead of sampled rows.")
    ] = False,
    read_code: Annotated[
        bool,
        typer.Option(
            "--read-code",
            help="Also read the head of each repo's small *.py files (one request each, in the budget) and "
            "record copyright/licence header lines naming another organisation.",
        ),
    ] = False,
    max_model_seconds: Annotated[
        float | None, typer.Option(help="Stop and record a model taking longer (default 900).")
    ] = None,
    max_model_mb: Annotated[
        int | None, typer.Option(help="Memory one model task may add, in MB (default 2048; 0 = no cap).")
    ] = None,
) -> None:
    """Sweep a hub (or local repos) on Ray: fingerprint every revision not yet in the store."""
    from hubscan.pipeline.runtime import sweep as job

    filters = job.ListingFilters(
        search=search,
        author=author,
        tags=tuple(tag or ()),
        pipeline_tag=pipeline_tag,
        library=library,
        sort=sort,
        limit=limit,
        exclude_authors=tuple(exclude_author or ()),
    )
    settings = settings_from_env(
        store=store,
        exact=exact or None,
        max_in_flight=max_in_flight,
        read_code=read_code or None,
        max_model_seconds=max_model_seconds,
        max_model_memory_bytes=None if max_model_mb is None else max_model_mb * 1024 * 1024,
    )
    _finish(_guard(lambda: job.run(settings, source, filters, sweep_id=sweep_id, plan_only=plan_only)))


@app.command()
def sql(
    query: Annotated[
        str | None, typer.Argument(help="A queries/ name (e.g. views), a .sql file, or SQL text.")
    ] = None,
    store: StoreOpt = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="Query parameter k=v (repeatable).")
    ] = None,
    fmt: FormatOpt = "table",
    views_path: Annotated[
        bool,
        typer.Option(
            "--views-path",
            help="Print where views.sql is, for `.read` in the duckdb CLI started in the store folder.",
        ),
    ] = False,
    shell: Annotated[
        bool,
        typer.Option(
            "--shell",
            help="Start the duckdb CLI in the store folder with these views loaded (needs duckdb-cli).",
        ),
    ] = False,
) -> None:
    """Run SQL over the store's views (models, tensors, failures, std_profiles), or open them in the duckdb CLI."""
    from hubscan.jobs import sql as job

    if views_path:
        typer.echo(job.views_path())
        return
    if shell:
        if query is not None:
            _usage("--shell takes no QUERY: type it at the duckdb prompt")
        launch = _guard(lambda: job.shell(settings_from_env(store=store)))
        typer.echo(f"duckdb CLI in {launch.cwd} with the store's views (FROM models; .quit leaves)", err=True)
        # exec, not a child: Ctrl-C then cancels a query in the CLI instead of ending hubscan under it
        os.chdir(launch.cwd)
        os.execv(launch.argv[0], list(launch.argv))
    if query is None:
        return _usage("give a QUERY (a queries/ name, a .sql file or SQL text), --shell or --views-path")
    text = query  # a local the lambda below sees as str
    if fmt not in FORMATS:
        _usage(f"--format must be one of {', '.join(FORMATS)}")
    params = dict(_split_param(p) for p in param or [])
    settings = _existing(settings_from_env(store=store))
    table = _guard(lambda: job.run(settings, text, params))
    emit(table, fmt)


@app.command()
def flag(
    store: StoreOpt = None,
    q: Annotated[float, typer.Option("--q", help="False discovery rate the flags control.")] = 0.01,
    known_unrelated: Annotated[
        Path | None, typer.Option(help="File of 'repo_a repo_b' lines known unrelated (background).")
    ] = None,
    fmt: FormatOpt = "table",
    runner: Annotated[
        str,
        typer.Option(
            help="Where the signal SQL runs: ray (a task per batch of a unit of pairs; RAY_ADDRESS or local Ray), "
            "local (this process), auto (Ray on the cluster in RAY_ADDRESS, else this process)."
        ),
    ] = "auto",
    incremental: Annotated[
        bool,
        typer.Option(
            "--incremental",
            help="Score only the edges of models the last flag run did not place (added or new revisions); "
            "keep its other pairs.",
        ),
    ] = False,
) -> None:
    """Score candidate model pairs, calibrate each signal, and write the `pairs` table; prints the flags."""
    from hubscan.jobs import flag as job
    from hubscan.pipeline.flagging.engine import RUNNERS

    if fmt not in FORMATS or not 0 < q < 1:
        _usage(f"--format must be one of {', '.join(FORMATS)} and 0 < --q < 1")
    if runner not in RUNNERS:
        _usage(f"--runner must be one of {', '.join(RUNNERS)}")
    settings = _existing(settings_from_env(store=store))
    result = _guard(
        lambda: job.run(
            settings, q_level=q, known_unrelated=known_unrelated, runner=runner, incremental=incremental
        )
    )
    if fmt == "table":  # people read families; csv and json stay one row per flagged pair
        from hubscan.pipeline.outputs.families import family_text

        typer.echo(_guard(lambda: family_text(settings.store)))
    else:
        emit(result.flagged_table(), fmt, title=f"flagged pairs (q <= {q})")
    typer.echo(
        f"{result.candidates} pairs scored, {result.flagged} flagged ({result.undeclared} undeclared); "
        f"written to pairs/ as {result.flag_id}",
        err=True,
    )


@app.command()
def compare(
    a: Annotated[str, typer.Argument(help="Model A: Hub repo id, local repo folder, or a stored repo id.")],
    b: Annotated[str, typer.Argument(help="Model B, the same way.")],
    store: StoreOpt = None,
    revision: Annotated[str, typer.Option(help="Branch, tag or commit to pin (Hub repos).")] = "main",
    fmt: FormatOpt = "table",
    permutation_test: Annotated[
        bool | None,
        typer.Option(
            "--permutation-test/--no-permutation-test",
            help="Recover a hidden permutation from whole MLP matrices and test it (default: when the "
            "pair looks re-parameterised).",
        ),
    ] = None,
    spectra: Annotated[
        bool | None,
        typer.Option(
            "--spectra/--no-spectra",
            help="Match attention heads by the spectra of W_Q.W_K^T and W_V.W_O (whole Q/K/V/O of three "
            "layers) and test them (default: when the pair looks re-parameterised).",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="With --format html: write the pair's report page here."),
    ] = None,
) -> None:
    """Fingerprint either model if missing and print the evidence table for the pair."""
    import json

    from hubscan.jobs import compare as job

    if fmt not in (*FORMATS, "html") or (fmt == "html") != (output is not None):
        _usage(f"--format must be one of {', '.join(FORMATS)}, or html with -o FILE")
    settings = settings_from_env(store=store)
    result = _guard(
        lambda: job.run(
            settings, a, b, revision=revision, permutation_test=permutation_test, spectra_test=spectra
        )
    )
    if output is not None:  # the report's pair page, alone
        from hubscan.pipeline.outputs.report import write_pair_page

        _guard(lambda: write_pair_page(settings, result.row, output))
        typer.echo(f"pair page written to {output}", err=True)
        return
    if fmt == "json":
        typer.echo(json.dumps(json_safe(result.as_json()), indent=2, default=str, allow_nan=False))
        return
    emit(result.evidence, fmt, title=f"{result.row.a_repo_id} vs {result.row.b_repo_id}")
    if fmt == "table":
        typer.echo(result.summary_lines())


@app.command()
def export(
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write.")],
    store: StoreOpt = None,
    fmt: Annotated[str, typer.Option("--format", help="csv, json or parquet.")] = "csv",
    include_all: Annotated[bool, typer.Option("--all", help="Every scored pair, not only flagged.")] = False,
    undeclared_only: Annotated[
        bool, typer.Option("--undeclared-only", help="Only pairs no model card declares.")
    ] = False,
    min_score: Annotated[float, typer.Option(help="Only pairs with -log10(p) at least this.")] = 0.0,
) -> None:
    """Export suspicious pairs with every signal, its background and provenance columns."""
    from hubscan.jobs import export as job

    if fmt not in job.EXPORT_FORMATS:
        _usage(f"--format must be one of {', '.join(job.EXPORT_FORMATS)}")
    settings = _existing(settings_from_env(store=store))
    n = _guard(lambda: job.run(settings, fmt, output, include_all, undeclared_only, min_score))
    typer.echo(f"{n} pairs written to {output}", err=True)


@app.command()
def report(
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder to write the site into.")],
    store: StoreOpt = None,
) -> None:
    """Write a self-contained HTML report of the last flag run: families, pair pages, figures."""
    from hubscan.jobs import report as job

    settings = _existing(settings_from_env(store=store))
    n = _guard(lambda: job.run(settings, output))
    typer.echo(f"report written to {output / 'index.html'} ({n} pair pages)", err=True)


@app.command()
def compact(store: StoreOpt = None) -> None:
    """Merge committed per-model files into large files per comparability block (sweep also does this)."""
    from hubscan.jobs import compact as job

    settings = settings_from_env(store=store)
    result = _guard(lambda: job.run(settings))
    typer.echo(
        f"{result.models} models compacted into generation {result.generation} "
        f"({result.parts} compacted files, {result.removed_files} loose files removed)",
        err=True,
    )


@app.command()
def demo(
    store: StoreOpt = None,
    workdir: Annotated[
        Path | None, typer.Option(help="Where the demo hub is built (default ~/.cache/hubscan/demo-hub).")
    ] = None,
    with_bad_repos: Annotated[
        bool, typer.Option("--with-bad-repos", help="Also sweep the deliberately broken repos.")
    ] = False,
) -> None:
    """Serve a local demo hub of real checkpoints on 127.0.0.1, sweep it on local Ray, flag it, write the report."""
    from hubscan.jobs import demo as job

    try:
        parts = job.demo_parts()
    except ModuleNotFoundError as exc:  # the demo extra: onnx, to convert the ONNX-only checkpoints
        typer.echo(f"hubscan: demo needs {exc.name!r}: python -m pip install 'hubscan[demo]'", err=True)
        raise typer.Exit(EXIT_FATAL) from None

    settings = settings_from_env(store=store or "hubscan-demo-store")
    _finish(_guard(lambda: job.run(settings, workdir, with_bad_repos, parts)))


@app.command()
def check(
    store: StoreOpt = None,
    repair: Annotated[
        bool,
        typer.Option("--repair", help="Move unreadable files to quarantine/ so the next sweep redoes them."),
    ] = False,
) -> None:
    """List Parquet files in the store that cannot be read (truncated, corrupt); exit 3 if any."""
    from hubscan.jobs import check as job

    summary = _guard(lambda: job.run(_existing(settings_from_env(store=store)), repair=repair))
    raise typer.Exit(summary.exit_code)


def _existing(settings: Settings) -> Settings:
    """The settings, once their store is known to exist: commands that only read never create one."""
    from hubscan.pipeline.storage.parquet import Store

    _guard(lambda: Store(settings.store).open_existing())
    return settings


def _split_param(raw: str) -> tuple[str, str]:
    if "=" not in raw:
        _usage(f"--param {raw!r}: expected name=value")
    key, _, value = raw.partition("=")
    return key.strip().lstrip("$"), value


def _guard(call):  # type: ignore[no-untyped-def]
    """Run a job; a HubscanError is one line on stderr and exit 1 (traceback with HUBSCAN_DEBUG=1)."""
    try:
        return call()
    except HubscanError as exc:
        if os.environ.get("HUBSCAN_DEBUG") == "1":
            traceback.print_exc()
        typer.echo(f"hubscan: {exc}", err=True)
        raise typer.Exit(EXIT_FATAL) from None


def _finish(summary: RunSummary) -> None:
    typer.echo(
        f"{summary.done} fingerprinted, {summary.skipped} skipped, {summary.failed} failed; "
        f"{summary.bytes_read:,} bytes in {summary.requests} requests",
        err=True,
    )
    raise typer.Exit(summary.exit_code)


def _usage(message: str) -> None:
    typer.echo(f"hubscan: {message}", err=True)
    raise typer.Exit(EXIT_USAGE)


def main() -> None:
    """Entry point for `python -m hubscan.jobs.cli`."""
    app()


if __name__ == "__main__":
    main()
