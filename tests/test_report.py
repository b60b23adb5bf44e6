"""`hubscan report` and `compare --format html`, tested as a reader sees them: headless Chromium opens
the pages from disk with networking off (tests/browser.py), and the screenshot, the rendered DOM and the
console say what a person would see. Skips when Chromium is missing (.ci/run installs it)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from hubscan.pipeline.comparison import verdicts as v
from hubscan.pipeline.config import Settings
from hubscan.pipeline.flagging import engine as flag
from hubscan.pipeline.outputs import report
from hubscan.pipeline.outputs.families import load_families
from hubscan.pipeline.storage.duckdb import connect
from hubscan.pipeline.storage.parquet import Store
from tests.browser import looks_rendered
from tests.stores import fingerprinted_store

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
COUSIN = "sentence-transformers/paraphrase-MiniLM-L3-v2"


@pytest.fixture(scope="module")
def store(testbed, tmp_path_factory):
    repos = [k for k in json.loads((testbed / "manifest.json").read_text()) if not k.startswith("badhub")]
    root = fingerprinted_store(testbed, repos, tmp_path_factory, "reportstore")
    flag.run(Settings(store=root))
    return root


@pytest.fixture(scope="module")
def site(store, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "site"
    pages = report.write_report(store, out)
    return out, pages


def test_the_index_names_every_family_flagged_model_and_verdict(store, site, tmp_path):
    out, pages = site
    index = out / "index.html"
    html = index.read_text()
    # self-contained: nothing to fetch (no scripts, external styles, fonts or images)
    assert not re.search(r"(src|href)=\"(https?:)?//", html) and "<script" not in html and "<img" not in html
    shown = looks_rendered(tmp_path, index)
    dom, text = shown.dom, shown.text()
    families = load_families(connect(store))
    assert len(families) >= 2 and dom.count("<svg") >= len(families)  # one lineage graph each, rendered
    for fam in families:
        assert f"Family {fam.family}: root {fam.root}" in text
        for m in fam.members:
            assert m.repo_id in text
    flagged = [p for p in report.load_view(store).pairs if p["flagged"]]
    assert pages == len(flagged) == len(list((out / "pairs").glob("*.html")))
    for verdict in {p["verdict"] for p in flagged}:
        assert verdict in text, verdict
    # the testbed's derivation kinds show up under the names the verdicts give them
    assert {v.EXACT_COPY, v.CAST_COPY, v.FINE_TUNE, v.SAME_LINEAGE, v.STRUCTURAL, v.REPARAM,
            v.REPARAM_FINE_TUNE, v.VOCAB_COPY} <= {p["verdict"] for p in flagged}  # fmt: skip
    assert "UNDECLARED" in text and "Undeclared derivatives, strongest evidence first" in text


def test_a_pair_page_shows_its_verdict_evidence_figures_and_provenance(store, site, tmp_path):
    out, _ = site
    pair = next(
        p for p in report.load_view(store).pairs if {p["a_repo_id"], p["b_repo_id"]} == {MINILM, COUSIN}
    )
    page = out / "pairs" / report.pair_file(pair)
    assert f'href="pairs/{page.name}"' in (out / "index.html").read_text()  # linked from the index
    shown = looks_rendered(tmp_path, page)
    dom, text = shown.dom, shown.text()
    assert f"Verdict: {v.SAME_LINEAGE}" in text and "undeclared" in text
    for signal in ("sketch", "gain", "dim_std", "tokens", "std_profile"):
        assert f" {signal} " in text, signal
    # layer curve over the unrelated band, the std profile, the layer map
    assert dom.count("<svg") == 3 and "5-95 % of unrelated same-shape pairs" in text
    assert "std-profile r = " in text and "layer 5" in text
    assert pair["a_revision"] in text and pair["b_revision"] in text and "bytes read" in text
    assert "Licence" in text and pair["flag_id"] in text


def test_compare_writes_the_pair_page_alone(store, tmp_path):
    page = tmp_path / "pair.html"
    out = subprocess.run(
        [sys.executable, "-m", "hubscan.jobs.cli", "compare", MINILM, COUSIN, "--store", str(store), "--format", "html",
         "-o", str(page)], capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    html = page.read_text()
    assert f"Verdict: {v.SAME_LINEAGE}" in html and html.count("<svg") == 3
    bad = subprocess.run([sys.executable, "-m", "hubscan.jobs.cli", "compare", MINILM, COUSIN, "--store", str(store),
                          "--format", "html"], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert bad.returncode == 2  # html needs -o FILE


def test_report_of_a_store_without_pairs_is_one_line(tmp_path):
    empty = Store(tmp_path / "empty").init()  # a store, but never flagged
    out = subprocess.run([sys.executable, "-m", "hubscan.jobs.cli", "report", "--store", str(empty.root), "-o",
                          str(tmp_path / "site")], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 1
    assert out.stderr == f"hubscan: {empty.root}: no scored pairs: run `hubscan flag` first\n"
