"""Quantiser parts no reader consumed are still never fingerprinted (pipeline/readers/quantised.py).

A 4-bit bitsandbytes layer without its state cannot be rebuilt: its code table and block scales
are the same kind of tensor in every bnb file, and its packed bytes are not weights, so none of
them may reach the store, while the module's float bias and the model's other tensors do.
"""

from __future__ import annotations

import numpy as np

from hubscan.pipeline.chain.model_task import fingerprint_model
from hubscan.pipeline.config import Settings
from hubscan.pipeline.readers import checkpoint
from hubscan.pipeline.readers.byte_source import LocalFile
from hubscan.pipeline.sources.local import local_model
from hubscan.testbed.writers.bnb_write import NF4
from hubscan.testbed.writers.safetensors_write import write_safetensors
from hubscan.testbed.writers.torch_write import write_torch_zip

UP = "model.layers.0.mlp.up_proj"


def _stateless_nf4(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        f"{UP}.weight": rng.integers(0, 256, (64 * 32, 1), dtype=np.uint8),
        f"{UP}.weight.absmax": rng.random(64, dtype=np.float32),
        f"{UP}.weight.quant_map": np.array(NF4, np.float32),
        f"{UP}.bias": rng.standard_normal(128, dtype=np.float32),
        "model.layers.0.input_layernorm.weight": rng.standard_normal(64, dtype=np.float32),
        "model.norm.weight": rng.standard_normal(64, dtype=np.float32),
    }


def test_parts_no_reader_consumed_and_their_packed_weight_are_dropped(tmp_path):
    path = tmp_path / "model.safetensors"
    write_safetensors(path, _stateless_nf4(np.random.default_rng(0)), None)
    with LocalFile(path, "test/stateless") as src:
        header = checkpoint.read_header(src, Settings())
    assert sorted(t.name for t in header.tensors) == [
        "model.layers.0.input_layernorm.weight",
        f"{UP}.bias",
        "model.norm.weight",
    ]


def test_a_model_of_such_files_is_stored_without_them(tmp_path):
    repo = tmp_path / "org" / "stateless"
    repo.mkdir(parents=True)
    write_safetensors(repo / "model.safetensors", _stateless_nf4(np.random.default_rng(1)), None)
    out = fingerprint_model(local_model(repo, "org/stateless"), Settings(store=tmp_path / "store"))
    assert out.ok, out.errors
    assert {r["name"] for r in out.tensor_rows} == {
        f"{UP}.bias",
        "model.layers.0.input_layernorm.weight",
        "model.norm.weight",
    }
    assert out.model_row["params"] == 128 + 64 + 64


def test_an_integer_weight_whose_parts_are_in_another_shard_is_left_out(tmp_path):
    # mlx-lm shards by size in name order, so "x.biases", "x.scales" | "x.weight" can straddle files
    rng = np.random.default_rng(2)
    path = tmp_path / "model-00002-of-00002.safetensors"
    write_safetensors(
        path,
        {
            f"{UP}.weight": rng.integers(0, 2**32, (128, 8), dtype=np.uint32),
            "model.norm.weight": rng.standard_normal(64, dtype=np.float32),
            "model.embed_positions": np.arange(64, dtype=np.int64),  # an integer buffer, not a weight
        },
        None,
    )
    with LocalFile(path, "test/split") as src:
        header = checkpoint.read_header(src, Settings())
    assert sorted(t.name for t in header.tensors) == ["model.embed_positions", "model.norm.weight"]


def test_a_pytorch_bin_keeps_no_quantiser_part_either(tmp_path):
    # 2023-era "-bnb-4bit" uploads are pytorch_model.bin: no rebuild there, but no constant either
    path = tmp_path / "pytorch_model.bin"
    write_torch_zip(path, _stateless_nf4(np.random.default_rng(3)))
    with LocalFile(path, "test/bin") as src:
        header = checkpoint.read_header(src, Settings())
    assert sorted(t.name for t in header.tensors) == [
        "model.layers.0.input_layernorm.weight",
        f"{UP}.bias",
        "model.norm.weight",
    ]
