"""A listing is hostile input too (real sweep, real Ray, the fake Hub's request log): a bad entry is one
failures row, a next-page link is followed only on the endpoint's origin and never twice, every wait
the server asks for is capped, and a file name never leaves its repo."""

import json
import re
import struct
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from hubscan.jobs.cli import app
from hubscan.pipeline.config import Settings
from hubscan.pipeline.errors import BadListing
from hubscan.pipeline.runtime import sweep
from hubscan.pipeline.runtime.sweep import ListingFilters
from hubscan.pipeline.storage.duckdb import connect
from hubscan.pipeline.storage.parquet import Store
from hubscan.testbed.fakehub import FakeHub
from hubscan.testbed.fakehub.faults import Fault
from hubscan.testbed.fakehub.listing import encode_cursor
from hubscan.testbed.writers.safetensors_write import write_safetensors

TOKEN = "hf_granted"
# The name the issue found: joined unescaped, it made a request for another, private repo.
TRAVERSING = "../../../../secret/private/resolve/main/model.gguf"
GOOD = ("org/a", "org/b", "org/c")
# Done-when of issue 25: no failure message above 2 kB.
MAX_MESSAGE_BYTES = 2048


@pytest.fixture(scope="module")
def hostile_hub(tmp_path_factory):
    """Three good tiny repos of org/, and a private repo the user's token may read but no listing names."""
    root = tmp_path_factory.mktemp("hostile-listing")
    rng = np.random.default_rng(0)
    for repo in GOOD:
        write_safetensors(root / repo / "model.safetensors", {"a.weight": rng.random((16, 16), np.float32)})
    (root / "secret/private").mkdir(parents=True)
    (root / "secret/private/model.gguf").write_bytes(b"GGUF" + struct.pack("<I", 3) + bytes(64))
    (root / "secret/private/.fakehub.json").write_text(json.dumps({"private": True}))
    with FakeHub(root, tokens=[TOKEN]) as hub:
        yield hub


@pytest.fixture
def hub(hostile_hub):
    hostile_hub.reset()
    yield hostile_hub
    hostile_hub.reset()


def _settings(hub: FakeHub, tmp_path: Path, **changes) -> Settings:
    return Settings(
        endpoint=hub.url, token=TOKEN, store=tmp_path / "store", backoff_base_s=0.01, backoff_max_s=0.05
    ).with_(**changes)


def _org(settings: Settings):
    return sweep.run(settings, "hub", ListingFilters(author="org"))


def _failures(settings: Settings) -> dict[str, tuple[str, str, str]]:
    rows = connect(settings.store).execute("SELECT repo_id, file, category, message FROM failures").fetchall()
    return {repo: (file, category, message) for repo, file, category, message in rows}


def _stored(settings: Settings) -> list[str]:
    return sorted(r for (r,) in connect(settings.store).execute("SELECT repo_id FROM models").fetchall())


def _listing_requests(hub: FakeHub) -> list[str]:
    return [r.query for r in hub.log.snapshot() if r.path == "/api/models"]


SHA = "0123456789abcdef0123456789abcdef01234567"
BAD_ENTRIES = [
    {"sha": SHA, "siblings": []},  # no id
    {"id": 42},
    7,
    {"id": "org/sha-not-a-string", "sha": 123},
    {"id": "org/sha-not-a-commit", "sha": "../../x"},
    {"id": "[/x]", "sha": SHA},  # rich-console markup as a repo id
    {"id": "org/siblings-not-a-list", "sha": SHA, "siblings": "model.safetensors"},
    {"id": "org/sibling-not-a-string", "sha": SHA, "siblings": [{"rfilename": 10}]},
    {"id": "org/evil", "sha": SHA, "siblings": [{"rfilename": TRAVERSING}]},
    {"id": "org/tags-not-a-list", "sha": SHA, "siblings": [], "tags": 5},
    {"id": "org/" + "x" * 5_000_000, "sha": SHA},  # a 5 MB id: refused, and quoted bounded
]


def test_bad_entries_are_a_failures_row_each_and_the_good_models_are_stored(ray_session, hub, tmp_path):
    hub.listing_extra = BAD_ENTRIES
    settings = _settings(hub, tmp_path)
    summary = _org(settings)
    assert _stored(settings) == list(GOOD)
    assert (summary.done, summary.failed) == (3, len(BAD_ENTRIES))
    failures = _failures(settings)
    assert len(failures) == len(BAD_ENTRIES)
    assert {category for _, category, _ in failures.values()} == {"BadListing"}
    assert all(len(message.encode()) <= MAX_MESSAGE_BYTES for _, _, message in failures.values())
    file, _, message = failures["org/evil"]
    assert file == TRAVERSING
    assert message == (
        f"org/evil@0123456:{TRAVERSING}: file name {TRAVERSING!r} is not a path inside the repo"
        " ('', '.' or '..' segment)"
    )
    # Entries without a usable id are named by their place in the listing (the 3 good ones first).
    assert failures["<listing entry 4>"][2] == "<listing entry 4>: listing entry has no id"
    assert failures["<listing entry 6>"][2] == "<listing entry 6>: listing entry is a int, not an object"
    assert failures["<listing entry 9>"][2].startswith(
        "<listing entry 9>: repo id '[/x]' is not a Hub repo id"
    )
    assert failures["org/sha-not-a-string"][2] == "org/sha-not-a-string: sha int is not a commit id"
    assert "'… (5000004 chars) is longer than the Hub allows" in failures["<listing entry 14>"][2]
    assert failures["org/tags-not-a-list"][2] == "org/tags-not-a-list@0123456: tags is a int, not a list"
    # The token reads secret/private, but no listing named it: not one request went there.
    assert not [r for r in hub.log.snapshot() if r.repo_id == "secret/private" or "secret" in r.path]


def test_a_next_link_that_loops_ends_the_listing_in_one_line_after_its_models(ray_session, hub, tmp_path):
    hub.page_size = 1
    page = {n: f"{hub.url}/api/models?author=org&cursor={encode_cursor(n)}" for n in (1, 2)}
    # Page 1 → cursor 1 → cursor 2 → cursor 1 again: a loop that never ends.
    links = [page[1], page[2], page[1]]
    hub.script("/api/models", [Fault(headers=(("Link", f'<{url}>; rel="next"'),)) for url in links])
    settings = _settings(hub, tmp_path)
    with pytest.raises(BadListing, match="loops back to a page already read"):
        _org(settings)
    assert len(_listing_requests(hub)) == 3
    assert _stored(settings) == list(GOOD)  # every model handed out before the loop finished
    assert connect(settings.store).execute("SELECT status FROM sweeps").fetchall() == [("failed",)]


def test_the_page_budget_ends_a_listing_whose_links_never_repeat(ray_session, hub, tmp_path):
    hub.page_size = 1
    settings = _settings(hub, tmp_path, max_listing_pages=2)
    with pytest.raises(
        BadListing, match=r"^<listing>: listing still going after 2 pages \(max_listing_pages\)$"
    ):
        _org(settings)
    assert len(_listing_requests(hub)) == 2
    assert _stored(settings) == ["org/a", "org/b"]


def test_a_relative_next_link_is_resolved_against_the_request(ray_session, hub, tmp_path):
    hub.page_size = 1
    hub.script(
        "/api/models",
        [Fault(headers=(("Link", f'<?author=org&cursor={encode_cursor(n)}>; rel="next"'),)) for n in (1, 2)],
    )
    settings = _settings(hub, tmp_path)
    summary = _org(settings)
    assert (summary.done, summary.failed) == (3, 0)
    assert _stored(settings) == list(GOOD)


@pytest.mark.parametrize("link", ["file:///etc/passwd", "{cdn}/api/models?author=org", "http://[::1"])
def test_a_next_link_off_the_endpoint_is_refused_in_one_line(ray_session, hub, tmp_path, link):
    hub.page_size = 1
    link = link.format(cdn=hub.cdn_url)
    hub.script("/api/models", [Fault(headers=(("Link", f'<{link}>; rel="next"'),))])
    settings = _settings(hub, tmp_path)
    with pytest.raises(BadListing, match=rf"next-page link .* leaves the endpoint {re.escape(hub.url)}$"):
        _org(settings)
    assert _stored(settings) == ["org/a"]  # the first page's model still finished
    assert not [r for r in hub.log.snapshot() if r.origin == "cdn" and r.path == "/api/models"]


@pytest.mark.parametrize("path", ["/api/models/secret/private", "/secret/private/resolve/main/model.gguf"])
def test_a_next_link_to_another_path_of_the_endpoint_is_refused_unrequested(ray_session, hub, tmp_path, path):
    hub.page_size = 1
    hub.script("/api/models", [Fault(headers=(("Link", f'<{path}>; rel="next"'),))])
    settings = _settings(hub, tmp_path)
    with pytest.raises(
        BadListing,
        match=rf"next-page link '{path}' is not the endpoint's listing {re.escape(hub.url)}/api/models$",
    ):
        _org(settings)
    assert _stored(settings) == ["org/a"]
    assert not [r for r in hub.log.snapshot() if "secret" in r.path]


def test_a_listing_page_that_is_no_list_is_refused(ray_session, hub, tmp_path):
    hub.script("/api/models", [Fault(body=b'{"id": "org/a"}')])
    with pytest.raises(BadListing, match=r"^<listing>: listing page is a dict, not a list$"):
        _org(_settings(hub, tmp_path))


@pytest.mark.timeout(300)  # a hang guard: today's client sleeps for the billion seconds asked
@pytest.mark.parametrize("reset", ["999999999", "9" * 5000])
def test_a_rate_limit_reset_beyond_the_cap_waits_the_cap(ray_session, hub, tmp_path, reset):
    hub.page_size = 2
    hub.script("/api/models", [Fault(headers=(("RateLimit", f'"api";r=0;t={reset}'),))])
    settings = _settings(hub, tmp_path, max_retry_after_s=0.2)
    summary = _org(settings)
    assert (summary.done, summary.failed) == (3, 0)
    assert hub.pending_steps() == 0


def test_content_encoding_that_does_not_decode_is_a_fetch_error(ray_session, hub, tmp_path):
    settings = _settings(hub, tmp_path)
    gzip_over_plain = Fault(headers=(("Content-Encoding", "gzip"),))
    steps = [gzip_over_plain] * (settings.max_retries + 1)
    hub.script("model.safetensors", steps, repo_id="org/b", origin="cdn")
    summary = _org(settings)
    assert (summary.done, summary.failed) == (2, 1)
    file, category, message = _failures(settings)["org/b"]
    assert category == "FetchError"
    assert file == "model.safetensors"
    assert "network error after 5 retries: DecodingError" in message


def test_a_listing_page_that_does_not_decode_is_a_fetch_error(ray_session, hub, tmp_path):
    settings = _settings(hub, tmp_path)
    hub.script("/api/models", [Fault(headers=(("Content-Encoding", "gzip"),))] * (settings.max_retries + 1))
    with pytest.raises(Exception) as raised:
        _org(settings)
    assert type(raised.value).__name__ == "FetchError"
    assert "DecodingError" in str(raised.value)


@pytest.mark.parametrize("location", ["file:///etc/passwd", "http://[::1", "gopher://x/y"])
def test_a_redirect_off_http_is_a_fetch_error(ray_session, hub, tmp_path, location):
    settings = _settings(hub, tmp_path)
    redirect = Fault(status=302, headers=(("Location", location),))
    hub.script("model.safetensors", [redirect], repo_id="org/b")
    summary = _org(settings)
    assert (summary.done, summary.failed) == (2, 1)
    file, category, message = _failures(settings)["org/b"]
    assert (file, category) == ("model.safetensors", "FetchError")
    assert message.endswith(f": redirect to an unusable location {location!r}")


def test_a_listing_page_nested_past_any_hub_answer_is_a_fetch_error(ray_session, hub, tmp_path):
    hub.script("/api/models", [Fault(body=b"[" * 100_000 + b"]" * 100_000)])
    with pytest.raises(Exception) as raised:
        _org(_settings(hub, tmp_path))
    assert type(raised.value).__name__ == "FetchError"  # a RecursionError traceback before
    assert str(raised.value).endswith("JSON nests deeper than 64 levels")


@pytest.mark.parametrize("size", ["9" * 5000, "\u00b2"], ids=["5000-digits", "superscript-two"])
def test_a_file_size_header_that_is_no_number_is_a_fetch_error(ray_session, hub, tmp_path, size):
    settings = _settings(hub, tmp_path)
    hub.script(
        "model.safetensors", [Fault(headers=(("X-Linked-Size", size),))], repo_id="org/b", origin="hub"
    )
    summary = _org(settings)
    assert (summary.done, summary.failed) == (2, 1)
    _, category, message = _failures(settings)["org/b"]
    assert (category, message.split(": ", 1)[1]) == ("FetchError", "server did not report the file size")


def test_a_429_asking_for_more_than_the_cap_is_rate_limited_naming_the_cap(ray_session, hub, tmp_path):
    settings = _settings(hub, tmp_path)
    reset = "9" * 5000  # int() refuses it: a ValueError stored as internal before
    too_long = Fault(status=429, headers=(("RateLimit", f'"resolvers";r=0;t={reset}'),))
    hub.script("model.safetensors", [too_long], repo_id="org/b", origin="hub")
    summary = _org(settings)
    assert (summary.done, summary.failed) == (2, 1)
    file, category, message = _failures(settings)["org/b"]
    assert (file, category) == ("model.safetensors", "RateLimited")
    assert message.endswith(
        ": HTTP 429: server asks to wait 1000000000000s, more than max_retry_after_s (300s)"
    )


SWEEP_ID = "resumed"
CURSOR = f"sweeps/{SWEEP_ID}.cursor.json"
TAMPERED_LINKS = {
    "another-origin": ("{cdn}/api/models?author=org", "leaves the endpoint {hub}"),
    "file": ("file:///etc/passwd", "leaves the endpoint {hub}"),
    "model-info": ("{hub}/api/models/secret/private", "is not the endpoint's listing {hub}/api/models"),
    "resolve": (
        "{hub}/secret/private/resolve/main/model.gguf",
        "is not the endpoint's listing {hub}/api/models",
    ),
}


@pytest.mark.parametrize("case", sorted(TAMPERED_LINKS))
def test_a_resumed_sweep_refuses_a_tampered_cursor_before_any_request(hub, tmp_path, monkeypatch, case):
    link, reason = (text.format(cdn=hub.cdn_url, hub=hub.url) for text in TAMPERED_LINKS[case])
    store = Store(tmp_path / "store").init()
    store.write_bytes(CURSOR, json.dumps({"next_url": link, "listed": 1}).encode())
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    result = CliRunner().invoke(app, ["sweep", "--store", store.uri, "--sweep-id", SWEEP_ID])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"hubscan: {store.uri}:{CURSOR}: saved next-page link {link!r} {reason}: remove it to list from the start"
    ]
    assert hub.log.snapshot() == []  # not one request, to the endpoint or anywhere else


def test_a_resumed_sweep_lists_from_its_saved_cursor(ray_session, hub, tmp_path, monkeypatch):
    hub.page_size = 1
    link = f"{hub.url}/api/models?author=org&cursor={encode_cursor(2)}"
    store = Store(tmp_path / "store").init()
    store.write_bytes(CURSOR, json.dumps({"next_url": link, "listed": 2}).encode())
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    result = CliRunner().invoke(app, ["sweep", "--store", store.uri, "--sweep-id", SWEEP_ID])
    assert result.exit_code == 0, result.stderr
    assert _listing_requests(hub) == [f"author=org&cursor={encode_cursor(2)}"]
    assert sorted(r for (r,) in connect(store.uri).execute("SELECT repo_id FROM models").fetchall()) == [
        "org/c"
    ]


@pytest.mark.parametrize(
    ("saved", "reason"),
    [
        (b"{not json", "not JSON"),
        (b"[1]", "not a JSON object"),
        (b'{"next_url": 5}', "next_url is not a string"),
        (b"[" * 100_000 + b"]" * 100_000, "JSON nests deeper than 64 levels"),
    ],
    ids=["not-json", "array", "int-url", "deep"],
)
def test_a_cursor_hubscan_did_not_write_is_one_line(hub, tmp_path, monkeypatch, saved, reason):
    store = Store(tmp_path / "store").init()
    store.write_bytes(CURSOR, saved)
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    result = CliRunner().invoke(app, ["sweep", "--store", store.uri, "--sweep-id", SWEEP_ID])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"hubscan: {store.uri}:{CURSOR}: not what hubscan writes ({reason}): remove it to list from the start"
    ]
    assert hub.log.snapshot() == []
