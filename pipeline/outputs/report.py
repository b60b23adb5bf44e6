"""`hubscan report --store S -o DIR`: a self-contained static site of the last flag run.

DIR/index.html (provenance, families as lineage graphs, undeclared derivatives ranked by evidence)
and DIR/pairs/<pair>.html (one per flagged pair: verdict, evidence table, figures, provenance). A family
of more than families.TREE_MAX members is drawn as its summary and a table of its lineage edges (the
tree's), with a page per edge rather than per flagged pair: a family of thousands stays a page of edges.
Nothing is fetched when the pages are viewed: styles are inline, figures inline SVG, no scripts.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any, Self

import duckdb
import numpy as np

from hubscan.pipeline import __version__
from hubscan.pipeline.comparison.records import ScoredPair, pair_from_row
from hubscan.pipeline.comparison.signals import SIGNAL_TABLE
from hubscan.pipeline.config import Settings
from hubscan.pipeline.errors import StoreError
from hubscan.pipeline.outputs import report_svg as svg
from hubscan.pipeline.outputs.families import TREE_MAX, Family, load_families
from hubscan.pipeline.outputs.values import format_p
from hubscan.pipeline.storage.duckdb import connect, failure_count, q_profile, scored_pairs, stored_models
from hubscan.pipeline.storage.parquet import Store

# One stylesheet, inline in every page: the report must open from disk with no network.
STYLE = (
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}"
    "th{background:#f2f2f2}.undeclared{color:#b3261e;font-weight:bold}.muted{color:#666}"
    "svg{display:block;margin:1em 0;max-width:100%;height:auto}"
)
# Quantiles of the unrelated pairs' per-layer values drawn as the band behind a pair's curve.
BAND_QUANTILES = (0.05, 0.95)
# Fewer unrelated pairs than this at a layer: no band is drawn there (a range of two says nothing).
MIN_BAND_PAIRS = 3


@dataclass(frozen=True)
class StoredModel:
    """What a page says of one stored model: where it came from and what reading it cost."""

    format: str | None = None
    bytes_read: int = 0
    checkpoint_bytes: int = 0
    requests: int = 0
    files: tuple[str, ...] = ()  # its weight files (a local folder's have no recorded hash)
    license: str | None = None
    source: str | None = None
    sweep_id: str | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Self:
        """From a `models` row (a store written before a column existed reads it as absent)."""
        return cls(row.get("format"), row.get("bytes_read") or 0, row.get("checkpoint_bytes") or 0,
                   row.get("requests") or 0, tuple(row.get("files") or ()), row.get("license"), row.get("source"),
                   row.get("sweep_id"))  # fmt: skip


@dataclass(frozen=True)
class StoredFile:
    """A weight file of a stored model, by content hash."""

    file: str
    sha256: str
    size: int | None


@dataclass
class StoreView:
    """What the pages read from the store, loaded once."""

    store: str  # the location as the pages show it: a folder, or s3://bucket/prefix
    pairs: list[ScoredPair]
    models: dict[str, StoredModel]
    files: dict[str, list[StoredFile]]
    failures: int
    sweeps: list[str]
    families: list[Family]
    con: duckdb.DuckDBPyConnection
    _profiles: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    _bands: dict[int | None, list[tuple[float, float, float]]] = field(default_factory=dict)

    def q_profile(self, repo_id: str) -> list[tuple[float, float]]:
        """(layer, std of Q) of one model, read once per report."""
        if repo_id not in self._profiles:
            self._profiles[repo_id] = q_profile(self.con, repo_id)
        return self._profiles[repo_id]

    def layer_band(self, hidden: int | None) -> list[tuple[float, float, float]]:
        """Per layer index, the 5-95 % range of best-match r over the block's unflagged pairs."""
        if hidden not in self._bands:
            per_layer: dict[int, list[float]] = {}
            for other in self.pairs:
                if other.flagged or other.hidden != hidden:
                    continue
                for m in other.layer_map or []:
                    if m["r"] is not None:
                        per_layer.setdefault(m["a_layer"], []).append(m["r"])
            self._bands[hidden] = []
            for x, v in sorted(per_layer.items()):
                if len(v) >= MIN_BAND_PAIRS:
                    lo, hi = np.quantile(v, BAND_QUANTILES)
                    self._bands[hidden].append((float(x), float(lo), float(hi)))
        return self._bands[hidden]


def write_report(store_root: Path | str, out_dir: Path) -> int:
    """Write the site of the store's last flag run into ``out_dir``; returns how many pair pages were written.

    Raises:
        StoreError: the store has no scored pairs (run `hubscan flag` first).
    """
    view = load_view(store_root)
    flagged = paged_pairs(view)
    (out_dir / "pairs").mkdir(parents=True, exist_ok=True)
    for pair in flagged:
        (out_dir / "pairs" / pair_file(pair)).write_text(pair_page(view, pair, index_href="../index.html"))
    (out_dir / "index.html").write_text(index_page(view, flagged))
    return len(flagged)


def paged_pairs(view: StoreView) -> list[ScoredPair]:
    """The flagged pairs that get a page: all of a family of at most TREE_MAX members, the tree edges of a
    larger one (its other pairs stay one `hubscan compare A B` away)."""
    large = [f for f in view.families if len(f.members) > TREE_MAX]
    in_large = {m.repo_id for f in large for m in f.members}
    edges = {frozenset((link.parent, link.child)) for f in large for link in f.links}
    return [
        p for p in view.pairs
        if p.flagged and (p.a_repo_id not in in_large or frozenset((p.a_repo_id, p.b_repo_id)) in edges)
    ]  # fmt: skip


def load_view(store_root: Path | str, require_pairs: bool = True) -> StoreView:
    """The pairs, models, files, failures and families of a store.

    Raises:
        StoreError: no scored pairs yet (when ``require_pairs``).
    """
    store = Store(store_root).init()
    con = connect(store)  # not store.root: an object store's root is bucket/prefix, read as a local folder
    pairs = [pair_from_row(r) for r in scored_pairs(con)]
    if not pairs and require_pairs:
        raise StoreError(None, None, store.uri, "no scored pairs: run `hubscan flag` first")
    models = {m["repo_id"]: StoredModel.from_row(m) for m in stored_models(con)}
    files: dict[str, list[StoredFile]] = {}
    for f in sorted(store.dataset("files").to_table(columns=["repo_id", "file", "sha256", "size"]).to_pylist(),
                    key=lambda f: f["file"]):  # fmt: skip
        files.setdefault(f["repo_id"], []).append(StoredFile(f["file"], f["sha256"], f["size"]))
    failures = failure_count(con)
    sweeps = sorted({m.sweep_id for m in models.values() if m.sweep_id})
    families = load_families(con) if pairs else []
    return StoreView(store.location, pairs, models, files, failures, sweeps, families, con)


def pair_file(pair: ScoredPair) -> str:
    """A stable, filesystem-safe page name for a pair."""
    key = f"{pair.a_repo_id}@{pair.a_revision}|{pair.b_repo_id}@{pair.b_revision}"
    a, b = (re.sub(r"[^A-Za-z0-9]+", "-", repo).strip("-")[:44] for repo in (pair.a_repo_id, pair.b_repo_id))
    slug = f"{a}-vs-{b}"
    return f"{slug}-{hashlib.sha256(key.encode()).hexdigest()[:8]}.html"


def index_page(view: StoreView, flagged: list[ScoredPair]) -> str:
    """Provenance, then each family as a lineage graph, then undeclared pairs ranked by evidence."""
    by_pair = {frozenset((p.a_repo_id, p.b_repo_id)): p for p in flagged}
    sources = sorted({str(m.source) for m in view.models.values()})
    flag_ids = sorted({str(p.flag_id) for p in view.pairs})
    body = [
        "<h1>hubscan report</h1>",
        "<h2>Provenance</h2><table>",
        _kv("store", str(view.store)),
        _kv("sources", ", ".join(sources)),
        _kv("sweeps", ", ".join(view.sweeps) or "none (local fingerprinting)"),
        _kv("models", str(len(view.models))),
        _kv("failures", str(view.failures)),
        _kv("flag run", ", ".join(flag_ids)),
        _kv("pairs scored / flagged", f"{len(view.pairs)} / {sum(bool(p.flagged) for p in view.pairs)}"),
        _kv("hubscan version", __version__),
        _kv("written", f"{datetime.now(UTC):%Y-%m-%d %H:%M UTC}"),
        "</table>",
        f"<h2>Families ({len(view.families)})</h2>",
        "<p>Connected components of the flagged pairs, drawn from each edge's direction (declared, merge, "
        "structure, precision, creation time, a star's centre): roots are origins, a merge hangs under each parent. "
        '<span class="undeclared">Red dashed edges</span> are relations no model card declares.</p>',
    ]
    for fam in view.families:
        edges = [
            svg.TreeEdge(link.parent, link.child, link.verdict, link.declared,
                         _href(by_pair.get(frozenset((link.parent, link.child)))))
            for link in fam.links
        ]  # fmt: skip
        body.append(
            f"<h3>Family {fam.family}: root {escape(fam.root)}</h3><p>{len(fam.members)} models, "
            f"{fam.pairs} flagged pairs ({fam.undeclared_pairs} undeclared). Members: "
            + ", ".join(escape(m.repo_id) for m in fam.members)
            + "</p>"
        )
        if len(fam.members) <= TREE_MAX:
            second = [svg.TreeEdge(k.parent, k.child, k.verdict, k.declared) for k in fam.second_parents]
            body.append(svg.lineage(f"family {fam.family}", fam.roots or [fam.root], edges, second))
        else:  # a graph of thousands of nodes reads as nothing: the summary, then the lineage edges
            body.append(_family_summary(fam, edges))
    undeclared = sorted((p for p in flagged if not p.declared), key=_weaker)
    body.append(f"<h2>Undeclared derivatives, strongest evidence first ({len(undeclared)})</h2>")
    body.append(_pair_table(undeclared))
    declared = sorted((p for p in flagged if p.declared), key=_weaker)
    body.append(f"<h2>Declared relations ({len(declared)})</h2>" + _pair_table(declared))
    return _page("hubscan report", body)


def pair_page(view: StoreView, pair: ScoredPair, index_href: str | None = None) -> str:
    """One pair: the verdict in a sentence, the evidence table, figures, licence and provenance."""
    a, b = pair.a_repo_id, pair.b_repo_id
    declared = f"declared ({escape(str(pair.declared_how))})" if pair.declared else (
        '<span class="undeclared">undeclared: no model card names this relation</span>'
    )  # fmt: skip
    body = [f'<p><a href="{index_href}">&larr; all families</a></p>' if index_href else "",
            f"<h1>{escape(a)} &harr; {escape(b)}</h1>",
            f"<p><b>Verdict: {escape(str(pair.verdict))}</b>. {escape(str(pair.reason))}. "
            f"Combined evidence -log10 p = {_score(pair):.4g}, q {_relation(format_p(pair.q))}; {declared}.</p>",
            "<h2>Evidence</h2>", _evidence_table(pair), "<h2>Figures</h2>"]  # fmt: skip
    body.append(_layer_curve(view, pair))
    body.append(_std_profile_figure(view, pair))
    matches = [(m["a_layer"], m["b_layer"], m["r"]) for m in pair.layer_map or []]
    body.append(svg.layer_map("layer map: best element-aligned match per layer", a, b, matches))
    if pair.obfuscation:
        body.append(
            "<p>Re-parameterised pair: the permutation-recovery and attention-spectra tests read whole "
            f"matrices and are not stored; run <code>hubscan compare {escape(a)} {escape(b)} "
            "--permutation-test --spectra</code> for their figures.</p>"
        )
    body.append(_licence(view, pair))
    body.append("<h2>Provenance</h2>" + _provenance(view, pair))
    return _page(f"{a} vs {b}", body)


def _evidence_table(pair: ScoredPair) -> str:
    rows = ["<table><tr><th>signal</th><th>value</th><th>unrelated pairs 5-95 %</th><th>p-value</th>"
            "<th>decides</th><th>what it measures</th></tr>"]  # fmt: skip
    for s, v in zip(SIGNAL_TABLE, pair.by_signal, strict=True):
        if v.value is None:
            continue
        band = "" if v.bg_lo is None else f"{v.bg_lo:.4f} – {v.bg_hi:.4f}"
        rows.append(
            f"<tr><td>{s.name}</td><td>{v.value:.6f}</td><td>{band}</td><td>{format_p(v.p)}</td>"
            f"<td>{'yes' if s.decisive else 'no'}</td><td>{escape(s.what)}</td></tr>"
        )
    return "".join(rows) + "</table>"


def _layer_curve(view: StoreView, pair: ScoredPair) -> str:
    """The pair's best element-aligned r per layer over the band of unrelated same-shape pairs."""
    mine = sorted((m["a_layer"], m["r"]) for m in pair.layer_map or [] if m["r"] is not None)
    band = view.layer_band(pair.hidden)
    return svg.curves(
        "sketch: element-aligned r of the best-matching layer",
        [svg.Curve("this pair", [(float(x), float(r)) for x, r in mine])],
        band,
        y_label="Pearson r",
    )


def _std_profile_figure(view: StoreView, pair: ScoredPair) -> str:
    """Both models' per-layer std of Q (the seed's statistic), and why it does not decide."""
    series = [svg.Curve(name, view.q_profile(name), colour)
              for name, colour in ((pair.a_repo_id, svg.PAIR), (pair.b_repo_id, svg.OTHER))]  # fmt: skip
    std = pair.signal("std_profile")
    r, lo, hi = std.value, std.bg_lo, std.bg_hi
    title = "std profile of Q per layer (the seed's statistic; reported, never decisive)"
    note = ""
    if r is not None:
        band = "" if lo is None else f"; unrelated same-shape pairs give {lo:.3f} – {hi:.3f}"
        note = (f"<p class='muted'>std-profile r = {r:.3f}{band}. The profile mostly encodes the "
                "architecture, so unrelated models of one shape score as high as relatives.</p>")  # fmt: skip
    return svg.curves(title, series, y_label="std") + note


def _licence(view: StoreView, pair: ScoredPair) -> str:
    """Licence section: licence columns of the pair when the pairs table has them, else the cards'."""
    cols = {k: v for k, v in pair.items() if "licen" in k and v is not None}
    if not cols:
        cols = {f"{side} licence": (view.models.get(repo) or StoredModel()).license
                for side, repo in (("a", pair.a_repo_id), ("b", pair.b_repo_id))}  # fmt: skip
    return "<h2>Licence</h2><table>" + "".join(_kv(k, str(v)) for k, v in cols.items()) + "</table>"


def _provenance(view: StoreView, pair: ScoredPair) -> str:
    parts = ["<table>", _kv("store", str(view.store)), _kv("flag id", pair.flag_id or "compare")]
    for side, repo, revision in (
        ("a", pair.a_repo_id, pair.a_revision),
        ("b", pair.b_repo_id, pair.b_revision),
    ):
        m = view.models.get(repo) or StoredModel()
        parts.append(_kv(escape(f"{side}: {repo}"), f"revision {revision}, {m.format}, {m.bytes_read:,} of "
                         f"{m.checkpoint_bytes:,} bytes read in {m.requests} requests"))  # fmt: skip
        hashed = view.files.get(repo) or [StoredFile(f, "not recorded (local folder)", None) for f in m.files]
        for f in hashed:
            size = "" if f.size is None else f", {f.size:,} bytes"
            parts.append(_kv(f"&nbsp;&nbsp;{escape(f.file)}", f"sha256 {f.sha256}{size}"))
    return "".join(parts) + "</table>"


def _pair_table(pairs: list[ScoredPair]) -> str:
    rows = ["<table><tr><th>model a</th><th>model b</th><th>verdict</th><th>-log10 p</th><th>q</th></tr>"]
    for p in pairs:
        rows.append(
            f"<tr><td>{escape(p.a_repo_id)}</td><td>{escape(p.b_repo_id)}</td>"
            f'<td><a href="{_href(p)}">{escape(str(p.verdict))}</a></td><td>{_score(p):.4g}</td>'
            f"<td>{format_p(p.q)}</td></tr>"
        )
    return "".join(rows) + "</table>"


def _family_summary(fam: Family, edges: list[svg.TreeEdge]) -> str:
    """A large family: flagged pairs by verdict, then its lineage edges (the tree's, root first), each linked."""
    kinds = ", ".join(
        f"{escape(k)} {n}" for k, n in sorted(fam.verdicts.items(), key=lambda kv: (-kv[1], kv[0]))
    )
    rows = [f"<p>Flagged pairs by verdict: {kinds}. Lineage edges: each member under its strongest "
            f"already-placed relative ({len(edges)}); any other pair is one <code>hubscan compare A B</code> "
            "away.</p><table><tr><th>parent</th><th>member</th><th>verdict</th><th>declared</th></tr>"]  # fmt: skip
    for e in edges:
        verdict = f'<a href="{e.href}">{escape(e.verdict)}</a>' if e.href else escape(e.verdict)
        declared = "yes" if e.declared else '<span class="undeclared">no</span>'
        rows.append(
            f"<tr><td>{escape(e.parent)}</td><td>{escape(e.child)}</td><td>{verdict}</td><td>{declared}</td></tr>"
        )
    return "".join(rows) + "</table>"


def _href(pair: ScoredPair | None) -> str | None:
    return None if pair is None else f"pairs/{pair_file(pair)}"


def _score(pair: ScoredPair) -> float:
    """A judged pair's score (every row of `pairs` has one: a pair without is a bug, and fails loudly)."""
    if pair.score is None:
        raise ValueError(f"{pair.key}: a pair without a score")
    return pair.score


def _weaker(pair: ScoredPair) -> float:
    """Sort key: strongest evidence first."""
    return -_score(pair)


def _kv(key: str, value: str) -> str:
    # keys may carry markup of ours (indentation); values are always escaped
    return f"<tr><th>{key}</th><td>{escape(value)}</td></tr>"


def _page(title: str, body: list[str]) -> str:
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>\n"
    )


def write_pair_page(settings: Settings, row: ScoredPair, output: Path) -> None:
    """The pair page of `hubscan compare --format html`: one file, the same page the report writes."""
    view = load_view(settings.store, require_pairs=False)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(pair_page(view, row))


def _relation(value: str) -> str:
    """'= 0.003' or '< 1e-300': a floored q reads as a bound, not as '= < 1e-300'."""
    return value if value.startswith("<") else f"= {value}"
