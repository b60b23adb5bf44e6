"""The fake hub answers the real huggingface_hub client and raw range requests the way the Hub does."""

from __future__ import annotations

import hashlib
import json
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import numpy as np
import pytest
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import (
    BadRequestError,
    GatedRepoError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import http_backoff, parse_ratelimit_headers

from hubscan.testbed.fakehub import FakeHub, Fault
from hubscan.testbed.fakehub.listing import encode_cursor

GRANTED = "hf_granted_token"
ZOO = 7  # repos zoo/m0..m6, enough for three pages of 3
README = "---\nbase_model: org/base\nlicense: mit\nlibrary_name: transformers\ntags:\n- demo\n---\n# Model\n"


def safetensors_bytes(tensors: dict[str, np.ndarray]) -> bytes:
    """A safetensors file written by hand: u64 LE header length, JSON header, raw little-endian data."""
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset, blobs = 0, []
    for name, arr in tensors.items():
        data = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
        dtype = {"float32": "F32", "float16": "F16"}[arr.dtype.name]
        header[name] = {
            "dtype": dtype,
            "shape": list(arr.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        offset += len(data)
        blobs.append(data)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + b"".join(blobs)


def make_repo(root: Path, repo_id: str, files: dict[str, bytes | str], overrides: dict | None = None) -> Path:
    """Write a repo folder, with an optional .fakehub.json."""
    folder = root / repo_id
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    if overrides is not None:
        (folder / ".fakehub.json").write_text(json.dumps(overrides))
    return folder


WEIGHTS = safetensors_bytes(
    {"w1": np.arange(12, dtype=np.float32).reshape(3, 4), "w2": np.ones((2, 5), dtype=np.float16)}
)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeHub]:
    root = tmp_path_factory.mktemp("hub")
    make_repo(
        root,
        "org/model",
        {
            "model.safetensors": WEIGHTS,
            "config.json": json.dumps({"model_type": "demo", "hidden_size": 4}),
            "README.md": README,
            "nested/extra.txt": "x" * 100,
        },
        {"downloads": 50, "likes": 3, "pipeline_tag": "text-generation"},
    )
    (root / "org/model/.fakehub-notes").write_text("never served")
    make_repo(root, "org/gated", {"model.safetensors": WEIGHTS, "config.json": "{}"}, {"gated": "manual"})
    make_repo(root, "org/private", {"config.json": "{}"}, {"private": True})
    for i in range(ZOO):
        make_repo(
            root, f"zoo/m{i}", {"config.json": "{}"}, {"downloads": i * 10, "tags": ["zoo", f"n{i % 2}"]}
        )
    with FakeHub(root, page_size=3, tokens=[GRANTED]) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(hub: FakeHub) -> None:
    hub.reset()


@pytest.fixture
def api(hub: FakeHub) -> HfApi:
    return HfApi(endpoint=hub.url, token=False)


def get(hub: FakeHub, path: str, **headers: str) -> httpx2.Response:
    return httpx2.get(hub.url + path, headers=headers, timeout=5)


def test_model_info_sha_siblings_and_lfs(hub: FakeHub, api: HfApi) -> None:
    info = api.model_info("org/model", files_metadata=True)
    head = httpx2.head(f"{hub.url}/org/model/resolve/main/config.json", timeout=5)
    assert info.sha is not None and len(info.sha) == 40 and info.sha == head.headers["X-Repo-Commit"]
    assert info.siblings is not None
    by_name = {s.rfilename: s for s in info.siblings}
    assert sorted(by_name) == ["README.md", "config.json", "model.safetensors", "nested/extra.txt"]
    weights = by_name["model.safetensors"]
    assert weights.size == len(WEIGHTS) and weights.lfs is not None
    assert weights.lfs.sha256 == hashlib.sha256(WEIGHTS).hexdigest()
    assert by_name["config.json"].lfs is None
    assert info.safetensors is not None
    assert info.safetensors.parameters == {"F32": 12, "F16": 10} and info.safetensors.total == 22
    assert info.card_data is not None and info.card_data.base_model == "org/base"
    assert info.config == {"model_type": "demo", "hidden_size": 4}
    assert (info.downloads, info.likes, info.pipeline_tag, info.gated) == (50, 3, "text-generation", False)
    assert "base_model:org/base" in (info.tags or [])


def test_siblings_carry_sizes_only_with_blobs(api: HfApi) -> None:
    info = api.model_info("org/model")
    assert info.siblings is not None and {s.size for s in info.siblings} == {None}


def test_expand_returns_exactly_the_requested_fields(hub: FakeHub) -> None:
    listed = get(hub, "/api/models?author=org&expand=sha&expand=gated").json()
    assert [set(e) for e in listed] == [{"_id", "id", "sha", "gated"}] * 2  # private repo hidden
    info = get(hub, "/api/models/org/model?expand=baseModels").json()
    assert info["baseModels"] == {"relation": "finetune", "models": [{"id": "org/base"}]}
    assert set(info) == {"_id", "id", "baseModels"}


def test_gguf_summary_and_quantized_lineage(hub: FakeHub, tmp_path: Path) -> None:
    import gguf

    writer = gguf.GGUFWriter(str(tmp_path / "m.gguf"), arch="llama")
    writer.add_context_length(128)
    writer.add_token_list(["a", "b", "c"])
    writer.add_tensor("w", np.zeros((2, 3), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    files: dict[str, bytes | str] = {
        "m.gguf": (tmp_path / "m.gguf").read_bytes(),
        "README.md": "---\nbase_model: org/model\n---\n",
    }
    make_repo(hub.root, "quant/m-gguf", files)
    info = get(hub, "/api/models/quant/m-gguf?expand=gguf&expand=baseModels").json()
    assert info["gguf"] == {"total": 6, "architecture": "llama", "context_length": 128}
    assert info["baseModels"]["relation"] == "quantized"
    assert [e["id"] for e in get(hub, "/api/models?filter=gguf").json()] == ["quant/m-gguf"]


def test_listing_refuses_info_only_expand(api: HfApi) -> None:
    with pytest.raises(BadRequestError):
        list(api.list_models(expand=["baseModels"]))


def test_list_models_follows_link_pages(hub: FakeHub, api: HfApi) -> None:
    ids = [m.id for m in api.list_models(author="zoo")]
    assert ids == [f"zoo/m{i}" for i in range(ZOO)]
    pages = hub.log.where(path="/api/models")
    assert (
        len(pages) == 3 and "cursor=" not in pages[0].query and all("cursor=" in p.query for p in pages[1:])
    )


def test_list_models_filters_and_sort(api: HfApi) -> None:
    assert [m.id for m in api.list_models(filter="n1", sort="downloads")] == ["zoo/m5", "zoo/m3", "zoo/m1"]
    assert [m.id for m in api.list_models(search="M6")] == ["zoo/m6"]
    assert [m.id for m in api.list_models(pipeline_tag="text-generation")] == ["org/model"]
    assert [m.id for m in api.list_models(filter=["zoo", "n0"], limit=2)] == ["zoo/m0", "zoo/m2"]


def test_raw_listing_link_header_and_cursor(hub: FakeHub) -> None:
    first = get(hub, "/api/models?author=zoo&limit=2")
    assert [e["id"] for e in first.json()] == ["zoo/m0", "zoo/m1"]
    nxt = first.links["next"]["url"]
    assert nxt.startswith(f"{hub.url}/api/models?") and "limit=2" in nxt and "cursor=" in nxt
    assert [e["id"] for e in httpx2.get(nxt, timeout=5).json()] == ["zoo/m2", "zoo/m3"]
    assert get(hub, "/api/models?cursor=not-a-cursor").status_code == 400


def test_synthetic_listing_pages_through(hub: FakeHub, api: HfApi) -> None:
    real = len(list(api.list_models()))
    hub.synthetic_models, hub.page_size = 10_000, 1000
    ids = [m.id for m in api.list_models(author="synthetic", expand=["sha"])]
    assert len(ids) == len(set(ids)) == 10_000 and ids[-1] == "synthetic/model-010000"
    assert sum("author=synthetic" in r.query for r in hub.log.where(path="/api/models")) == 10
    everything = [m.id for m in api.list_models()]
    assert len(everything) == real + 10_000 and everything[real] == "synthetic/model-000001"


def test_safetensors_metadata_through_client(api: HfApi) -> None:
    meta = api.get_safetensors_metadata("org/model")
    tensors = meta.files_metadata["model.safetensors"].tensors
    assert (tensors["w1"].dtype, tensors["w1"].shape, tensors["w2"].dtype) == ("F32", [3, 4], "F16")


def test_hf_hub_download_and_tree(hub: FakeHub, api: HfApi, tmp_path: Path) -> None:
    path = hf_hub_download("org/model", "nested/extra.txt", endpoint=hub.url, token=False, cache_dir=tmp_path)
    assert Path(path).read_text() == "x" * 100
    assert sorted(api.list_repo_files("org/model")) == [
        "README.md",
        "config.json",
        "model.safetensors",
        "nested/extra.txt",
    ]


def signed_url(hub: FakeHub, path: str = "/org/model/resolve/main/model.safetensors") -> str:
    """The CDN URL the Hub's 302 for an LFS file points at."""
    redirect = get(hub, path)
    assert redirect.status_code == 302
    return redirect.headers["Location"]


def test_lfs_resolve_redirects_to_a_signed_url_on_another_origin(hub: FakeHub) -> None:
    r = get(hub, "/org/model/resolve/main/model.safetensors", Range="bytes=8-23")
    sha256 = f'"{hashlib.sha256(WEIGHTS).hexdigest()}"'
    assert (r.status_code, r.content, r.headers["X-Linked-ETag"], r.headers["ETag"]) == (
        302,
        b"",
        sha256,
        sha256,
    )
    assert r.headers["X-Linked-Size"] == str(len(WEIGHTS)) and len(r.headers["X-Repo-Commit"]) == 40
    assert r.headers["Location"].startswith(hub.cdn_url + "/cdn/org/model/") and hub.cdn_url != hub.url
    assert "RateLimit" in r.headers
    small = get(hub, "/org/model/resolve/main/config.json")  # not LFS: answered directly
    assert small.status_code == 200 and "X-Linked-Size" not in small.headers
    assert [(rec.origin, rec.status) for rec in hub.log] == [("hub", 302), ("hub", 200)]


def test_ranged_get_sends_exact_bytes(hub: FakeHub) -> None:
    url = signed_url(hub)
    hub.log.clear()
    r = httpx2.get(url, headers={"Range": "bytes=8-23"}, timeout=5)
    assert r.status_code == 206 and r.content == WEIGHTS[8:24]
    assert r.headers["Content-Range"] == f"bytes 8-23/{len(WEIGHTS)}"
    assert r.headers["ETag"] == f'"{hashlib.sha256(WEIGHTS).hexdigest()}"' and "RateLimit" not in r.headers
    assert httpx2.get(url, headers={"Range": "bytes=-10"}, timeout=5).content == WEIGHTS[-10:]
    assert httpx2.get(url, headers={"Range": f"bytes={len(WEIGHTS) - 4}-"}, timeout=5).content == WEIGHTS[-4:]
    whole = httpx2.get(url, timeout=5)
    assert whole.status_code == 200 and whole.content == WEIGHTS
    assert [(rec.origin, rec.filename, rec.bytes_sent) for rec in hub.log] == [
        ("cdn", "model.safetensors", n) for n in (16, 10, 4, len(WEIGHTS))
    ]
    assert hub.log.totals() == {"cdn": (4, 30 + len(WEIGHTS))}


def test_plain_mirror_serves_ranges_at_resolve(tmp_path: Path) -> None:
    make_repo(tmp_path, "org/m", {"model.safetensors": WEIGHTS})
    with FakeHub(tmp_path, cdn=False) as mirror:
        r = get(mirror, "/org/m/resolve/main/model.safetensors", Range="bytes=8-23")
        assert (
            r.status_code == 206
            and r.content == WEIGHTS[8:24]
            and r.headers["X-Linked-Size"] == str(len(WEIGHTS))
        )


def test_unsatisfiable_range_is_416(hub: FakeHub) -> None:
    r = httpx2.get(signed_url(hub), headers={"Range": f"bytes={len(WEIGHTS)}-"}, timeout=5)
    assert r.status_code == 416 and r.headers["Content-Range"] == f"bytes */{len(WEIGHTS)}"


def test_head_sends_headers_only(hub: FakeHub) -> None:
    r = httpx2.head(f"{hub.url}/org/model/resolve/main/config.json", timeout=5)
    body = (hub.root / "org/model/config.json").read_bytes()
    assert r.status_code == 200 and r.headers["Content-Length"] == str(len(body))
    blob = hashlib.sha1(b"blob %d\0" % len(body) + body).hexdigest()
    assert r.headers["ETag"] == f'"{blob}"' and "X-Linked-Size" not in r.headers
    assert hub.log[0].bytes_sent == 0


def test_gated_repo(hub: FakeHub, api: HfApi, tmp_path: Path) -> None:
    assert api.model_info("org/gated").gated == "manual"
    with pytest.raises(GatedRepoError):
        hf_hub_download("org/gated", "config.json", endpoint=hub.url, token=False, cache_dir=tmp_path)
    url = "/org/gated/resolve/main/config.json"
    assert get(hub, url).status_code == 401
    denied = get(hub, url, Authorization="Bearer hf_someone_else")
    assert (denied.status_code, denied.headers["X-Error-Code"]) == (403, "GatedRepo")
    assert get(hub, url, Authorization=f"Bearer {GRANTED}").status_code == 200


def test_missing_and_private_repos(hub: FakeHub, api: HfApi, tmp_path: Path) -> None:
    for repo_id in ("org/nope", "org/private"):
        with pytest.raises(RepositoryNotFoundError) as info:
            api.model_info(repo_id)
        assert not isinstance(info.value, GatedRepoError) and info.value.response.status_code == 401
        with pytest.raises(RepositoryNotFoundError):
            hf_hub_download(repo_id, "config.json", endpoint=hub.url, token=False, cache_dir=tmp_path)
    r = get(hub, "/api/models/org/nope")
    assert r.headers["X-Error-Code"] == "RepoNotFound" and r.json() == {"error": "Repository not found"}
    assert get(hub, "/api/models/org/private", Authorization=f"Bearer {GRANTED}").status_code == 200


def test_missing_file_and_traversal(hub: FakeHub, tmp_path: Path) -> None:
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download("org/model", "nope.bin", endpoint=hub.url, token=False, cache_dir=tmp_path)
    for name in (".fakehub-notes", "..%2F..%2Fzoo%2Fm0%2Fconfig.json", "nested%2F..%2Fconfig.json"):
        r = get(hub, f"/org/model/resolve/main/{name}")
        assert (r.status_code, r.headers["X-Error-Code"]) == (404, "EntryNotFound"), name
    assert get(hub, "/..%2Forg/model/resolve/main/config.json").headers["X-Error-Code"] == "RepoNotFound"


def test_card_yaml_dates_survive_json(hub: FakeHub, api: HfApi) -> None:
    make_repo(hub.root, "scratch/dated", {"README.md": "---\nrelease: 2024-01-02\n---\n"})
    info = api.model_info("scratch/dated")
    assert info.card_data is not None and info.card_data.to_dict()["release"] == "2024-01-02"


def test_revision_moves_when_files_change(hub: FakeHub, api: HfApi, tmp_path: Path) -> None:
    folder = make_repo(hub.root, "scratch/mutable", {"a.txt": "one"})
    old = api.model_info("scratch/mutable").sha
    assert old is not None and api.model_info("scratch/mutable").sha == old
    (folder / "a.txt").write_text("two")
    new = api.model_info("scratch/mutable").sha
    assert new is not None and new != old
    assert api.model_info("scratch/mutable", revision=new).sha == new
    with pytest.raises(RevisionNotFoundError):
        api.model_info("scratch/mutable", revision=old)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(
            "scratch/mutable", "a.txt", revision=old, endpoint=hub.url, token=False, cache_dir=tmp_path
        )


def test_scripted_429_then_200_with_backoff(hub: FakeHub) -> None:
    hub.script("config.json", [Fault(status=429)])
    url = f"{hub.url}/org/model/resolve/main/config.json"
    r = http_backoff("GET", url, base_wait_time=0.01, timeout=5)
    assert r.status_code == 200
    assert [(rec.status, rec.fault) for rec in hub.log] == [(429, "429"), (200, None)]


def test_a_scripted_mirror_sends_its_own_headers_body_and_listing_entries(hub: FakeHub) -> None:
    loop = f'<{hub.url}/api/models>; rel="next"'
    hub.script("/api/models", [Fault(headers=(("Link", loop), ("RateLimit", '"api";r=0;t=9')), body=b"{}")])
    scripted, normal = get(hub, "/api/models"), get(hub, "/api/models")
    assert (scripted.headers["Link"], scripted.headers["RateLimit"], scripted.content) == (
        loop,
        '"api";r=0;t=9',
        b"{}",
    )  # replacing the real headers of that name, not added beside them
    assert normal.headers["Link"] != loop and normal.json()[0]["id"] != "x"
    assert [rec.fault for rec in hub.log] == ["headers+body", None]
    hub.listing_extra = [{"sha": 123}, 7]
    first = get(hub, "/api/models").json()
    assert first[-2:] == [{"sha": 123}, 7]  # on the first page only, as they are
    assert get(hub, "/api/models?cursor=" + encode_cursor(3)).json()[-1] != 7


def test_script_steps_in_order_then_normal(hub: FakeHub) -> None:
    hub.script("/api/models/org/*", [429, 503, "ok"], method="GET")
    statuses = [get(hub, "/api/models/org/model") for _ in range(4)]
    assert [r.status_code for r in statuses] == [429, 503, 200, 200]
    assert statuses[0].headers["Retry-After"] == "1" and "Retry-After" not in statuses[1].headers
    assert hub.pending_steps() == 0


def test_cut_sends_a_short_body(hub: FakeHub, tmp_path: Path) -> None:
    hub.script("model.safetensors", ["cut"], origin="cdn")
    with pytest.raises(httpx2.RemoteProtocolError):
        httpx2.get(signed_url(hub), timeout=5)
    assert [(r.fault, r.bytes_sent) for r in hub.log.where(origin="cdn")] == [("cut", len(WEIGHTS) // 2)]
    hub.reset()
    hub.script("model.safetensors", [Fault(cut=True, cut_after=40)], method="GET", origin="cdn")
    path = hf_hub_download(
        "org/model", "model.safetensors", endpoint=hub.url, token=False, cache_dir=tmp_path
    )
    assert Path(path).read_bytes() == WEIGHTS  # the client retried after the short body
    first, retry = hub.log.where(method="GET", origin="cdn")
    assert (first.fault, first.status, first.bytes_sent) == ("cut", 200, 40)
    # httpx drops a partial chunk on a protocol error, so a small file is fetched again from 0
    assert retry.fault is None and retry.status == 200 and retry.bytes_sent == len(WEIGHTS)


def test_slow_step_trips_client_timeout(hub: FakeHub) -> None:
    hub.slow_seconds = 0.3
    hub.script("config.json", ["slow"])
    with pytest.raises(httpx2.ReadTimeout):
        httpx2.get(f"{hub.url}/org/model/resolve/main/config.json", timeout=0.1)
    assert hub.log[0].fault == "slow" and hub.log[0].duration >= 0.3


def test_latency_delays_every_response(hub: FakeHub) -> None:
    hub.latency = 0.15
    start = time.monotonic()
    get(hub, "/api/models/org/model")
    assert time.monotonic() - start >= 0.15


def test_ratelimit_headers_parse(hub: FakeHub) -> None:
    api_info = parse_ratelimit_headers(get(hub, "/api/models/org/model").headers)
    assert api_info is not None
    assert (api_info.resource_type, api_info.remaining, api_info.limit, api_info.window_seconds) == (
        "api",
        499,
        500,
        300,
    )
    file_info = parse_ratelimit_headers(get(hub, "/org/model/resolve/main/config.json").headers)
    assert file_info is not None and (file_info.resource_type, file_info.remaining) == ("resolvers", 2999)


def test_quota_is_enforced_per_bucket_and_window(hub: FakeHub) -> None:
    hub.set_quota({"api": 2}, window=1.0)
    codes = [get(hub, "/api/models/org/model").status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    refused = hub.log[-1]
    assert refused.status == 429 and refused.fault is None
    r = get(hub, "/api/models/org/model")
    info = parse_ratelimit_headers(r.headers)
    assert r.headers["Retry-After"] == "1" and info is not None and info.remaining == 0
    assert get(hub, "/org/model/resolve/main/config.json").status_code == 200  # other bucket
    time.sleep(1.0)
    assert get(hub, "/api/models/org/model").status_code == 200  # next window


def test_fault_steps_are_validated() -> None:
    with pytest.raises(TypeError):
        Fault.of("explode", slow_seconds=1)
    with pytest.raises(TypeError):
        Fault.of(True, slow_seconds=1)
    with pytest.raises(ValueError):
        Fault(status=503, cut=True)


def test_module_entry_point_serves(tmp_path: Path) -> None:
    make_repo(tmp_path, "org/cli", {"config.json": "{}"})
    proc = subprocess.Popen(
        [sys.executable, "-m", "hubscan.testbed.fakehub", str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        assert [m["id"] for m in httpx2.get(f"{url}/api/models", timeout=5).json()] == ["org/cli"]
    finally:
        proc.terminate()
        proc.wait(timeout=5)
