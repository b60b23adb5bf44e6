"""Bad input from the Hub: one failures row each, a one-line message naming repo, revision and file,
never a crash and never a tensors row. Faults the Hub injects are retried or recorded."""

import pytest

from hubscan.jobs import fingerprint
from hubscan.pipeline.http import HubHttp
from hubscan.pipeline.sources import hf
from hubscan.pipeline.storage.duckdb import connect
from hubscan.testbed.demohub.badrepos import BAD_REPOS, MALICIOUS_MARKER
from hubscan.testbed.fakehub import Fault

EXPECTED = {
    "truncated": ":model.safetensors: tensor layers.1.attn.q_proj.weight: bytes 49944-66328 lie past the end of the file (49944 bytes)",
    "header-too-large": ":model.safetensors: header length 1152921504606846976 exceeds 100000000",
    "overlapping-offsets": ":model.safetensors: tensors a.weight and b.weight overlap",
    "offsets-past-end": ":model.safetensors: tensor b.weight: bytes 4248-12440 lie past the end of the file (8344 bytes)",
    "unknown-dtype": ":model.safetensors: tensor b.weight: unknown dtype 'Q9_ZZ'",
    "nan-inf": ":model.safetensors: tensor layers.0.attn.q_proj.weight: 3 NaN/inf values among the rows read",
    "malformed-json": ":model.safetensors: header is not valid JSON: Expecting value: line 1 column 65 (char 64)",
    "empty": ": no safetensors, GGUF or PyTorch weight files in the repo",
    "pickle-only": ":pytorch_model.bin: archive/data.pkl: pickle calls builtins.print; refused, never executed",
    "malicious-pickle": ":pytorch_model.bin: archive/data.pkl: pickle calls os.system; refused, never executed",
    "torch-truncated": ":pytorch_model.bin: not a zip archive (no end-of-central-directory record); truncated or not a torch checkpoint",
    "torch-compressed": ":pytorch_model.bin: zip entry archive/data/0 is compressed (method 8); torch checkpoints store entries uncompressed",
    "torch-legacy": ":pytorch_model.bin: legacy torch serialization (not a zip); not supported",
    "torch-offset-past-end": ":pytorch_model.bin: tensor layers.0.attn.q_proj.weight: bytes 16384-32768 of storage data/0 lie past its end (16384 bytes)",
    "gated": ":model.safetensors: gated repo (HTTP 401): accept its terms or pass a token with access",
}
CATEGORY = {
    "unknown-dtype": "UnsupportedDtype",
    "nan-inf": "FingerprintError",
    "empty": "NoWeights",
    "pickle-only": "UnsafeContent",
    "malicious-pickle": "UnsafeContent",
    "torch-truncated": "FormatError",
    "torch-compressed": "FormatError",
    "torch-legacy": "FormatError",
    "torch-offset-past-end": "FormatError",
    "gated": "RepoGated",
}


def test_every_bad_repo_is_one_failure_row_and_the_run_goes_on(settings):
    repos = [*BAD_REPOS.values(), "sentence-transformers/all-MiniLM-L6-v2"]
    MALICIOUS_MARKER.unlink(missing_ok=True)
    summary = fingerprint.run(settings, repos)
    assert not MALICIOUS_MARKER.exists()  # the malicious pickle's os.system never ran
    assert (summary.done, summary.failed) == (1, len(BAD_REPOS))
    assert summary.exit_code == 3
    con = connect(settings.store)
    rows = dict(con.sql("SELECT repo_id, message FROM failures").fetchall())
    categories = dict(con.sql("SELECT repo_id, category FROM failures").fetchall())
    http = HubHttp(settings)
    for kind, repo in BAD_REPOS.items():
        sha = hf.resolve(http, repo).revision
        assert rows[repo] == f"{repo}@{sha[:7]}{EXPECTED[kind]}"
        assert "\n" not in rows[repo]
        assert categories[repo] == CATEGORY.get(kind, "MalformedHeader")
    assert con.execute("SELECT count(DISTINCT repo_id) FROM tensors").fetchone() == (1,)
    assert con.execute("SELECT count(*) FROM models").fetchone() == (1,)


def test_missing_repo_is_a_failure_not_a_crash(settings):
    summary = fingerprint.run(settings, ["nobody/nothing"])
    assert summary.failed == 1
    assert summary.messages == ["nobody/nothing@main: repo not found, private or gated (HTTP 401)"]


@pytest.mark.parametrize(
    "steps",
    [
        [Fault(status=429, retry_after=0.01), Fault(status=429, retry_after=0.01)],
        [503, 502, 500],
        ["cut", "cut"],
    ],
    ids=["429-retry-after", "5xx-burst", "cut-body"],
)
def test_transient_faults_are_retried_and_the_model_lands(settings, hub, steps):
    hub.script("model.safetensors", steps)
    summary = fingerprint.run(settings, ["sentence-transformers/all-MiniLM-L6-v2"])
    assert (summary.done, summary.failed) == (1, 0)
    assert hub.pending_steps() == 0
    faults = [r for r in hub.log.snapshot() if r.fault and r.fault != "ok"]
    assert len(faults) == len(steps)


def test_slow_response_hits_the_timeout_and_is_retried(settings, hub):
    hub.slow_seconds = 2.0
    hub.script("model.safetensors", ["slow"])
    summary = fingerprint.run(settings.with_(read_timeout_s=0.5), ["sentence-transformers/all-MiniLM-L6-v2"])
    assert (summary.done, summary.failed) == (1, 0)


def test_a_429_storm_becomes_a_rate_limited_failure_row(settings, hub):
    hub.script("model.safetensors", [Fault(status=429, retry_after=0.01)] * 20)
    summary = fingerprint.run(settings.with_(max_retries=2), ["sentence-transformers/all-MiniLM-L6-v2"])
    assert summary.failed == 1
    con = connect(settings.store)
    ((category, message),) = con.sql("SELECT category, message FROM failures").fetchall()
    assert category == "RateLimited"
    assert message.endswith("model.safetensors: HTTP 429 after 2 retries")
    assert con.execute("SELECT count(*) FROM tensors").fetchone() == (0,)
