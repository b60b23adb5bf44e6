"""Which files of a repo hold the weights hubscan reads, and why a repo has none."""

from __future__ import annotations

import re

from hubscan.pipeline.errors import NoWeights
from hubscan.pipeline.sources.refs import FileRef, ModelRef

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
# PyTorch zip checkpoints read without unpickling (pipeline/readers/torch_zip.py).
TORCH_SUFFIXES = (".bin", ".pt", ".pth")
# transformers' names: pytorch_model.bin or its shards pytorch_model-00001-of-00002.bin (the index
# pytorch_model.bin.index.json names exactly these).
TRANSFORMERS_BIN = re.compile(r"^pytorch_model(-\d+-of-\d+)?\.bin$")
# Root files that hold training state, not model weights (Trainer checkpoints).
NOT_WEIGHTS = re.compile(r"^(training_args\.bin|optimizer\.pt|scheduler\.pt|scaler\.pt|rng_state.*\.pth)$")
# Prefer GGUF files that lose least: the fingerprint of a Q4 file is close but not exact.
_GGUF_PREFERENCE = ("f32", "bf16", "f16", "q8_0", "q6_k", "q5_k", "q5_1", "q5_0", "q4_k", "q4_1", "q4_0")


def select_weight_files(ref: ModelRef) -> tuple[str, tuple[FileRef, ...]]:
    """(format, files) to read: root safetensors (all shards) first, else one GGUF file, else
    root PyTorch zip checkpoints (transformers' ``pytorch_model*.bin`` when present, else every
    root ``.bin``/``.pt``/``.pth`` but training state).

    Subfolders (onnx/, original/, …) and Mistral's ``consolidated`` duplicates are ignored,
    so the same weights are not fingerprinted twice. PyTorch files are read by walking their
    pickle opcodes, never unpickled.

    Raises:
        NoWeights: nothing readable (e.g. only ``.ckpt``/``.pkl`` pickles).
    """
    root = [f for f in ref.files if "/" not in f.name]
    tensors = [f for f in root if f.name.endswith(".safetensors") and not f.name.startswith("consolidated")]
    if tensors:
        return "safetensors", tuple(sorted(tensors, key=lambda f: f.name))
    ggufs = [f for f in ref.files if f.name.endswith(".gguf")]
    if ggufs:
        return "gguf", (min(ggufs, key=_gguf_rank),)
    torch_files = [f for f in root if f.name.endswith(TORCH_SUFFIXES) and not NOT_WEIGHTS.match(f.name)]
    transformers = [f for f in torch_files if TRANSFORMERS_BIN.match(f.name)]
    if transformers or torch_files:
        return "pytorch", tuple(sorted(transformers or torch_files, key=lambda f: f.name))
    pickles = [f.name for f in ref.files if f.name.endswith(PICKLE_SUFFIXES)]
    if pickles:
        raise NoWeights(
            ref.repo_id,
            ref.revision,
            pickles[0],
            "only pickled weights hubscan does not read (.ckpt, .pkl or in subfolders); never unpickled",
        )
    raise NoWeights(
        ref.repo_id, ref.revision, None, "no safetensors, GGUF or PyTorch weight files in the repo"
    )


def _gguf_rank(f: FileRef) -> tuple[int, str]:
    name = f.name.lower()
    for rank, tag in enumerate(_GGUF_PREFERENCE):
        if re.search(rf"[.\-_]{tag}[.\-_]", name):
            return (rank, name)
    return (len(_GGUF_PREFERENCE), name)
