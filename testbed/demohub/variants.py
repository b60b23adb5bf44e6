"""Derived copies of a Hub-layout repo (casts, shards, renames, drift, GGUF), as people publish them.

Each variant reads a source repo folder and writes a new one with the source's config/tokenizer and
a card that declares ``base_model`` or, for an undeclared copy, nothing. Output is deterministic
for a given seed, so the demo hub and its fingerprints are reproducible.
"""

from __future__ import annotations

import json
import shutil
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from hubscan.testbed.demohub import cards
from hubscan.testbed.writers.safetensors_write import (
    FLOAT_DTYPES,
    NP_DTYPES,
    dtype_name,
    layout_order,
    read_safetensors_header,
    read_safetensors_np,
    write_safetensors,
)
from hubscan.testbed.writers.torch_write import write_torch_zip

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
# Card fields Hub repos of derived models commonly carry; the fake hub maps them to baseModels.
RELATION_QUANTIZED = "quantized"
RELATION_FINETUNE = "finetune"


def weight_files(src: Path) -> list[Path]:
    """The safetensors files of a repo: the index's shards in order, else model.safetensors."""
    index = src / INDEX_FILE
    if index.exists():
        weight_map: dict[str, str] = json.loads(index.read_text())["weight_map"]
        return [src / f for f in dict.fromkeys(sorted(weight_map.values()))]
    if (src / SINGLE_FILE).exists():
        return [src / SINGLE_FILE]
    raise FileNotFoundError(f"{src}: no {SINGLE_FILE} or {INDEX_FILE}")


def load_repo_tensors(src: Path) -> dict[str, np.ndarray]:
    """Every tensor of a repo's safetensors weights (single file or shards), fully read."""
    tensors: dict[str, np.ndarray] = {}
    for f in weight_files(src):
        tensors.update(read_safetensors_np(f))
    return tensors


def repo_metadata(src: Path) -> dict[str, str]:
    """``__metadata__`` of the repo's first weight file (e.g. {"format": "pt"}), kept by variants."""
    return read_safetensors_header(weight_files(src)[0])[1]


def derive_repo(
    src: Path,
    dst: Path,
    base_model: str | None,
    body: str,
    tags: list[str] | None = None,
    relation: str | None = None,
    side_files: bool = True,
) -> None:
    """Start ``dst``: copy config/tokenizer from ``src`` and write its card (license kept)."""
    dst.mkdir(parents=True, exist_ok=True)
    if side_files:
        cards.copy_side_files(src, dst)
    license_ = cards.card_field(src / "README.md", "license")
    extra: dict[str, object] | None = {"base_model_relation": relation} if base_model and relation else None
    cards.write_card(dst, dst.name, license_, base_model, tags or [], body, extra)


def cast(src: Path, dst: Path, dtype: str, base_model: str | None = None) -> Path:
    """Every float tensor stored as ``dtype`` (F16, BF16, F8_E4M3, ...); integer buffers kept."""
    if dtype not in FLOAT_DTYPES:
        raise ValueError(f"cast target must be a float dtype, got {dtype}")
    derive_repo(src, dst, base_model, f"Weights stored as {dtype}.", ["safetensors"], RELATION_QUANTIZED)
    write_safetensors(dst / SINGLE_FILE, load_repo_tensors(src), dtype, repo_metadata(src))
    return dst


def plan_shards(sizes: dict[str, int], n_shards: int) -> list[list[str]]:
    """Split names (in the given order) into ``n_shards`` runs of about equal bytes, none empty.

    Boundaries fall wherever the bytes say, so one layer's tensors often straddle two shards,
    as in transformers' own ``max_shard_size`` splitting.
    """
    names = list(sizes)
    if not 1 <= n_shards <= len(names):
        raise ValueError(f"cannot split {len(names)} tensors into {n_shards} shards")
    remaining = sum(sizes.values())
    shards: list[list[str]] = [[]]
    current = 0
    for i, name in enumerate(names):
        shards[-1].append(name)
        current += sizes[name]
        open_after = n_shards - len(shards)  # shards still to start
        left = len(names) - i - 1
        full = current >= remaining / (open_after + 1)
        if open_after and left >= open_after and (left == open_after or full):
            remaining -= current
            current = 0
            shards.append([])
    return shards


def shard(src: Path, dst: Path, n_shards: int, base_model: str | None = None) -> Path:
    """Same tensors split over ``model-0000k-of-0000n.safetensors`` plus the HF index file."""
    derive_repo(src, dst, base_model, f"Weights split into {n_shards} shards.", ["safetensors"])
    meta = repo_metadata(src)

    def write(path: Path, part: dict[str, np.ndarray]) -> None:
        write_safetensors(path, part, {n: dtype_name(a) for n, a in part.items()}, meta)

    _write_shards(dst, load_repo_tensors(src), n_shards, SINGLE_FILE, write)
    return dst


def _write_shards(
    dst: Path,
    tensors: dict[str, np.ndarray],
    n_shards: int,
    single: str,
    write: Callable[[Path, dict[str, np.ndarray]], object],
) -> None:
    """``tensors`` over ``<stem>-0000k-of-0000n<suffix>`` files named after ``single``, plus the HF index."""
    stem, dot, suffix = single.partition(".")
    order = layout_order({n: "F32" for n in tensors})  # name order across the whole model
    plan = plan_shards({n: tensors[n].nbytes for n in order}, n_shards)
    weight_map: dict[str, str] = {}
    for k, names in enumerate(plan, start=1):
        fname = f"{stem}-{k:05d}-of-{n_shards:05d}{dot}{suffix}"
        write(dst / fname, {n: tensors[n] for n in names})
        weight_map.update(dict.fromkeys(names, fname))
    total = sum(int(a.nbytes) for a in tensors.values())  # HF's total_size: tensor bytes, no headers
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    cards.write_json(dst / f"{single}.index.json", index)


def add_prefix(prefix: str) -> Callable[[str], str]:
    """Mapping for ``rename`` that prefixes every name (``bert.`` as in BertForMaskedLM checkpoints)."""
    return lambda name: name if name.startswith(prefix) else prefix + name


def rename(src: Path, dst: Path, mapping_fn: Callable[[str], str], base_model: str | None = None) -> Path:
    """Identical values under new tensor names; dtypes kept."""
    tensors = load_repo_tensors(src)
    renamed = {mapping_fn(n): a for n, a in tensors.items()}
    if len(renamed) != len(tensors):
        raise ValueError("rename mapping sends two tensors to the same name")
    derive_repo(src, dst, base_model, "Tensor names follow a different module layout.", ["safetensors"])
    write_safetensors(dst / SINGLE_FILE, renamed, None, repo_metadata(src))
    return dst


def _rng_for(seed: int, name: str) -> np.random.Generator:
    """Per-tensor stream: the noise of one tensor does not depend on which others exist."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def finetune_like(
    src: Path, dst: Path, rel_noise: float = 0.01, seed: int = 0, base_model: str | None = None
) -> Path:
    """Add Gaussian noise of ``rel_noise`` x each tensor's std: drift like a short fine-tune."""
    tensors = load_repo_tensors(src)
    out: dict[str, np.ndarray] = {}
    for name, arr in tensors.items():
        dt = dtype_name(arr)
        if dt not in FLOAT_DTYPES or arr.size < 2:
            out[name] = arr
            continue
        values = arr.astype(np.float32)
        std = float(values.std())
        noise = _rng_for(seed, name).standard_normal(values.shape, dtype=np.float32)
        out[name] = (values + noise * np.float32(rel_noise * std)).astype(NP_DTYPES[dt])
    body = "Fine-tuned sentence embeddings."
    derive_repo(src, dst, base_model, body, ["safetensors"], RELATION_FINETUNE)
    write_safetensors(dst / SINGLE_FILE, out, None, repo_metadata(src))
    return dst


def _tokens(src: Path) -> list[str] | None:
    """Vocabulary by id from tokenizer.json (WordPiece dict or Unigram list), for GGUF's token list."""
    path = src / "tokenizer.json"
    if not path.exists():
        return None
    vocab = json.loads(path.read_text(encoding="utf-8"))["model"]["vocab"]
    if isinstance(vocab, dict):
        by_id = sorted(vocab.items(), key=lambda kv: kv[1])
        return [tok for tok, _ in by_id]
    return [tok for tok, _ in vocab]


def to_gguf(src: Path, dst: Path, qtype: str, base_model: str | None = None) -> Path:
    """A llama.cpp-style GGUF repo: tensors renamed per gguf's name map, matrices as ``qtype``."""
    from hubscan.testbed.writers.gguf_write import QType, hf_to_gguf_name, write_gguf

    cfg = json.loads((src / "config.json").read_text())
    arch, n_layers = str(cfg["model_type"]), int(cfg["num_hidden_layers"])
    tensors: dict[str, np.ndarray] = {}
    for name, arr in load_repo_tensors(src).items():
        gname = hf_to_gguf_name(name, arch, n_layers)
        if gname is not None and dtype_name(arr) in FLOAT_DTYPES:  # drops position_ids, pooler
            tensors[gname] = arr.astype(np.float32)
    meta: dict[str, object] = {
        "general.name": dst.name,
        f"{arch}.block_count": n_layers,
        f"{arch}.context_length": int(cfg.get("max_position_embeddings", 512)),
        f"{arch}.embedding_length": int(cfg["hidden_size"]),
        f"{arch}.feed_forward_length": int(cfg["intermediate_size"]),
        f"{arch}.attention.head_count": int(cfg["num_attention_heads"]),
        f"{arch}.attention.layer_norm_epsilon": float(cfg.get("layer_norm_eps", 1e-12)),
    }
    derive_repo(src, dst, base_model, f"GGUF {qtype} for llama.cpp.", ["gguf"], RELATION_QUANTIZED, False)
    fname = f"{dst.name.removesuffix('-GGUF').removesuffix(f'-{qtype}')}.{qtype}.gguf"
    write_gguf(dst / fname, tensors, arch, QType.__members__[qtype], meta, _tokens(src))
    return dst


def to_pytorch(src: Path, dst: Path, n_shards: int = 1, base_model: str | None = None) -> Path:
    """The same tensors as torch.save writes them: ``pytorch_model.bin``, or shards plus the HF index."""
    derive_repo(src, dst, base_model, "PyTorch weights (pytorch_model.bin).", ["pytorch"])
    tensors = load_repo_tensors(src)
    if n_shards == 1:
        write_torch_zip(dst / "pytorch_model.bin", tensors)
        return dst
    _write_shards(dst, tensors, n_shards, "pytorch_model.bin", write_torch_zip)
    return dst


def reupload(src: Path, dst: Path, base_model: str | None = None) -> Path:
    """The same weight files byte for byte under another repo (a re-upload), with its own card."""
    derive_repo(src, dst, base_model, "A re-upload of the same weights.")
    for f in weight_files(src):
        shutil.copyfile(f, dst / f.name)
    return dst
