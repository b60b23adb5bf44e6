"""The safetensors reader on real bytes: headers validated, rows decoded, requests counted."""

import json
import struct

import ml_dtypes
import numpy as np
import pytest
from safetensors.numpy import save_file

from hubscan.pipeline.config import Settings
from hubscan.pipeline.errors import HubscanError, MalformedHeader, UnsupportedDtype
from hubscan.pipeline.readers import checkpoint, safetensors
from hubscan.pipeline.readers.byte_source import LocalFile
from hubscan.testbed.writers.safetensors_write import write_safetensors

SETTINGS = Settings()


def _tensors(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "model.layers.0.self_attn.q_proj.weight": rng.normal(0, 0.02, (256, 128)).astype(np.float32),
        "model.layers.0.input_layernorm.weight": rng.normal(1, 0.1, (128,)).astype(np.float32),
        "model.embed_tokens.weight": rng.normal(0, 0.02, (1024, 128)).astype(np.float32),
    }


def _read_all(path, settings=SETTINGS):
    with LocalFile(path, "org/m", "abc123") as src:
        header = checkpoint.read_header(src, settings)
        rows = {r.header.name: r for r in checkpoint.read_rows(src, header, settings, lambda n: "other")}
        return header, rows, src.stats


def test_header_matches_the_official_library(tmp_path):
    path = tmp_path / "model.safetensors"
    save_file(_tensors(), str(path), metadata={"format": "pt"})
    header, rows, _ = _read_all(path, SETTINGS.with_(exact=True))
    assert header.metadata == {"format": "pt"}
    for name, arr in _tensors().items():
        t = next(t for t in header.tensors if t.name == name)
        assert t.shape == arr.shape and t.dtype == "F32" and t.nbytes == arr.nbytes
        np.testing.assert_array_equal(rows[name].values.reshape(arr.shape), arr)
        assert not rows[name].sampled


@pytest.mark.parametrize("dtype,tol", [("F16", 1e-3), ("BF16", 1e-2), ("F8_E4M3", 0.07), ("F8_E5M2", 0.13)])
def test_low_precision_dtypes_decode_through_ml_dtypes(tmp_path, dtype, tol):
    arrays = _tensors()
    path = tmp_path / "m.safetensors"
    write_safetensors(path, arrays, dtypes=dtype)
    _, rows, _ = _read_all(path, SETTINGS.with_(exact=True))
    q = arrays["model.layers.0.self_attn.q_proj.weight"]
    got = rows["model.layers.0.self_attn.q_proj.weight"].values
    assert got.dtype == np.float32
    rel = np.linalg.norm(got - q) / np.linalg.norm(q)
    assert rel < tol


def test_bf16_values_are_exactly_the_ml_dtypes_cast(tmp_path):
    arrays = _tensors()
    path = tmp_path / "m.safetensors"
    write_safetensors(path, arrays, dtypes="BF16")
    _, rows, _ = _read_all(path, SETTINGS.with_(exact=True))
    name = "model.layers.0.input_layernorm.weight"
    expected = arrays[name].astype(ml_dtypes.bfloat16).astype(np.float32)
    np.testing.assert_array_equal(rows[name].values.ravel(), expected)


def test_sampled_read_fetches_header_and_planned_rows_only(tmp_path):
    path = tmp_path / "m.safetensors"
    save_file(_tensors(), str(path))
    settings = SETTINGS.with_(whole_tensor_bytes=1024, merge_gap_bytes=0)
    _, rows, stats = _read_all(path, settings)
    q = rows["model.layers.0.self_attn.q_proj.weight"]
    k = settings.rows_per_block
    assert q.sampled and q.rows.tolist() == list(range(k)) + list(range(256 - k, 256))
    np.testing.assert_array_equal(q.values, _tensors()["model.layers.0.self_attn.q_proj.weight"][q.rows])
    wanted = sum(len(r.rows) * r.header.row_bytes for r in rows.values())
    header_bytes = min(path.stat().st_size, settings.header_probe_bytes)
    assert stats.bytes <= header_bytes + wanted
    assert stats.bytes < path.stat().st_size / 2


def test_neighbouring_ranges_merge_into_one_request(tmp_path):
    path = tmp_path / "m.safetensors"
    save_file(_tensors(), str(path))
    apart = _read_all(path, SETTINGS.with_(whole_tensor_bytes=1024, merge_gap_bytes=0))[2]
    merged = _read_all(path, SETTINGS.with_(whole_tensor_bytes=1024, merge_gap_bytes=1 << 20))[2]
    assert merged.requests == 2  # the header, then one range for everything
    assert apart.requests > merged.requests


def _raw(path, header_len_field, header: bytes, data: bytes = b""):
    path.write_bytes(struct.pack("<Q", header_len_field) + header + data)
    return path


def _header_error(path):
    with LocalFile(path, "org/m", "abc1234567") as src, pytest.raises(HubscanError) as info:
        safetensors.read_header(src, SETTINGS)
    return info


def test_header_length_of_2_to_the_60_is_refused_in_one_line(tmp_path):
    path = _raw(tmp_path / "huge.safetensors", 2**60, b"{}")
    info = _header_error(path)
    assert info.type is MalformedHeader
    assert str(info.value) == f"org/m@abc1234:huge.safetensors: header length {2**60} exceeds 100000000"


def test_overlapping_offsets_are_refused(tmp_path):
    h = json.dumps(
        {
            "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
            "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]},
        }
    ).encode()
    info = _header_error(_raw(tmp_path / "o.safetensors", len(h), h, b"\0" * 24))
    assert str(info.value) == "org/m@abc1234:o.safetensors: tensors a and b overlap"


def test_offsets_past_the_end_are_refused(tmp_path):
    h = json.dumps({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode()
    info = _header_error(_raw(tmp_path / "t.safetensors", len(h), h, b"\0" * 8))
    assert info.type is MalformedHeader
    assert "lie past the end of the file" in str(info.value)


def test_size_that_does_not_match_dtype_and_shape_is_refused(tmp_path):
    h = json.dumps({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 12]}}).encode()
    info = _header_error(_raw(tmp_path / "s.safetensors", len(h), h, b"\0" * 12))
    assert (
        str(info.value)
        == "org/m@abc1234:s.safetensors: tensor a: data_offsets [0, 12] hold 12 bytes, F32[4] needs 16"
    )


def test_unknown_dtype_is_named(tmp_path):
    h = json.dumps({"a": {"dtype": "Q9_ZZ", "shape": [4], "data_offsets": [0, 4]}}).encode()
    info = _header_error(_raw(tmp_path / "u.safetensors", len(h), h, b"\0" * 4))
    assert info.type is UnsupportedDtype
    assert str(info.value) == "org/m@abc1234:u.safetensors: tensor a: unknown dtype 'Q9_ZZ'"


def test_truncated_header_and_bad_json(tmp_path):
    short = tmp_path / "e.safetensors"
    short.write_bytes(b"abc")
    assert str(_header_error(short).value) == (
        "org/m@abc1234:e.safetensors: file is 3 bytes, shorter than the 8-byte header length"
    )
    info = _header_error(_raw(tmp_path / "j.safetensors", 5, b"{nope"))
    assert "header is not valid JSON" in str(info.value)


def test_header_larger_than_the_probe_costs_one_more_request(tmp_path):
    arrays = {f"t{i:05d}": np.full((2,), i, np.float32) for i in range(3000)}
    path = tmp_path / "many.safetensors"
    save_file(arrays, str(path))
    with LocalFile(path, "org/m") as src:
        header = safetensors.read_header(src, SETTINGS.with_(header_probe_bytes=4096))
        assert len(header.tensors) == 3000
        assert src.stats.requests == 2
