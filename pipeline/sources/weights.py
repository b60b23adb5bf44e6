"""Which files of a repo hold the weights hubscan reads, and why a repo has none."""

from __future__ import annotations

import re

from pipeline.errors import NoWeights
from pipeline.sources.refs import FileRef, ModelRef

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
# Prefer GGUF files that lose least: the fingerprint of a Q4 file is close but not exact.
_GGUF_PREFERENCE = ("f32", "bf16", "f16", "q8_0", "q6_k", "q5_k", "q5_1", "q5_0", "q4_k", "q4_1", "q4_0")


def select_weight_files(ref: ModelRef) -> tuple[str, tuple[FileRef, ...]]:
    """(format, files) to read: root safetensors (all shards) first, else one GGUF file.

    Subfolders (onnx/, original/, …) and Mistral's ``consolidated`` duplicates are ignored,
    so the same weights are not fingerprinted twice.

    Raises:
        NoWeights: nothing readable; pickled-only repos are refused, never unpickled.
    """
    root = [f for f in ref.files if "/" not in f.name]
    tensors = [f for f in root if f.name.endswith(".safetensors") and not f.name.startswith("consolidated")]
    if tensors:
        return "safetensors", tuple(sorted(tensors, key=lambda f: f.name))
    ggufs = [f for f in ref.files if f.name.endswith(".gguf")]
    if ggufs:
        return "gguf", (min(ggufs, key=_gguf_rank),)
    pickles = [f.name for f in ref.files if f.name.endswith(PICKLE_SUFFIXES)]
    if pickles:
        raise NoWeights(
            ref.repo_id,
            ref.revision,
            pickles[0],
            "only pickled PyTorch weights; hubscan never unpickles hub files",
        )
    raise NoWeights(ref.repo_id, ref.revision, None, "no safetensors or GGUF weight files in the repo")


def _gguf_rank(f: FileRef) -> tuple[int, str]:
    name = f.name.lower()
    for rank, tag in enumerate(_GGUF_PREFERENCE):
        if re.search(rf"[.\-_]{tag}[.\-_]", name):
            return (rank, name)
    return (len(_GGUF_PREFERENCE), name)
