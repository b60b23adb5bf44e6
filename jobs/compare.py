"""`hubscan compare A B`: fingerprint either model if missing, then show the evidence for the pair.

The pair is scored exactly as `hubscan flag` scores it: together with the other candidate pairs
of its comparability block, so its backgrounds are the block's and its q-value is the block's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

import pyarrow as pa
from rich.console import Console

from hubscan.pipeline.chain.commit import commit
from hubscan.pipeline.chain.known_files import StoreKnownFiles
from hubscan.pipeline.chain.model_task import ModelOutcome, fingerprint_model
from hubscan.pipeline.comparison.layout import match_lines
from hubscan.pipeline.comparison.licences import finding_text
from hubscan.pipeline.comparison.permutation_test import PermutationTest
from hubscan.pipeline.comparison.records import SIGNALS_FIELD, ScoredPair
from hubscan.pipeline.comparison.scoring import DEFAULT_Q
from hubscan.pipeline.comparison.signals import SIGNAL_TABLE
from hubscan.pipeline.comparison.spectra import SpectraTest
from hubscan.pipeline.config import Settings
from hubscan.pipeline.errors import FormatError, NotComparable, ResourceLimit
from hubscan.pipeline.flagging import engine, layer_maps, licence_edges, permutation, spectra
from hubscan.pipeline.flagging.engine import Focus, Scope
from hubscan.pipeline.http import HubHttp
from hubscan.pipeline.keys import ModelKey
from hubscan.pipeline.outputs.values import format_p
from hubscan.pipeline.sources.targets import resolve_target
from hubscan.pipeline.storage.duckdb import load_sql, model_layout, model_row, run_sql
from hubscan.pipeline.storage.parquet import Store
from hubscan.pipeline.summary import RunSummary

_EVIDENCE = pa.schema(
    [("signal", pa.string()), ("value", pa.float64()), ("n", pa.int64()), ("background_lo", pa.float64()),
     ("background_hi", pa.float64()), ("p", pa.float64()), ("decides", pa.bool_()), ("what", pa.string())]
)  # fmt: skip


@dataclass
class Comparison:
    """The scored pair and its evidence table (one row per signal)."""

    row: ScoredPair
    evidence: pa.Table
    fingerprinted: RunSummary
    permutation: PermutationTest | None = None  # run for re-parameterised-looking or requested pairs
    maps: pa.Table | None = None  # show_layer_map.sql over the maps written for this pair
    spectra: SpectraTest | None = None  # attention spectra, run with the permutation test or on request
    spectra_error: str | None = None  # why the spectra could not be had when they ran unasked
    permutation_error: str | None = None  # why the permutation test could not be had when it ran unasked
    code_notices: dict[str, list[str]] = field(default_factory=dict)  # repo -> header lines (--read-code)

    def summary_lines(self) -> str:
        """The verdict, the combined evidence and the layer map, as printed under the table."""
        row = self.row
        layers = ", ".join(f"{m['a_layer']}->{m['b_layer']} ({m['r']:.3f})" for m in row.layer_map or [])
        declared = f"declared: {row.declared_how}" if row.declared else "undeclared"
        matched = (
            "\n".join(["matrices matched (architecture unknown):", *match_lines(row)])
            if row.layout
            else f"best layer matches: {layers or 'none (no same-shape matrices)'}"
        )
        lines = (
            f"verdict: {row.verdict} ({row.reason}); score {row.score:.1f}, p {format_p(row.p)}, "
            f"q {format_p(row.q)}; {declared}\n{matched}"
        ) + self.map_lines()
        lines += "\n" + finding_text(row) + self.notice_lines()
        if row.obfuscation:
            lines += "\nOBFUSCATION: the weights were re-parameterised to hide the relation (see the reason)"
        if self.permutation is not None:
            lines += "\n" + self.permutation.summary()
        elif self.permutation_error:
            lines += f"\npermutation test not run: {self.permutation_error}"
        if self.spectra is not None:
            lines += "\n" + self.spectra.summary()
        elif self.spectra_error:
            lines += f"\nattention spectra not computed: {self.spectra_error}"
        return lines

    def notice_lines(self) -> str:
        """Model-code header lines naming another organisation, per model whose code was read."""
        out = []
        for repo, notices in self.code_notices.items():
            out.append(f"\ncode notices of {repo}: {len(notices) or 'none'}")
            out += [f"\n  {n}" for n in notices]
        return "".join(out)

    def map_lines(self) -> str:
        """The layer / expert map, one line per layer or expert of the derived side."""
        if self.maps is None or self.maps.num_rows == 0:
            return ""
        lines = [f"\nstructure: {self.row.structure or 'none'}"]
        for m in self.maps.to_pylist():
            r = "" if m["r"] is None else f"r {m['r']:.4f}"
            col = "" if m["col_norms_r"] is None else f", col-norms r {m['col_norms_r']:.3f}"
            p = "" if m["log10_p"] is None else f", log10 p {m['log10_p']:.0f}"
            lines.append(f"  {m['map']}  ({r}{col}{p}; {m['evidence']})")
        return "\n".join(lines)

    def as_json(self) -> dict[str, Any]:
        """Everything about the pair, for --format json: every field of its record (the signals as its evidence)."""
        perm = None
        if self.permutation is not None:
            perm = {k: v for k, v in vars(self.permutation).items() if k != "hidden_map"}
            perm["p"] = self.permutation.p
        spec = None
        if self.spectra is not None:
            spec = {**vars(self.spectra), "p": self.spectra.p, "r": math.tanh(self.spectra.statistic)}
        return {
            **{f.name: getattr(self.row, f.name) for f in fields(ScoredPair) if f.name != SIGNALS_FIELD},
            "evidence": self.evidence.to_pylist(),
            "permutation_test": perm,
            "spectra": spec,
            "spectra_error": self.spectra_error,
            "permutation_error": self.permutation_error,
            "maps": self.maps.to_pylist() if self.maps is not None else [],
            "code_notices": self.code_notices,
        }


def run(
    settings: Settings,
    a: str,
    b: str,
    revision: str = "main",
    q_level: float = DEFAULT_Q,
    permutation_test: bool | None = None,
    spectra_test: bool | None = None,
) -> Comparison:
    """Score one pair of models (Hub ids, local folders, or repo ids already in the store).

    ``permutation_test``: True always runs the permutation-recovery test, False never, None when the
    pair looks re-parameterised (``obfuscation``). ``spectra_test`` likewise for the attention spectra;
    when they run unasked and cannot be had (fused QKV, unknown heads) the reason is shown instead.

    Raises:
        SourceError: a target is neither stored, a folder, nor a resolvable Hub repo.
        HubscanError: a target could not be fingerprinted (the error that stopped it).
        NotComparable: the same model twice, models of different hidden sizes or tensor layouts, or a repo id
            whose fingerprint failed before (the stored failure: what and when; nothing is fetched).
    """
    store = Store(settings.store).init().writable()
    summary = RunSummary()
    stored = {t: _stored(store, t) for t in (a, b)}
    for target, key in stored.items():  # before either is fetched: the other's fingerprint would be wasted
        failed = None if key is not None else stored_failure(store, target)
        if failed is not None:
            raise failed
    known = StoreKnownFiles(store)  # loaded once for both targets, and only if one needs fingerprinting
    ka, kb = (stored[t] or _fingerprinted(store, settings, t, revision, summary, known) for t in (a, b))
    if ka == kb:
        raise NotComparable(ka[0], ka[1], None, "compare needs two different models")
    con = engine.flag_connection(store)
    layout = _layout(con, ka, kb)
    hidden = None if layout else _hidden(con, ka, kb)
    pair = (*ka, *kb) if ka < kb else (*kb, *ka)
    stored_maps = tuple(layer_maps.known_partial_maps(con, [ka, kb]))
    focus = Focus((pair,), hidden, layout, map_pairs=True, known_maps=stored_maps)
    # the requested pair is always mapped (flag maps only flagged pairs whose structure differs)
    rows, pair_maps = engine.all_units(engine.score_units(con, store, Scope(q_level, focus=focus)))
    row = next(r for r in rows if r.key == pair)
    perm, perm_error = _permutation(con, settings, ka, kb, row, permutation_test)
    spec, spec_error = _spectra(con, settings, ka, kb, row, spectra_test)
    store.write(layer_maps.compare_file(pair), pair_maps)
    # the layer_maps view re-reads its files per query, so it sees the file just written
    maps = run_sql(con, load_sql("show_layer_map"), {"a_repo_id": pair[0], "b_repo_id": pair[2]})
    return Comparison(row=row, evidence=evidence_table(row), fingerprinted=summary, permutation=perm,
                      maps=maps.to_arrow_table() if maps is not None else None, spectra=spec,
                      spectra_error=spec_error, permutation_error=perm_error, code_notices=licence_edges.code_notices(store, [ka, kb]))  # fmt: skip


def _permutation(
    con: Any, settings: Settings, ka: ModelKey, kb: ModelKey, row: ScoredPair, asked: bool | None
) -> tuple[PermutationTest | None, str | None]:
    """The permutation test when asked, or unasked for a re-parameterised-looking pair.

    Unasked, a test the pair's matrices cannot have is a line in the output, not the end of the
    compare: the verdict is already scored without it.
    """
    if asked is False or (asked is None and not row.obfuscation):
        return None, None
    try:
        return permutation.run(con, settings, ka, kb), None
    except (NotComparable, ResourceLimit, FormatError) as exc:
        if asked:
            raise
        return None, exc.reason


def _spectra(
    con: Any, settings: Settings, ka: ModelKey, kb: ModelKey, row: ScoredPair, asked: bool | None
) -> tuple[SpectraTest | None, str | None]:
    """The attention-spectra test when asked, or unasked for a re-parameterised-looking pair."""
    if asked is False or (asked is None and not row.obfuscation):
        return None, None
    try:
        return spectra.run(con, settings, ka, kb), None
    except (NotComparable, ResourceLimit, FormatError) as exc:
        if asked:
            raise
        return None, exc.reason


def evidence_table(row: ScoredPair) -> pa.Table:
    """One line per signal: value, what it counts, the block's background range, its p-value."""
    out = []
    for s, v in zip(SIGNAL_TABLE, row.by_signal, strict=True):
        out.append({"signal": s.name, "value": v.value, "n": v.n, "background_lo": v.bg_lo, "background_hi": v.bg_hi,
                    "p": v.p, "decides": s.decisive, "what": f"{s.what} (n = {s.n_counts})"})  # fmt: skip
    return pa.Table.from_pylist(out, _EVIDENCE)


def _fingerprinted(
    store: Store, settings: Settings, target: str, revision: str, summary: RunSummary, known: StoreKnownFiles
) -> ModelKey:
    """The (repo_id, revision) of a target not stored under its repo id, fingerprinted first unless stored."""
    http = HubHttp(settings)
    ref = resolve_target(target, http, revision)
    if not store.has_model(ref.repo_id, ref.revision):
        _commit(store, fingerprint_model(ref, settings, http, known=known), summary, known)
    return ref.repo_id, ref.revision


def _commit(store: Store, outcome: ModelOutcome, summary: RunSummary, known: StoreKnownFiles) -> None:
    """Write a fingerprinted target to the store (its files become known to the other target).

    Raises:
        HubscanError: the error that stopped the fingerprint (also recorded in failures).
    """
    if not commit(store, outcome, summary, Console(stderr=True), known):
        summary.failed += 1
        raise outcome.errors[-1]


def _stored(store: Store, target: str) -> ModelKey | None:
    """The newest stored revision of a repo id (None when absent or the target is a folder path)."""
    table = store.dataset("models").to_table(columns=["repo_id", "revision", "fingerprinted_at"])
    rows = [r for r in table.to_pylist() if r["repo_id"] == target]
    if not rows:
        return None
    newest = max(rows, key=lambda r: (r["fingerprinted_at"] is not None, r["fingerprinted_at"] or 0))
    return newest["repo_id"], newest["revision"]


def stored_failure(store: Store, target: str) -> NotComparable | None:
    """Why a repo id is not in the store, when a sweep or fingerprint recorded its failure (None otherwise).

    Compare reports the stored failure rather than fetching the model again: the same bytes would
    fail the same way, and a repo the sweep could not read may be one the Hub no longer serves.
    """
    table = store.dataset("failures").to_table(
        columns=["repo_id", "revision", "file", "category", "message", "failed_at"]
    )
    rows = [r for r in table.to_pylist() if r["repo_id"] == target]
    if not rows:
        return None
    last = max(rows, key=lambda r: (r["failed_at"] is not None, r["failed_at"] or 0))
    revision, file = last["revision"] or None, last["file"] or None
    # the stored message is the error's own line, which already names the model: keep only its reason
    where = str(NotComparable(target, revision, file, ""))
    reason = last["message"].removeprefix(where)
    when = (
        "at an unrecorded time" if last["failed_at"] is None else f"on {last['failed_at']:%Y-%m-%d %H:%M} UTC"
    )
    return NotComparable(
        target, revision, file, f"not in the store: fingerprinting failed {when} ({last['category']}: {reason}); "
        f"`hubscan fingerprint {target}` tries again"
    )  # fmt: skip


def _layout(con: Any, ka: ModelKey, kb: ModelKey) -> str | None:
    """The shared tensor layout when both models are of unknown architecture, else None.

    Raises:
        NotComparable: both are of unknown architecture but their matrices' shapes differ.
    """
    layouts = {key: model_layout(con, key) for key in (ka, kb)}
    if layouts[ka] is None or layouts[kb] is None:
        return None
    if layouts[ka] != layouts[kb]:
        count = [len(str(layouts[k]).split(",")) for k in (ka, kb)]
        raise NotComparable(ka[0], ka[1], None, f"not comparable with {kb[0]}: architecture unknown and tensor "
                         f"layouts differ ({count[0]} vs {count[1]} matrices, other shapes)")  # fmt: skip
    return str(layouts[ka])


def _hidden(con: Any, ka: ModelKey, kb: ModelKey) -> int:
    """The shared hidden size of two stored models.

    Raises:
        NotComparable: a model is not stored, or their hidden sizes differ or are unknown.
    """
    sizes = {}
    for key in (ka, kb):
        row = model_row(con, key)
        if row is None:
            raise NotComparable(key[0], key[1], None, "not in the store")
        sizes[key] = row["hidden"]
    if sizes[ka] != sizes[kb] or sizes[ka] is None:
        raise NotComparable(
            ka[0], ka[1], None, f"not comparable with {kb[0]}: hidden size {sizes[ka]} vs {sizes[kb]}"
        )
    return int(sizes[ka])
