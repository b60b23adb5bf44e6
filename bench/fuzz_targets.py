"""Fuzz targets: one function per parser that takes raw bytes, and the seeds each starts from.

A target may end in a HubscanError (bad input, recorded as data) or return; any other
exception is a crash. Seeds are small files written by the demo-hub writers (so a mutation
reaches the interesting parts quickly) plus the header of a real checkpoint from
~/.cache/hubscan/models when it is there. Shared by ``python -m bench.fuzz`` (atheris,
coverage-guided) and the fixed-seed pass in tests/test_fuzz.py.
"""

from __future__ import annotations

import contextlib
import json
import struct
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hubscan.pipeline.config import Settings
from hubscan.pipeline.errors import HubscanError
from hubscan.pipeline.readers import checkpoint, pickle_walk
from hubscan.pipeline.readers.byte_source import ReadStats
from hubscan.pipeline.sources.cards import parse_card
from hubscan.pipeline.sources.hf import model_ref_from_info
from hubscan.pipeline.sources.tokenizer import tokens_from_tokenizer_json
from hubscan.pipeline.sources.weights import select_weight_files
from hubscan.testbed.demohub.realmodels import default_cache
from hubscan.testbed.writers.gguf_write import QType, write_gguf
from hubscan.testbed.writers.gptq_pack import gptq_tensors, rtn_quantise
from hubscan.testbed.writers.safetensors_write import write_safetensors
from hubscan.testbed.writers.scaled_quant import quantised_tensors
from hubscan.testbed.writers.torch_write import TensorEntry, state_dict_pickle, write_torch_zip

SETTINGS = Settings()
# Real checkpoint headers are cut to this many bytes: enough for the JSON, small enough to mutate fast.
REAL_SEED_BYTES = 64 * 1024
# The quantization_config a GPTQ seed declares, as its config.json would.
GPTQ_CONFIG = {"quant_method": "gptq", "bits": 4, "group_size": 16, "desc_act": False}


class MemoryFile:
    """A ByteSource over bytes in memory: the readers' real code path without disk or network."""

    def __init__(self, data: bytes, name: str) -> None:
        self.data, self.name = data, name
        self.repo_id, self.revision, self.size = "fuzz/model", "0" * 40, len(data)
        self.stats = ReadStats()

    def read(self, begin: int, end: int) -> bytes:
        """Bytes [begin, end), clipped like a short read of a truncated file."""
        self.stats.add(max(0, min(end, self.size) - begin))
        return self.data[begin:end]

    def close(self) -> None:
        """Nothing to release."""


def read_file(data: bytes, name: str, quant: dict[str, object] | None = None) -> None:
    """Header, then every planned row decoded and checked, as a sweep reads one file."""
    source = MemoryFile(data, name)
    header = checkpoint.read_header(source, SETTINGS, quant)
    for _ in checkpoint.read_rows(source, header, SETTINGS, lambda _name: "other"):
        pass


def pickle_target(data: bytes) -> None:
    """The pickle walker: refuses or builds plain data, never executes."""
    with contextlib.suppress(pickle_walk.PickleRefused, pickle_walk.PickleMalformed):
        pickle_walk.walk(data)


def tokenizer_target(data: bytes) -> None:
    """tokenizer.json to token strings (None when unusable)."""
    tokens_from_tokenizer_json(data)


def card_target(data: bytes) -> None:
    """README.md front matter."""
    parse_card(data.decode("utf-8", errors="replace"))


def model_info_target(data: bytes) -> None:
    """A /api/models/{id} answer (or listing entry) to a ModelRef and the files a sweep would read."""
    try:
        info = json.loads(data)
    except ValueError:
        return  # HubHttp.get_json turns a body that is not JSON into a FetchError
    select_weight_files(model_ref_from_info(info, "fuzz/model"))


@dataclass(frozen=True)
class Target:
    """A parser under fuzzing: the function and where its seeds come from."""

    name: str
    run: Callable[[bytes], None]
    seeds: Callable[[], list[bytes]]


def _written(write: Callable[[Path], object], suffix: str) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"seed{suffix}"
        write(path)
        return path.read_bytes()


def _tensors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "layers.0.w.weight": rng.standard_normal((8, 32), np.float32),
        "norm.weight": np.ones(32, np.float32),
    }


def _real(relative: str) -> list[bytes]:
    path = default_cache() / "raw" / relative
    return [path.read_bytes()[:REAL_SEED_BYTES]] if path.exists() else []


def safetensors_seeds() -> list[bytes]:
    """A tiny two-tensor file, one in BF16, and the real MiniLM header."""
    small = _written(lambda p: write_safetensors(p, _tensors()), ".safetensors")
    bf16 = _written(lambda p: write_safetensors(p, _tensors(), "BF16"), ".safetensors")
    return [small, bf16, *_real("minilm-l6/model.safetensors")]


def gguf_seeds() -> list[bytes]:
    """A tiny llama-shaped GGUF (a Q8_0 matrix, an F32 norm) with metadata and a token list."""
    tensors = {
        "blk.0.attn_q.weight": _tensors()["layers.0.w.weight"],
        "output_norm.weight": np.ones(32, np.float32),
    }
    tokens = ["<s>", "a", "b", "ab"]
    return [
        _written(
            lambda p: write_gguf(p, tensors, "llama", QType.Q8_0, {"llama.block_count": 1}, tokens), ".gguf"
        )
    ]


def torch_seeds() -> list[bytes]:
    """A tiny torch zip checkpoint (directory, data.pkl, storages)."""
    return [_written(lambda p: write_torch_zip(p, _tensors()), ".bin")]


def pickle_seeds() -> list[bytes]:
    """A state-dict pickle as torch writes it."""
    entry = TensorEntry("w", "FloatStorage", "0", 16, 0, (4, 4), (4, 1))
    return [state_dict_pickle([entry])]


def packed_seeds() -> list[bytes]:
    """A GPTQ 4-bit Linear (qweight, qzeros, scales, g_idx) in safetensors."""
    w = np.random.default_rng(1).standard_normal((16, 32)).astype(np.float32)
    parts = gptq_tensors("layers.0.w", rtn_quantise(w, 4, 16, min_zero=1))
    return [_written(lambda p: write_safetensors(p, parts), ".safetensors")]


def scaled_seeds() -> list[bytes]:
    """A two-layer Linear stack in every compressed-tensors / block-FP8 layout (scaled_quant's schemes)."""
    rng = np.random.default_rng(2)
    tensors = {
        f"encoder.layer.{i}.attention.self.query.weight": rng.standard_normal((16, 128)) for i in (0, 1)
    }
    out = []
    for scheme in ("w4a16-asym", "w8a8-int8", "fp8-channel", "fp8-scale-inv", "nvfp4", "mxfp4"):
        stored, _ = quantised_tensors({k: v.astype(np.float32) for k, v in tensors.items()}, scheme)
        out.append(_written(lambda p, t=stored: write_safetensors(p, t), ".safetensors"))
    return out


def tokenizer_seeds() -> list[bytes]:
    """WordPiece and Unigram vocabularies with added tokens."""
    wordpiece = {
        "model": {"vocab": {"[PAD]": 0, "a": 1, "##b": 2}},
        "added_tokens": [{"id": 3, "content": "[X]"}],
    }
    unigram = {"model": {"vocab": [["<s>", 0.0], ["a", -1.5]]}}
    return [json.dumps(wordpiece).encode(), json.dumps(unigram).encode()]


def card_seeds() -> list[bytes]:
    """A model card with front matter, and the real MiniLM card."""
    card = b"---\nlicense: apache-2.0\nbase_model: org/base\ntags: [a, b]\n---\n# Model\n"
    return [card, *_real("minilm-l6/README.md")]


def model_info_seeds() -> list[bytes]:
    """A model-info answer as the Hub gives it with blobs=true."""
    info = {
        "id": "org/model",
        "sha": "a" * 40,
        "gated": False,
        "tags": ["safetensors"],
        "cardData": {"license": "mit", "base_model": ["org/base"]},
        "config": {"model_type": "bert", "architectures": ["BertModel"]},
        "siblings": [
            {"rfilename": "model.safetensors", "size": 100, "lfs": {"sha256": "b" * 64, "size": 100}},
            {"rfilename": "config.json", "size": 10},
        ],
    }
    return [json.dumps(info).encode()]


TARGETS = {
    t.name: t
    for t in [
        Target("safetensors", lambda d: read_file(d, "model.safetensors"), safetensors_seeds),
        Target("gguf", lambda d: read_file(d, "model.gguf"), gguf_seeds),
        Target("torch-zip", lambda d: read_file(d, "pytorch_model.bin"), torch_seeds),
        Target("pickle", pickle_target, pickle_seeds),
        Target("packed-int", lambda d: read_file(d, "model.safetensors", GPTQ_CONFIG), packed_seeds),
        Target("scaled", lambda d: read_file(d, "model.safetensors"), scaled_seeds),
        Target("tokenizer", tokenizer_target, tokenizer_seeds),
        Target("card", card_target, card_seeds),
        Target("model-info", model_info_target, model_info_seeds),
    ]
}


def run_one(target: Target, data: bytes) -> BaseException | None:
    """The crash ``data`` causes in ``target``, or None (a HubscanError is not a crash)."""
    try:
        target.run(data)
    except HubscanError:
        return None
    except Exception as exc:  # anything else is what the fuzzer is looking for
        return exc
    return None


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One random edit: flip bytes, splice in an interesting integer, cut, or duplicate a slice."""
    buf = bytearray(data or b"\0")
    kind = int(rng.integers(5))
    at = int(rng.integers(len(buf)))
    if kind == 0:
        for _ in range(int(rng.integers(1, 8))):
            buf[int(rng.integers(len(buf)))] = int(rng.integers(256))
    elif kind == 1:
        value = [0, 1, 255, 65535, 2**31 - 1, 2**32 - 1, 2**63 - 1, 2**64 - 1][int(rng.integers(8))]
        buf[at : at + 8] = struct.pack("<Q", value)
    elif kind == 2:
        del buf[at:]
    elif kind == 3:
        end = min(len(buf), at + int(rng.integers(1, 64)))
        buf[at:at] = buf[at:end] * int(rng.integers(1, 16))
    else:
        buf[at:at] = bytes(rng.choice(list(b'[]{}",:0123456789-eE'), int(rng.integers(1, 32))))
    return bytes(buf)
