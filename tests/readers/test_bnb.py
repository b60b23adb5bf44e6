"""bitsandbytes 4-bit (NF4/FP4, with and without double quantisation) and 8-bit, rebuilt by rows.

Real safetensors files of real all-MiniLM-L6-v2 matrices, read through the real reader path. The
expected values come from the writer (testbed/writers/bnb_write.py), whose dequantisation
splits nibbles with integer division and repeats scales, where the reader shifts and indexes;
the nibble order is also pinned by a hand-built file.
"""

from __future__ import annotations

import json
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from hubscan.pipeline.chain.model_task import fingerprint_model
from hubscan.pipeline.config import Settings
from hubscan.pipeline.errors import FormatError
from hubscan.pipeline.readers import checkpoint
from hubscan.pipeline.readers.byte_source import LocalFile
from hubscan.pipeline.roles import classify
from hubscan.pipeline.sources.local import local_model
from hubscan.testbed.demohub.variants import load_repo_tensors
from hubscan.testbed.writers.bnb_write import NF4, dequantise_four_bit, eight_bit_tensors, four_bit_tensors
from hubscan.testbed.writers.safetensors_write import write_safetensors
from tests.real_checkpoints import real_model

FFN_IN = "encoder.layer.2.intermediate.dense.weight"  # [1536, 384]
PREFIX = FFN_IN.removesuffix(".weight")
# 1 - r of that matrix after each layout, measured: NF4 4.3e-3, FP4 7.9e-3, LLM.int8 3.0e-5.
MAX_DEV = {"nf4": 9e-3, "fp4": 1.6e-2, "int8": 6e-5}


@pytest.fixture(scope="module")
def ffn() -> np.ndarray:
    return load_repo_tensors(real_model("minilm-l6"))[FFN_IN]


def _read(path: Path, settings: Settings):
    with LocalFile(path, "test/bnb") as src:
        header = checkpoint.read_header(src, settings)
        rows = {
            r.header.name: r for r in checkpoint.read_rows(src, header, settings, lambda n: classify(n).role)
        }
        return header, rows, src.stats


@pytest.mark.parametrize("double", [False, True], ids=["plain", "double-quant"])
@pytest.mark.parametrize("quant_type", ["nf4", "fp4"])
def test_four_bit_rows_are_rebuilt_exactly_and_sampled_by_range(tmp_path, ffn, quant_type, double):
    parts = four_bit_tensors(PREFIX, ffn, quant_type, double)
    path = tmp_path / "model.safetensors"
    write_safetensors(path, parts, None)
    header, rows, stats = _read(path, Settings())
    (t,) = header.tensors  # absmax, code tables and the state are consumed, never tensors of their own
    want_dtype = quant_type.upper() + ("-dq" if double else "")
    assert (t.name, t.dtype, t.shape, t.numel) == (FFN_IN, want_dtype, (1536, 384), ffn.size)
    got = rows[FFN_IN]
    assert got.sampled and 0 < len(got.rows) < 1536
    want = dequantise_four_bit(parts, PREFIX)
    np.testing.assert_allclose(got.values, want[got.rows], rtol=1e-6, atol=1e-8)
    assert 1 - np.corrcoef(got.values.ravel(), ffn[got.rows].ravel())[0, 1] <= MAX_DEV[quant_type]
    assert stats.bytes < path.stat().st_size / 2  # sampled rows (gaps under 64 KB merged), not the whole


def test_eight_bit_rows_are_weight_times_scb_over_127(tmp_path, ffn):
    parts = eight_bit_tensors(PREFIX, ffn)
    path = tmp_path / "model.safetensors"
    write_safetensors(path, parts, None)
    header, rows, _ = _read(path, Settings())
    assert [(t.name, t.dtype, t.shape) for t in header.tensors] == [(FFN_IN, "INT8-bnb", (1536, 384))]
    got = rows[FFN_IN]
    want = parts[FFN_IN][got.rows].astype(np.float64) * parts[f"{PREFIX}.SCB"][got.rows, None] / 127
    np.testing.assert_allclose(got.values, want, rtol=1e-6)
    assert 1 - np.corrcoef(got.values.ravel(), ffn[got.rows].ravel())[0, 1] <= MAX_DEV["int8"]


def test_the_first_element_of_a_byte_is_its_high_nibble_and_odd_sizes_end_half_a_byte(tmp_path):
    # W is [3, 3] (9 elements, 5 bytes), one block of 64; absmax 2. Codes 15, 0, 7, 8, ... chosen
    # by hand: byte 0 = 0xF0 holds W[0,0] = NF4[15] * 2 = 2 and W[0,1] = NF4[0] * 2 = -2.
    codes = [15, 0, 7, 8, 1, 14, 2, 13, 3]
    packed = bytes([(codes[i] << 4) | (codes[i + 1] if i + 1 < 9 else 0) for i in range(0, 9, 2)])
    state = {"quant_type": "nf4", "blocksize": 64, "dtype": "float16", "shape": [3, 3]}
    name = "model.layers.0.mlp.up_proj.weight"
    path = tmp_path / "model.safetensors"
    write_safetensors(
        path,
        {
            name: np.frombuffer(packed, np.uint8).reshape(5, 1),
            f"{name}.absmax": np.array([2.0], np.float32),
            f"{name}.quant_map": np.array(NF4, np.float32),
            f"{name}.quant_state.bitsandbytes__nf4": np.frombuffer(json.dumps(state).encode(), np.uint8),
        },
        None,
    )
    _, rows, _ = _read(path, Settings(exact=True))
    want = np.array([[NF4[c] * 2 for c in codes[r * 3 : r * 3 + 3]] for r in range(3)], np.float32)
    np.testing.assert_array_equal(rows[name].values, want)
    assert rows[name].values[0, 0] == 2.0 and rows[name].values[0, 1] == -2.0


def test_a_state_that_is_not_json_is_one_line_naming_the_file(tmp_path, ffn):
    parts = four_bit_tensors(PREFIX, ffn, "nf4", False)
    parts[f"{FFN_IN}.quant_state.bitsandbytes__nf4"] = np.frombuffer(b"{not json", np.uint8)
    path = tmp_path / "model.safetensors"
    write_safetensors(path, parts, None)
    with pytest.raises(FormatError) as err:
        _read(path, Settings())
    assert str(err.value).startswith(
        f"test/bnb:model.safetensors: tensor {FFN_IN}.quant_state.bitsandbytes__nf4: not a JSON quant state ("
    )
    assert "\n" not in str(err.value)


def test_a_state_whose_shape_the_packed_weight_cannot_hold_is_refused(tmp_path, ffn):
    parts = four_bit_tensors(PREFIX, ffn, "nf4", True)
    state = {
        "quant_type": "nf4",
        "blocksize": 64,
        "dtype": "float16",
        "shape": [1536, 768],
        "nested_offset": 0.1,
    }
    parts[f"{FFN_IN}.quant_state.bitsandbytes__nf4"] = np.frombuffer(json.dumps(state).encode(), np.uint8)
    path = tmp_path / "model.safetensors"
    write_safetensors(path, parts, None)
    with pytest.raises(FormatError) as err:
        _read(path, Settings())
    assert str(err.value) == (
        f"test/bnb:model.safetensors: tensor {FFN_IN}: U8[294912, 1] does not pack [1536, 768] in 4 bits"
    )


def test_packed_bytes_stored_as_bf16_quant_storage_read_the_same(tmp_path, ffn):
    parts = four_bit_tensors(PREFIX, ffn, "nf4", True)
    u8 = tmp_path / "u8.safetensors"
    write_safetensors(u8, parts, None)
    parts[FFN_IN] = parts[FFN_IN].reshape(-1).view(ml_dtypes.bfloat16).reshape(-1, 1)
    bf16 = tmp_path / "bf16.safetensors"
    write_safetensors(bf16, parts, None)
    (_, want, _), (header, got, _) = _read(u8, Settings()), _read(bf16, Settings())
    assert header.tensors[0].dtype == "NF4-dq"
    np.testing.assert_array_equal(got[FFN_IN].values, want[FFN_IN].values)


def test_a_layer_straddling_two_shards_is_left_out_and_the_model_still_stored(tmp_path, ffn):
    # transformers shards tensor by tensor, so layer B's weight can end one shard and its state begin the next
    a, b = "model.layers.0.mlp.up_proj", "model.layers.0.mlp.down_proj"
    parts_a, parts_b = four_bit_tensors(a, ffn, "nf4", True), four_bit_tensors(b, ffn.T.copy(), "nf4", True)
    repo = tmp_path / "org" / "sharded-nf4"
    repo.mkdir(parents=True)
    norm = {"model.norm.weight": np.ones(384, np.float32)}
    write_safetensors(
        repo / "model-00001-of-00002.safetensors", {**parts_a, f"{b}.weight": parts_b[f"{b}.weight"]}, None
    )
    rest = {k: v for k, v in parts_b.items() if k != f"{b}.weight"}
    write_safetensors(repo / "model-00002-of-00002.safetensors", {**rest, **norm}, None)
    out = fingerprint_model(local_model(repo, "org/sharded-nf4"), Settings(store=tmp_path / "store"))
    assert out.ok, out.errors
    assert {(r["name"], r["dtype"]) for r in out.tensor_rows} == {
        (f"{a}.weight", "NF4-dq"),
        ("model.norm.weight", "F32"),
    }


def test_in_a_single_file_a_missing_part_is_one_line_naming_it(tmp_path, ffn):
    parts = four_bit_tensors(PREFIX, ffn, "nf4", False)
    del parts[f"{FFN_IN}.absmax"]
    path = tmp_path / "model.safetensors"
    write_safetensors(path, parts, None)
    with pytest.raises(FormatError) as err:
        _read(path, Settings())
    assert str(err.value) == (
        f"test/bnb:model.safetensors: tensor {FFN_IN}.absmax is missing "
        "(bitsandbytes 4-bit needs weight, absmax and quant_map)"
    )


def _with_embedding(parts: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The layer beside a block's float norm, which tells the reader the hidden size (384), and a
    factorised embedding 128 wide (as ALBERT's), which must not."""
    norm = "encoder.layer.2.attention.output.LayerNorm.weight"
    return {
        **parts,
        norm: np.ones(384, np.float16),
        "embeddings.word_embeddings.weight": np.ones((64, 128), np.float16),
    }


def test_a_state_the_role_implies_is_read_with_the_rows_and_rebuilds_the_same(tmp_path, ffn):
    parts = four_bit_tensors(PREFIX, ffn, "nf4", True)
    alone, beside = tmp_path / "alone.safetensors", tmp_path / "beside.safetensors"
    write_safetensors(alone, parts, None)
    write_safetensors(beside, _with_embedding(parts), None)
    settings = Settings(exact=True)
    (_, want, alone_stats), (header, got, stats) = _read(alone, settings), _read(beside, settings)
    assert {t.name: t.shape for t in header.tensors}[FFN_IN] == (1536, 384)
    np.testing.assert_array_equal(got[FFN_IN].values, want[FFN_IN].values)
    # alone: header, the state, then one merged read; beside: the state comes with the rows
    assert (alone_stats.requests, stats.requests) == (3, 2)


def test_a_state_that_contradicts_the_shape_its_role_implies_is_refused_when_read(tmp_path, ffn):
    parts = four_bit_tensors(PREFIX, ffn, "nf4", False)
    state = {"quant_type": "nf4", "blocksize": 64, "dtype": "float16", "shape": [768, 768]}  # same numel
    parts[f"{FFN_IN}.quant_state.bitsandbytes__nf4"] = np.frombuffer(json.dumps(state).encode(), np.uint8)
    path = tmp_path / "model.safetensors"
    write_safetensors(path, _with_embedding(parts), None)
    with pytest.raises(FormatError) as err:
        _read(path, Settings())
    assert str(err.value) == (
        f"test/bnb:model.safetensors: tensor {FFN_IN}: {FFN_IN}.quant_state.bitsandbytes__nf4 says "
        "(type, shape, block, nested) ('nf4', [768, 768], 64, False), the header was read as "
        "('nf4', [1536, 384], 64, False)"
    )
