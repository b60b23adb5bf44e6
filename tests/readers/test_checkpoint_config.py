"""Model facts from a real GGUF header: config.json first, GGUF metadata next, tensor shapes last."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType

from hubscan.pipeline.config import Settings
from hubscan.pipeline.readers import checkpoint
from hubscan.pipeline.readers.byte_source import LocalFile
from hubscan.pipeline.readers.checkpoint_config import gguf_tokens, model_config
from hubscan.pipeline.readers.records import CheckpointHeader
from hubscan.testbed.writers.gguf_write import write_gguf


def _header(tmp_path: Path, tokens: list[str] | None) -> CheckpointHeader:
    rng = np.random.default_rng(3)
    tensors = {
        "token_embd.weight": rng.normal(0, 0.02, (40, 32)).astype(np.float32),
        "blk.0.ffn_up.weight": rng.normal(0, 0.02, (80, 32)).astype(np.float32),
        "blk.0.ffn_down.weight": rng.normal(0, 0.02, (32, 80)).astype(np.float32),
    }
    metadata = {"llama.block_count": 3, "llama.embedding_length": 32, "llama.attention.head_count": 4}
    path = tmp_path / "m.gguf"
    write_gguf(path, tensors, "llama", GGMLQuantizationType.F16, metadata=metadata, tokens=tokens)
    with LocalFile(path, "org/m", "1") as f:
        return checkpoint.read_header(f, Settings(), None)


def test_gguf_metadata_fills_what_config_json_leaves_out_and_shapes_fill_the_rest(tmp_path):
    header = _header(tmp_path, [f"t{i}" for i in range(40)])
    shapes = {t.name: t.shape for t in header.tensors}
    from_gguf = model_config(None, [header], shapes)
    assert (from_gguf.architecture, from_gguf.n_layers, from_gguf.hidden) == ("llama", 3, 32)
    assert (from_gguf.n_heads, from_gguf.vocab) == (4, 40)
    assert from_gguf.intermediate == 80  # said by no metadata: the MLP's shape
    declared = model_config({"num_hidden_layers": 5, "model_type": "llama"}, [header], shapes)
    assert (declared.n_layers, declared.hidden, declared.model_type) == (5, 32, "llama")


def test_gguf_tokens_come_from_the_header_that_carries_them(tmp_path):
    tokens = [f"t{i}" for i in range(40)]
    assert gguf_tokens([_header(tmp_path, tokens)]) == tokens
    assert gguf_tokens([_header(tmp_path, None)]) is None
