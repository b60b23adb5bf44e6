"""RemoteFile and HubHttp against every server shape of the fake Hub, asserted on its per-origin log."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hubscan.pipeline.config import Settings
from hubscan.pipeline.errors import FetchError, RepoGated
from hubscan.pipeline.http import HubHttp, Where
from hubscan.pipeline.readers import remote
from hubscan.pipeline.readers.remote import RemoteFile, signed_url_expiry
from hubscan.testbed.fakehub import FakeHub

DATA = bytes(range(256)) * 4096  # 1 MiB: every offset's byte is known
TOKEN = "hf_reader_token"
WEIGHTS = "model.safetensors"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeHub]:
    root = tmp_path_factory.mktemp("remotehub")
    for name in ("org/a", "org/b", "org/c"):
        (root / name).mkdir(parents=True)
        (root / name / WEIGHTS).write_bytes(DATA)
    (root / "org/a/tokenizer.json").write_bytes(b'{"model": {"vocab": {}}}' + b" " * 5000)
    with FakeHub(root, tokens=[TOKEN]) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(hub: FakeHub) -> None:
    hub.reset()


@pytest.fixture
def settings(hub: FakeHub) -> Settings:
    return Settings(endpoint=hub.url, token=TOKEN, backoff_base_s=0.01, backoff_max_s=0.02)


def open_file(
    settings: Settings, repo: str = "org/a", name: str = WEIGHTS, size: int | None = len(DATA)
) -> RemoteFile:
    return RemoteFile(HubHttp(settings), repo, "main", name, size)


SPANS = [(0, 100), (5000, 6000), (300_000, 300_016), (len(DATA) - 10, len(DATA))]


def test_one_resolve_per_file_then_every_range_on_the_cdn(hub: FakeHub, settings: Settings) -> None:
    f = open_file(settings)
    assert [f.read(b, e) for b, e in SPANS] == [DATA[b:e] for b, e in SPANS]
    hubside, cdn = hub.log.where(origin="hub"), hub.log.where(origin="cdn")
    assert [(r.filename, r.status) for r in hubside] == [(WEIGHTS, 302)]
    assert len(cdn) == len(SPANS) and all(r.status == 206 for r in cdn)
    # The token goes to the Hub host and never to the signed URL's origin.
    assert hubside[0].authorization and not any(r.authorization for r in cdn)
    assert f.http.log.requests == {"resolvers": 1, "cdn": len(SPANS)}
    assert f.stats.bytes == sum(e - b for b, e in SPANS) == sum(r.bytes_sent for r in cdn)
    assert f.sha256 is not None and len(f.sha256) == 64


def test_size_comes_from_the_redirect_and_the_probe_is_the_header_read(
    hub: FakeHub, settings: Settings
) -> None:
    f = open_file(settings, size=None)
    assert f.size == len(DATA)
    # The probe stops at the redirect (a copy is found by its sha256 before any byte is read).
    assert f.read(0, 1000) == DATA[:1000]
    assert [(r.origin, r.status) for r in hub.log] == [("hub", 302), ("cdn", 206)]


def test_concurrent_first_reads_resolve_once(hub: FakeHub, settings: Settings) -> None:
    from concurrent.futures import ThreadPoolExecutor

    f = open_file(settings)
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda i: f.read(i * 1000, i * 1000 + 10), range(16)))
    assert got == [DATA[i * 1000 : i * 1000 + 10] for i in range(16)]
    assert len(hub.log.where(origin="hub")) == 1


def test_urls_expiring_every_second_are_resolved_again(hub: FakeHub, settings: Settings) -> None:
    hub.signed_ttl = 1.0
    f = open_file(settings)
    for i in range(5):
        assert f.read(i * 10, i * 10 + 10) == DATA[i * 10 : i * 10 + 10]
        time.sleep(0.5)
    resolves = hub.log.where(origin="hub")
    assert 2 <= len(resolves) <= 5 and not [r for r in hub.log if r.status == 403]


def test_an_expired_url_is_never_reported_as_gated(hub: FakeHub, settings: Settings) -> None:
    hub.signed_ttl = -1.0  # every signed URL is already expired
    f = open_file(settings)
    with pytest.raises(FetchError) as info:
        f.read(0, 10)
    assert not isinstance(info.value, RepoGated)
    assert (
        str(info.value)
        == "org/a@main:model.safetensors: CDN answered HTTP 403: signed URL refused (expired or invalid)"
    )
    # resolved, refused, resolved again, refused again: then it gives up
    assert [(r.origin, r.status) for r in sorted(hub.log, key=lambda r: r.time)] == [
        ("hub", 302),
        ("cdn", 403),
    ] * 2


def test_small_file_answered_directly_is_fetched_whole_once(hub: FakeHub, settings: Settings) -> None:
    raw = (hub.root / "org/a/tokenizer.json").read_bytes()
    f = open_file(settings, name="tokenizer.json", size=len(raw))
    assert [f.read(0, 8), f.read(100, 120), f.read(len(raw) - 4, len(raw))] == [
        raw[:8],
        raw[100:120],
        raw[-4:],
    ]
    assert [(r.origin, r.status) for r in hub.log] == [("hub", 200)] and f.size == len(raw)


def test_plain_mirror_reads_ranges_at_resolve(tmp_path: Path) -> None:
    (tmp_path / "org/a").mkdir(parents=True)
    (tmp_path / "org/a" / WEIGHTS).write_bytes(DATA)
    with FakeHub(tmp_path, cdn=False) as mirror:
        # Above small_file_bytes a file is read range by range, each range a resolver request.
        f = open_file(Settings(endpoint=mirror.url, small_file_bytes=len(DATA) // 2))
        assert [f.read(b, e) for b, e in SPANS] == [DATA[b:e] for b, e in SPANS]
        assert [r.status for r in mirror.log] == [206] * len(SPANS)


def test_a_server_ignoring_range_cannot_make_a_read_unbounded(hub: FakeHub, settings: Settings) -> None:
    hub.ignore_range = True
    f = open_file(settings)
    assert f.read(0, 100) == DATA[:100]  # a prefix: served from what arrived before we stopped
    with pytest.raises(
        FetchError, match=r"server ignored Range: HTTP 200 for bytes 500000-500009; stopped after \d+ bytes"
    ):
        f.read(500_000, 500_010)
    # Each read stopped a socket buffer's worth past its slack; the 1 MiB file was never pulled.
    assert f.stats.bytes < 2 * (100 + 4096 + 256 * 1024)
    assert all(r.status == 200 for r in hub.log.where(origin="cdn"))


def test_slow_drip_body_hits_the_total_deadline_and_is_retried(hub: FakeHub, settings: Settings) -> None:
    hub.script(WEIGHTS, ["drip"], origin="cdn")
    f = open_file(settings.with_(request_deadline_s=0.2))
    assert f.read(0, 200_000) == DATA[:200_000]  # 200 pieces 50 ms apart would take 10 s
    faults = [r.fault for r in sorted(hub.log.where(origin="cdn"), key=lambda r: r.time)]
    assert faults == ["drip", None] and f.http.log.retries == 1


def test_connection_refused_fails_at_once_naming_the_endpoint() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before the request: nothing listens there
    http = HubHttp(Settings(endpoint=f"http://127.0.0.1:{port}"))
    start = time.monotonic()
    with pytest.raises(FetchError, match=rf"cannot connect to http://127.0.0.1:{port}/api/models"):
        http.get(f"http://127.0.0.1:{port}/api/models", Where("<listing>"))
    # one quick retry, not the 15 s of the full backoff (the bound leaves a loaded machine room)
    assert time.monotonic() - start < 8.0 and http.log.requests["api"] == 2


def test_oversized_json_is_refused_not_buffered(hub: FakeHub, settings: Settings) -> None:
    hub.synthetic_models, hub.page_size = 500, 500
    http = HubHttp(settings.with_(max_json_bytes=10_000))
    with pytest.raises(FetchError, match="exceeds 10000 bytes"):
        http.get_json(f"{hub.url}/api/models", Where("<listing>"))
    assert http.log.bytes < 10_000 + 256 * 1024


def test_spent_quota_window_holds_requests_instead_of_drawing_429(hub: FakeHub, settings: Settings) -> None:
    hub.set_quota({"resolvers": 2}, window=2.0)
    start = time.monotonic()
    for repo in ("org/a", "org/b", "org/c"):
        assert open_file(settings, repo=repo).read(0, 4) == DATA[:4]
    assert not [r for r in hub.log if r.status == 429]
    assert time.monotonic() - start >= 0.9  # the third resolve waited for the next window


def test_signed_url_expiry_formats() -> None:
    assert signed_url_expiry("https://cdn/x?Expires=1700000000&Signature=a") == 1_700_000_000
    s3 = "https://s3/x?X-Amz-Date=20250101T000000Z&X-Amz-Expires=3600&X-Amz-Signature=b"
    assert signed_url_expiry(s3) == 1_735_689_600 + 3600
    assert signed_url_expiry("https://cdn/x") is None


@pytest.fixture
def fresh_origins() -> Iterator[None]:
    # Which origins refused multi-range is remembered for the process: each test starts clean.
    remote._SINGLE_RANGE_ORIGINS.clear()
    yield
    remote._SINGLE_RANGE_ORIGINS.clear()


MANY = [(1000, 1100), (5000, 6000), (300_000, 300_016), (700_000, 700_500)]


def test_multirange_reads_many_ranges_in_one_cdn_request(
    hub: FakeHub, settings: Settings, fresh_origins: None
) -> None:
    f = open_file(settings.with_(multirange_ranges=8))
    f.read(0, 10)  # resolves
    hub.log.clear()
    assert f.ranges_per_request == 8
    assert f.read_many(MANY) == [DATA[b:e] for b, e in MANY]
    assert [(r.status, r.range.count(",")) for r in hub.log.where(origin="cdn")] == [(206, 3)]


@pytest.mark.parametrize("mode", ["whole", "single", "416"])
def test_a_cdn_refusing_multirange_is_remembered_and_read_range_by_range(
    hub: FakeHub, settings: Settings, fresh_origins: None, mode: str
) -> None:
    hub.multirange = mode
    f = open_file(settings.with_(multirange_ranges=8))
    f.read(0, 10)
    hub.log.clear()
    assert f.read_many(MANY) == [DATA[b:e] for b, e in MANY]
    assert f.ranges_per_request == 1  # and the next file from this origin will not try again
    cdn = hub.log.where(origin="cdn")
    assert len(cdn) == 1 + len(MANY) and sum("," in (r.range or "") for r in cdn) == 1
    # A whole-file answer is abandoned at its headers: the client keeps no more than it planned.
    assert f.stats.bytes <= 10 + sum(e - b for b, e in MANY) + 4096
