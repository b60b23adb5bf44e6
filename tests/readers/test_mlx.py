"""MLX affine: real all-MiniLM-L6-v2 matrices quantised at every width and group size, rebuilt by rows.

Each file is a real safetensors file read through the real reader path (header, grouping, row
plan, merged range reads); the expected values come from the writer's own arithmetic
(testbed/writers/mlx_write.py packs with an explicit bit array, the reader unpacks with shifts).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hubscan.pipeline.chain.model_task import fingerprint_model
from hubscan.pipeline.config import Settings
from hubscan.pipeline.errors import FormatError, UnsupportedDtype
from hubscan.pipeline.readers import checkpoint
from hubscan.pipeline.readers.byte_source import LocalFile
from hubscan.pipeline.roles import classify
from hubscan.pipeline.sources.local import local_model
from hubscan.testbed.demohub.variants import load_repo_tensors
from hubscan.testbed.writers.mlx_write import pack_rows, quantise
from hubscan.testbed.writers.safetensors_write import write_safetensors
from tests.real_checkpoints import real_model

Q = "encoder.layer.2.attention.self.query.weight"  # [384, 384]
FFN_IN = "encoder.layer.2.intermediate.dense.weight"  # [1536, 384]
EMBED = "embeddings.word_embeddings.weight"  # [30522, 384]
# 1 - r of MiniLM's layer-2 FFN-in after min/max rounding, measured at groups of 32 / 128: 8 bits
# 1.1e-5 / 1.9e-5, 6 bits 1.8e-4 / 3.1e-4, 5 bits 7.5e-4 / 1.3e-3, 4 bits 3.2e-3 / 5.4e-3,
# 3 bits 1.4e-2 / 2.4e-2, 2 bits 7.1e-2 / 0.11; the bounds leave about 2x over the worst group size.
MAX_DEV = {8: 5e-5, 6: 7e-4, 5: 3e-3, 4: 1.2e-2, 3: 5e-2, 2: 0.25}


@pytest.fixture(scope="module")
def minilm() -> dict[str, np.ndarray]:
    return load_repo_tensors(real_model("minilm-l6"))


def _write(path: Path, tensors: dict[str, np.ndarray], bits: int, group: int) -> dict[str, np.ndarray]:
    """The tensors written MLX-quantised; returns what a correct reader must rebuild for each."""
    out, want = {}, {}
    for name, w in tensors.items():
        a = quantise(w, bits, group)
        prefix = name.removesuffix(".weight")
        out |= {name: pack_rows(a.q, bits), f"{prefix}.scales": a.scales, f"{prefix}.biases": a.biases}
        want[name] = a.dequantised()
    write_safetensors(path, out, None, {"format": "mlx"})
    return want


def _read(path: Path, settings: Settings, quant: dict | None = None):
    with LocalFile(path, "test/mlx") as src:
        header = checkpoint.read_header(src, settings, quant)
        rows = list(checkpoint.read_rows(src, header, settings, lambda n: classify(n).role))
        return header, {r.header.name: r for r in rows}, src.stats


@pytest.mark.parametrize("bits", [2, 3, 4, 5, 6, 8])
@pytest.mark.parametrize("group", [32, 64, 128])
def test_every_width_and_group_rebuilds_the_writers_rows_exactly(tmp_path, minilm, bits, group):
    path = tmp_path / "model.safetensors"
    want = _write(path, {FFN_IN: minilm[FFN_IN]}, bits, group)
    header, rows, _ = _read(path, Settings(), {"bits": bits, "group_size": group})
    (t,) = header.tensors  # weight, scales and biases became one logical tensor
    assert (t.name, t.dtype, t.shape) == (FFN_IN, f"MLX-int{bits}-g{group}", (1536, 384))
    got = rows[FFN_IN]
    assert got.sampled and 0 < len(got.rows) < 1536  # rows sampled by range, not the whole tensor
    np.testing.assert_array_equal(got.values, want[FFN_IN][got.rows])
    r = np.corrcoef(got.values.ravel(), minilm[FFN_IN][got.rows].ravel())[0, 1]
    assert 1 - r <= MAX_DEV[bits]


def test_the_embedding_is_read_by_row_ranges_and_costs_a_fraction_of_the_file(tmp_path, minilm):
    path = tmp_path / "model.safetensors"
    want = _write(path, {EMBED: minilm[EMBED], Q: minilm[Q]}, 4, 64)
    header, rows, stats = _read(path, Settings())  # no config: 4 bits in groups of 64 from the shapes
    assert {t.name: t.dtype for t in header.tensors} == {EMBED: "MLX-int4-g64", Q: "MLX-int4-g64"}
    emb = rows[EMBED]
    np.testing.assert_array_equal(emb.values, want[EMBED][emb.rows])
    assert emb.sampled and len(emb.rows) < 30522 // 10
    assert stats.bytes < path.stat().st_size / 5


def test_without_a_config_the_width_the_model_shows_elsewhere_decides(tmp_path, minilm):
    # 8 bits in groups of 32 pack a row like 4 bits in groups of 64: the other tensors tell
    # which input width is real (384 here, the q matrix's output).
    path = tmp_path / "model.safetensors"
    a8 = quantise(minilm[FFN_IN].T.copy(), 8, 32)  # [384, 1536]: in = 1536
    write_safetensors(
        path,
        {
            "encoder.layer.2.output.dense.weight": pack_rows(a8.q, 8),
            "encoder.layer.2.output.dense.scales": a8.scales,
            "encoder.layer.2.output.dense.biases": a8.biases,
            FFN_IN: minilm[FFN_IN].astype(np.float16),  # shows 1536
        },
        None,
    )
    _, rows, _ = _read(path, Settings(exact=True))
    down = rows["encoder.layer.2.output.dense.weight"]
    assert down.header.dtype == "MLX-int8-g32" and down.header.shape == (384, 1536)
    np.testing.assert_array_equal(down.values, a8.dequantised())


def test_a_per_module_override_in_the_config_wins(tmp_path, minilm):
    path = tmp_path / "model.safetensors"
    want = _write(path, {Q: minilm[Q]}, 8, 32)
    prefix = Q.removesuffix(".weight")
    quant = {"bits": 4, "group_size": 64, prefix: {"bits": 8, "group_size": 32}}
    header, rows, _ = _read(path, Settings(exact=True), quant)
    assert header.tensors[0].dtype == "MLX-int8-g32"
    np.testing.assert_array_equal(rows[Q].values, want[Q])


def test_missing_biases_is_one_line_naming_the_file(tmp_path, minilm):
    a = quantise(minilm[Q], 4, 64)
    path = tmp_path / "model.safetensors"
    write_safetensors(path, {Q: pack_rows(a.q, 4), Q.removesuffix("weight") + "scales": a.scales}, None)
    with pytest.raises(FormatError) as err:
        _read(path, Settings())
    assert str(err.value) == (
        "test/mlx:model.safetensors: tensor encoder.layer.2.attention.self.query.biases is missing "
        "(MLX affine needs scales and biases)"
    )


def test_a_config_with_only_mlx_quantization_settles_what_the_shapes_cannot(tmp_path, minilm):
    # One int8-g32 matrix and nothing else: the shapes fit 4 bits in groups of 64 as well.
    a8 = quantise(minilm[FFN_IN], 8, 32)
    repo = tmp_path / "org" / "mlx-8bit"
    repo.mkdir(parents=True)
    prefix = FFN_IN.removesuffix(".weight")
    tensors = {FFN_IN: pack_rows(a8.q, 8), f"{prefix}.scales": a8.scales, f"{prefix}.biases": a8.biases}
    write_safetensors(repo / "model.safetensors", tensors, None)
    (repo / "config.json").write_text(json.dumps({"quantization": {"group_size": 32, "bits": 8}}))
    out = fingerprint_model(local_model(repo, "org/mlx-8bit"), Settings(store=tmp_path / "store"))
    assert out.ok, out.errors
    (row,) = out.tensor_rows
    assert (row["dtype"], row["shape"]) == ("MLX-int8-g32", [1536, 384])


def test_an_mlx_mode_other_than_affine_is_named_not_misread(tmp_path, minilm):
    a = quantise(minilm[Q], 4, 32)
    path = tmp_path / "model.safetensors"
    scales = np.full(a.scales.shape, 127, np.uint8)  # mxfp4 keeps one E8M0 exponent per group, no bias
    write_safetensors(path, {Q: pack_rows(a.q, 4), Q.removesuffix("weight") + "scales": scales}, None)
    with pytest.raises(UnsupportedDtype) as err:
        _read(path, Settings(), {"group_size": 32, "bits": 4, "mode": "mxfp4"})
    assert str(err.value) == f"test/mlx:model.safetensors: tensor {Q}: MLX mxfp4 quantisation is not read yet"


def test_a_layer_whose_biases_are_in_the_next_shard_is_left_out(tmp_path, minilm):
    a = quantise(minilm[Q], 4, 64)
    k = "encoder.layer.2.attention.self.key.weight"
    b = quantise(minilm[k], 4, 64)
    repo = tmp_path / "org" / "sharded-mlx"
    repo.mkdir(parents=True)
    qp, kp = Q.removesuffix("weight"), k.removesuffix("weight")
    first = {Q: pack_rows(a.q, 4), qp + "scales": a.scales, qp + "biases": a.biases}
    first |= {k: pack_rows(b.q, 4), kp + "scales": b.scales}
    write_safetensors(repo / "model-00001-of-00002.safetensors", first, None)
    second = {
        kp + "biases": b.biases,
        "encoder.layer.2.attention.output.LayerNorm.weight": np.ones(384, np.float32),
    }
    write_safetensors(repo / "model-00002-of-00002.safetensors", second, None)
    out = fingerprint_model(local_model(repo, "org/sharded-mlx"), Settings(store=tmp_path / "store"))
    assert out.ok, out.errors
    assert {r["name"] for r in out.tensor_rows} == {Q, "encoder.layer.2.attention.output.LayerNorm.weight"}
