"""Names and numbers from outside are data: checked against the Hub's rules, escaped in URLs, quoted
bounded in messages, never markup and never a traceback (`hubscan fingerprint` as a user runs it)."""

import json
import os
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hubscan.pipeline import errors
from hubscan.pipeline.config import Settings
from hubscan.pipeline.errors import BadListing
from hubscan.pipeline.http import HubHttp
from hubscan.pipeline.names import BadName, check_filename, check_repo_id
from hubscan.pipeline.ratelimit import VERY_LONG, rate_limit, retry_after
from hubscan.pipeline.storage.duckdb import connect
from hubscan.testbed.fakehub import FakeHub
from hubscan.testbed.writers.safetensors_write import write_safetensors

# Done-when of issue 25: no failure message above 2 kB.
MAX_MESSAGE_BYTES = 2048


def _hubscan(*args, endpoint="http://127.0.0.1:9"):
    return subprocess.run(
        [sys.executable, "-m", "hubscan.jobs.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_ENDPOINT": endpoint},
    )


def _header_file(path: Path, header: dict, data: bytes) -> None:
    raw = json.dumps(header).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)


def test_a_repo_id_that_is_markup_or_a_path_is_one_line_and_never_requested(tmp_path):
    (tmp_path / "empty-hub").mkdir()
    with FakeHub(tmp_path / "empty-hub") as hub:
        run = _hubscan(
            "fingerprint", "[/x]", "org/../../x", "--store", str(tmp_path / "store"), endpoint=hub.url
        )
        assert len(hub.log) == 0  # refused before any request
    assert run.returncode == 3, run.stderr
    assert "Traceback" not in run.stderr
    lines = [line for line in run.stderr.splitlines() if line.startswith("fail ")]
    assert lines == [
        "fail [/x]@main: repo id '[/x]' is not a Hub repo id (namespace/name of letters, digits, - _ .)",
        "fail org/../../x@main: repo id 'org/../../x' is not a Hub repo id (namespace/name of letters, digits, - _ .)",
    ]


def test_a_local_folder_named_like_markup_is_printed_as_it_is(tmp_path):
    # A local repo's id is its last two path parts: here "[/x]", a closing tag rich refused.
    folder = tmp_path / "[" / "x]"
    write_safetensors(folder / "model.safetensors", {"a.weight": np.ones((4, 4), np.float32)})
    run = _hubscan("fingerprint", str(folder), "--store", str(tmp_path / "store"))
    assert run.returncode == 0, run.stderr
    assert run.stderr.startswith("done [/x]@")


def test_a_config_size_no_int64_holds_is_not_a_size(tmp_path):
    folder = tmp_path / "org" / "huge-config"
    write_safetensors(folder / "model.safetensors", {"a.weight": np.ones((4, 4), np.float32)})
    (folder / "config.json").write_text(json.dumps({"hidden_size": 2**70, "num_hidden_layers": 2**64}))
    run = _hubscan("fingerprint", str(folder), "--store", str(tmp_path / "store"))
    assert run.returncode == 0, run.stderr  # an OverflowError traceback from pyarrow before
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize(
    "header",
    [
        {"w": {"dtype": "X" * 5_000_000, "shape": [1], "data_offsets": [0, 4]}},
        {"w" * 5_000_000: {"dtype": "F32", "shape": [1], "data_offsets": [0, 400]}},
    ],
    ids=["5-MB-dtype", "5-MB-tensor-name"],
)
def test_a_huge_value_in_a_header_makes_a_bounded_message(tmp_path, header):
    folder = tmp_path / "org" / "huge-value"
    _header_file(folder / "model.safetensors", header, bytes(4))
    store = tmp_path / "store"
    run = _hubscan("fingerprint", str(folder), "--store", str(store))
    assert run.returncode == 3
    assert len(run.stderr.encode()) < 2 * MAX_MESSAGE_BYTES  # 5 MB on stderr before
    ((message,),) = connect(store).execute("SELECT message FROM failures").fetchall()
    assert len(message.encode()) <= MAX_MESSAGE_BYTES
    assert message.startswith("org/huge-value@") and message.endswith(" bytes)")


def test_an_error_is_bounded_and_still_round_trips_through_pickle():
    exc = errors.UnsupportedDtype("org/m", "a" * 40, "w" * 100_000, "unknown dtype " + "X" * 40_000_000)
    assert len(str(exc).encode()) <= MAX_MESSAGE_BYTES
    assert exc.reason.endswith("… (cut from 40000014 bytes)")
    assert exc.filename.endswith("… (cut from 100000 bytes)")
    back = pickle.loads(pickle.dumps(exc))
    assert (str(back), back.filename) == (str(exc), exc.filename)
    # Multi-byte text is cut on a character boundary, within the byte limit.
    cjk = errors.FormatError("org/m", None, None, "模" * 10_000)
    assert len(cjk.reason.encode()) <= errors.MAX_REASON_BYTES
    assert "\ufffd" not in cjk.reason


@pytest.mark.parametrize(
    "name",
    [
        "../../../../secret/private/resolve/main/model.gguf",
        "/etc/passwd",
        "a/./model.gguf",
        "a//model.gguf",
        "dir\\model.gguf",
        "model\n.gguf",
        "model\x7f.gguf",
        "x" * 256 + ".gguf",
        "a/" * 600 + "m.gguf",
        "",
    ],
)
def test_a_file_name_outside_the_repo_never_becomes_a_url(name):
    with pytest.raises(BadName):
        check_filename(name)
    with pytest.raises(BadListing):
        HubHttp(Settings(endpoint="http://127.0.0.1:9")).resolve_url("org/m", "main", name)


def test_legal_names_are_escaped_as_url_path_text():
    http = HubHttp(Settings(endpoint="http://127.0.0.1:9"))
    url = http.resolve_url("org/模型", "refs/pr/1", "gguf dir/model #1?.gguf")
    assert url == (
        "http://127.0.0.1:9/org/%E6%A8%A1%E5%9E%8B/resolve/refs%2Fpr%2F1/gguf%20dir/model%20%231%3F.gguf"
    )
    assert check_repo_id("gpt2") == "gpt2"  # a legacy id without a namespace
    for bad in ("a/b/c", "org/m--x", "org/m.git", "-org/m", "org/" + "m" * 97, "org/m x", 7):
        with pytest.raises(BadName):
            check_repo_id(bad)


def test_rate_limit_numbers_of_any_length_are_read_without_a_traceback():
    huge = {"RateLimit": '"api";r=0;t=' + "9" * 5000, "RateLimit-Policy": '"fixed window";"api";q=500;w=300'}
    info = rate_limit(huge)
    assert info is not None and (info.remaining, info.reset_s, info.quota, info.window_s) == (
        0,
        VERY_LONG,
        500,
        300,
    )
    assert retry_after(huge) == VERY_LONG
    assert retry_after({"Retry-After": "1" * 5000}) == VERY_LONG
    assert retry_after({"Retry-After": "nan", "RateLimit": '"api";r=3;t=9'}) is None
    assert retry_after({"Retry-After": "not a date"}) is None


def test_a_header_listing_more_tensors_than_the_cap_is_refused_before_parsing(tmp_path):
    from hubscan.jobs import fingerprint

    tensors = {f"t{i}": np.full((1,), i, np.float32) for i in range(1001)}
    write_safetensors(tmp_path / "org" / "many" / "model.safetensors", tensors)
    settings = Settings(store=tmp_path / "store", max_header_entries=1000)
    summary = fingerprint.run(settings, [str(tmp_path / "org" / "many")])
    assert (summary.done, summary.failed) == (0, 1)
    assert summary.messages[0].endswith(
        ":model.safetensors: header lists 1001 tensors, more than 1000 (max_header_entries)"
    )
    summary = fingerprint.run(settings.with_(max_header_entries=1001), [str(tmp_path / "org" / "many")])
    assert (summary.done, summary.failed) == (1, 0)


def test_a_model_info_naming_a_file_outside_the_repo_never_reaches_the_other_repo(tmp_path):
    from hubscan.jobs import fingerprint
    from hubscan.testbed.fakehub.faults import Fault

    root = tmp_path / "hub"
    write_safetensors(root / "org/a/model.safetensors", {"a.weight": np.ones((4, 4), np.float32)})
    (root / "secret/private").mkdir(parents=True)
    (root / "secret/private/model.gguf").write_bytes(b"GGUF" + bytes(68))
    (root / "secret/private/.fakehub.json").write_text(json.dumps({"private": True}))
    traversing = "../../../../secret/private/resolve/main/model.gguf"
    info = {
        "id": "org/a",
        "sha": "0123456789abcdef0123456789abcdef01234567",
        "siblings": [{"rfilename": traversing}],
    }
    with FakeHub(root, tokens=["hf_granted"]) as hub:
        hub.script("/api/models/org/a/revision/main", [Fault(body=json.dumps(info).encode())])
        settings = Settings(endpoint=hub.url, token="hf_granted", store=tmp_path / "store")
        summary = fingerprint.run(settings, ["org/a"])
        assert (summary.done, summary.failed) == (0, 1)
        assert summary.messages[0].startswith(f"org/a@0123456:{traversing}: file name ")
        assert [r.path for r in hub.log.snapshot()] == ["/api/models/org/a/revision/main"]
