"""The fake Hub's CDN origin: signed URLs that expire, the multi-range dialects, a Range-ignoring
mode, and per-origin counts, checked with raw HTTP so the client under test is not involved."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from hubscan.testbed.fakehub import FakeHub
from hubscan.testbed.fakehub.cdn import MULTIPART_BOUNDARY

DATA = bytes(range(256)) * 400  # 102,400 bytes: every offset's byte is known


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeHub]:
    root = tmp_path_factory.mktemp("cdnhub")
    (root / "org/m").mkdir(parents=True)
    (root / "org/m/model.safetensors").write_bytes(DATA)
    (root / "org/m/tokenizer.json").write_text("{}")
    with FakeHub(root) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(hub: FakeHub) -> None:
    hub.reset()


def signed(hub: FakeHub, **headers: str) -> str:
    r = httpx2.get(f"{hub.url}/org/m/resolve/main/model.safetensors", headers=headers, timeout=5)
    assert r.status_code == 302
    return r.headers["Location"]


def test_signed_url_expires_with_403_and_no_gate_code(hub: FakeHub) -> None:
    hub.signed_ttl = 1.0
    url = signed(hub)
    assert httpx2.get(url, headers={"Range": "bytes=0-3"}, timeout=5).status_code == 206
    time.sleep(2.05)  # expiry is rounded up to a whole second
    expired = httpx2.get(url, timeout=5)
    assert expired.status_code == 403 and "X-Error-Code" not in expired.headers
    assert b"expired" in expired.content
    forged = httpx2.get(url.replace("Signature=", "Signature=0"), timeout=5)
    assert forged.status_code == 403


def test_authorization_is_recorded_per_origin(hub: FakeHub) -> None:
    url = signed(hub, Authorization="Bearer hf_x")
    httpx2.get(url, headers={"Range": "bytes=0-3"}, timeout=5)
    assert [(r.origin, r.authorization) for r in hub.log] == [("hub", True), ("cdn", False)]


def test_multipart_answer_holds_each_range(hub: FakeHub) -> None:
    r = httpx2.get(signed(hub), headers={"Range": "bytes=0-9,1000-1009"}, timeout=5)
    assert r.status_code == 206 and r.headers["Content-Type"].endswith(f"boundary={MULTIPART_BOUNDARY}")
    assert f"Content-Range: bytes 1000-1009/{len(DATA)}".encode() in r.content
    assert DATA[0:10] in r.content and DATA[1000:1010] in r.content
    assert int(r.headers["Content-Length"]) == len(r.content)


@pytest.mark.parametrize(
    ("mode", "ranges", "status", "length"),
    [
        ("whole", "bytes=0-9,1000-1009", 200, len(DATA)),
        ("single", "bytes=0-9,1000-1009", 206, 10),
        ("416", "bytes=0-9,1000-1009", 416, 0),
        ("multipart", "bytes=1000-1009,0-9", 200, len(DATA)),  # not ascending: whole, as CloudFront
        ("multipart", "bytes=0-99,50-59", 200, len(DATA)),  # overlapping
    ],
)
def test_multirange_dialects(hub: FakeHub, mode: str, ranges: str, status: int, length: int) -> None:
    hub.multirange = mode
    r = httpx2.get(signed(hub), headers={"Range": ranges}, timeout=5)
    assert (r.status_code, len(r.content)) == (status, length)


def test_ignore_range_mode_sends_the_whole_file_everywhere(hub: FakeHub) -> None:
    hub.ignore_range = True
    assert httpx2.get(signed(hub), headers={"Range": "bytes=5-9"}, timeout=5).status_code == 200
    hub.cdn = False  # the resolve endpoint of a plain mirror ignores it too
    try:
        r = httpx2.get(f"{hub.url}/org/m/resolve/main/model.safetensors", headers={"Range": "bytes=5-9"})
    finally:
        hub.cdn = True
    assert (r.status_code, len(r.content)) == (200, len(DATA))


def test_resolvers_quota_counts_the_hub_host_only(hub: FakeHub) -> None:
    hub.set_quota({"resolvers": 1}, window=60)
    url = signed(hub)
    for _ in range(3):  # the CDN is in no bucket
        r = httpx2.get(url, headers={"Range": "bytes=0-0"}, timeout=5)
        assert r.status_code == 206 and "RateLimit" not in r.headers
    refused = httpx2.get(f"{hub.url}/org/m/resolve/main/model.safetensors", timeout=5)
    assert refused.status_code == 429 and refused.headers["RateLimit"].startswith('"resolvers";r=0;')
    assert hub.log.totals() == {"hub": (2, refused.num_bytes_downloaded), "cdn": (3, 3)}


def test_drip_sends_the_body_slowly(hub: FakeHub) -> None:
    hub.script("model.safetensors", ["drip"], origin="cdn")
    start = time.monotonic()
    r = httpx2.get(signed(hub), headers={"Range": "bytes=0-4095"}, timeout=5)
    assert r.content == DATA[:4096] and time.monotonic() - start >= 0.2  # four pieces, 50 ms apart
    assert [r.fault for r in hub.log.where(origin="cdn")] == ["drip"]


def test_cdn_off_has_no_second_origin(tmp_path: Path) -> None:
    (tmp_path / "org/m").mkdir(parents=True)
    with FakeHub(tmp_path, cdn=False) as mirror, pytest.raises(RuntimeError):
        _ = mirror.cdn_url
