"""What a checkpoint's own headers say about the model: its shape facts and, for GGUF, its vocabulary.

config.json (when the listing carried it) is trusted first; GGUF metadata fills its gaps, and tensor
shapes fill whatever neither says.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hubscan.pipeline.model_config import ModelConfig, from_hf_config, infer_from_tensors, merge
from hubscan.pipeline.readers.gguf import gguf_config
from hubscan.pipeline.readers.records import CheckpointHeader


def model_config(
    declared: Mapping[str, Any] | None,
    headers: Sequence[CheckpointHeader],
    shapes: Mapping[str, tuple[int, ...]],
) -> ModelConfig:
    """Layers, widths, experts and vocabulary from config.json, then GGUF metadata, then tensor shapes."""
    config = from_hf_config(declared) if declared else ModelConfig()
    for header in headers:
        if header.format == "gguf":
            config = merge(config, _from_gguf(header.metadata))
    return merge(config, infer_from_tensors(list(shapes.items())))


def gguf_tokens(headers: Sequence[CheckpointHeader]) -> list[str] | None:
    """Token strings by id from GGUF metadata, if a header carries them."""
    for header in headers:
        listed = header.metadata.get("tokenizer.ggml.tokens")
        if isinstance(listed, list):
            return [str(t) for t in listed]
    return None


def _from_gguf(metadata: dict[str, object]) -> ModelConfig:
    """GGUF's architecture numbers under the names config.json facts use."""
    g = gguf_config(metadata)
    return ModelConfig(
        architecture=_str(g.get("architecture")),
        n_layers=_int(g.get("n_layers")),
        hidden=_int(g.get("hidden")),
        n_heads=_int(g.get("n_heads")),
        n_kv_heads=_int(g.get("n_kv_heads")),
        n_experts=_int(g.get("n_experts")),
        vocab=_int(g.get("vocab_size")),
    )


def _int(v: object) -> int | None:
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _str(v: object) -> str | None:
    return v if isinstance(v, str) else None
