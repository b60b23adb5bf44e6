"""compressed-tensors int/FP8/FP4 and block-FP8 Linears are rebuilt row for row; EXL2/EXL3 are refused in one line.

The files are all-MiniLM-L6-v2's real weights quantised by testbed/writers/scaled_quant.py, which
also returns the dequantised weights a correct reader must reproduce.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from hubscan.pipeline.config import Settings
from hubscan.pipeline.errors import FormatError, UnsupportedFormat
from hubscan.pipeline.readers import checkpoint
from hubscan.pipeline.readers.byte_source import LocalFile
from hubscan.pipeline.roles import classify_all
from hubscan.testbed.writers import scaled_quant
from hubscan.testbed.writers.safetensors_write import read_safetensors_np, write_safetensors
from tests.real_checkpoints import real_model

# scheme -> (dtype of its Linears, largest relative Frobenius error of a matrix against the original;
# measured worst: int4 g128 0.150, g64 asym 0.102, int8 0.021, FP8 0.027, NVFP4 0.095, MXFP4 0.129)
EXPECTED = {
    "w4a16": ("INT4-g128", 0.16),
    "w4a16-asym": ("INT4-g64", 0.11),
    "w8a16": ("INT8-channel", 0.025),
    "w8a8-int8": ("INT8-channel", 0.025),
    "fp8-tensor": ("FP8-E4M3-tensor", 0.03),
    "fp8-channel": ("FP8-E4M3-channel", 0.03),
    "fp8-block": ("FP8-E4M3-block128", 0.03),
    "fp8-scale-inv": ("FP8-E4M3-block128", 0.03),
    "nvfp4": ("NVFP4", 0.1),
    "mxfp4": ("MXFP4", 0.14),
}
AUXILIARIES = ("weight_packed", "weight_scale", "weight_zero_point", "weight_global_scale", "weight_shape")
AUXILIARIES += ("weight_scale_inv", "input_scale")


@pytest.fixture(scope="module")
def original() -> dict[str, np.ndarray]:
    return read_safetensors_np(real_model("minilm-l6") / "model.safetensors")


def _write(tmp_path, tensors, name="model.safetensors"):
    path = tmp_path / name
    write_safetensors(path, tensors, None, {"format": "pt"})
    return path


def _read(path, settings, quant=None):
    with LocalFile(path, "org/quant", "abc1234") as f:
        header = checkpoint.read_header(f, settings, quant)
        roles = classify_all([t.name for t in header.tensors], {t.name: t.shape for t in header.tensors})
        rows = {r.header.name: r for r in checkpoint.read_rows(f, header, settings, lambda n: roles[n].role)}
        return header, rows, f.stats


@pytest.mark.parametrize("scheme", sorted(EXPECTED))
def test_every_row_is_rebuilt_exactly_as_the_quantiser_dequantises_it(tmp_path, original, scheme):
    stored, dequantised = scaled_quant.quantised_tensors(original, scheme)
    header, rows, _ = _read(_write(tmp_path, stored), Settings(exact=True), scaled_quant.SCHEMES[scheme][1])
    dtype, max_err = EXPECTED[scheme]
    assert sorted(header.scaled) == sorted(dequantised) and len(dequantised) == 36
    for name, want in dequantised.items():
        got = rows[name]
        assert got.header.dtype == dtype and got.header.shape == want.shape
        np.testing.assert_array_equal(got.values, want)
        err = np.linalg.norm(want - original[name]) / np.linalg.norm(original[name])
        assert err <= max_err, (name, err)
    # no quantiser auxiliary is a tensor of its own; params count the original weights
    assert not [t.name for t in header.tensors if t.name.rpartition(".")[2] in AUXILIARIES]
    assert sum(t.numel for t in header.tensors) == sum(a.size for a in original.values())


@pytest.mark.parametrize("scheme", ["w4a16-asym", "fp8-channel", "fp8-scale-inv", "nvfp4", "mxfp4"])
def test_sampled_rows_are_read_by_range_and_match_the_same_rows_read_whole(tmp_path, original, scheme):
    stored, dequantised = scaled_quant.quantised_tensors(original, scheme)
    path = _write(tmp_path, stored)
    _, rows, stats = _read(path, Settings())
    for name, want in dequantised.items():
        got = rows[name]
        assert got.sampled and len(got.rows) < want.shape[0]
        np.testing.assert_array_equal(got.values, want[got.rows])
    # the sampled rows of codes and scales, not the whole parts: a small share of the file
    assert stats.bytes <= path.stat().st_size / 5, stats


def test_quantisation_config_naming_another_format_is_one_line(tmp_path, original):
    stored, _ = scaled_quant.quantised_tensors(original, "nvfp4")
    path = _write(tmp_path, stored)
    with pytest.raises(FormatError) as e:
        _read(path, Settings(), scaled_quant.SCHEMES["w4a16"][1])
    assert str(e.value) == (
        "org/quant@abc1234:model.safetensors: tensor encoder.layer.0.attention.output.dense.weight: "
        "quantization_config says pack-quantized but the parts are nvfp4-pack-quantized"
    )


@pytest.mark.parametrize(("scheme", "missing"), [("fp8-channel", "weight"), ("nvfp4", "weight_scale")])
def test_a_linear_split_across_shards_is_left_out_and_the_rest_is_read(tmp_path, original, scheme, missing):
    stored, dequantised = scaled_quant.quantised_tensors(original, scheme)
    prefix = "encoder.layer.3.intermediate.dense"
    del stored[f"{prefix}.{missing}"]  # in the next shard
    header, rows, _ = _read(_write(tmp_path, stored), Settings(exact=True))
    # neither the stray parts nor codes without their scale become tensors of their own
    assert [t.name for t in header.tensors if t.name.startswith(prefix + ".")] == [f"{prefix}.bias"]
    assert len(header.scaled) == 35 and f"{prefix}.weight" not in rows
    for name in header.scaled:
        np.testing.assert_array_equal(rows[name].values, dequantised[name])


@pytest.mark.parametrize(
    ("fmt", "params", "first"),
    [
        ("EXL2", ("q_weight", "q_scale", "q_scale_max", "q_groups", "q_invperm"), "q_weight"),
        ("EXL3", ("trellis", "suh", "svh"), "trellis"),
    ],
)
def test_exllama_files_are_refused_with_one_line_naming_model_and_file(
    tmp_path, original, fmt, params, first
):
    tensors = {k: v for k, v in original.items() if "encoder.layer" not in k}
    for layer in range(2):
        for p in params:
            tensors[f"model.layers.{layer}.self_attn.q_proj.{p}"] = np.zeros((4, 8), np.int32)
    with pytest.raises(UnsupportedFormat) as e:
        _read(_write(tmp_path, tensors), Settings())
    assert str(e.value) == (
        f"org/quant@abc1234:model.safetensors: tensor model.layers.0.self_attn.q_proj.{first}: "
        f"{fmt}-quantised Linears (2 here) keep no original row in any byte range; hubscan does not decode {fmt}"
    )
    assert e.value.permanent and str(pickle.loads(pickle.dumps(e.value))) == str(e.value)


def test_asymmetric_int8_codes_subtract_their_zero_points(tmp_path, original):
    stored: dict[str, np.ndarray] = {}
    dequantised: dict[str, np.ndarray] = {}
    for name in [n for n in original if n.startswith("encoder.layer.0.") and original[n].ndim == 2]:
        parts, dequantised[name] = scaled_quant.int_quantise(original[name], 8, 0, False, packed=False)
        stored.update({f"{name.removesuffix('.weight')}.{k}": v for k, v in parts.items()})
    assert len(dequantised) == 6 and any(k.endswith("weight_zero_point") for k in stored)
    header, rows, _ = _read(_write(tmp_path, stored), Settings(exact=True))
    assert [t.name for t in header.tensors] == sorted(
        dequantised, key=lambda n: header.scaled[n].logical.start
    )
    for name, want in dequantised.items():
        assert rows[name].header.dtype == "INT8-channel"
        np.testing.assert_array_equal(rows[name].values, want)


def test_act_order_groups_follow_weight_g_idx_and_activation_scales_are_dropped(tmp_path, original):
    stored: dict[str, np.ndarray] = {}
    dequantised: dict[str, np.ndarray] = {}
    for name in [n for n in original if n.startswith("encoder.layer.1.") and original[n].ndim == 2]:
        parts, dequantised[name] = scaled_quant.int_quantise(original[name], 4, 64, False, act_order=True)
        prefix = name.removesuffix(".weight")
        stored.update({f"{prefix}.{k}": v for k, v in parts.items()})
        # a W4A8 static scheme's activation scale: the same calibrated constant in any model
        stored[f"{prefix}.input_scale"] = np.array([0.02], np.float32)
    g_idx = stored["encoder.layer.1.attention.self.query.weight_g_idx"]
    assert not np.array_equal(g_idx, np.sort(g_idx))  # not monotone: position alone would misgroup
    header, rows, _ = _read(_write(tmp_path, stored), Settings(exact=True))
    assert sorted(t.name for t in header.tensors) == sorted(dequantised)
    for name, want in dequantised.items():
        assert rows[name].header.dtype == "INT4-g64"
        np.testing.assert_array_equal(rows[name].values, want)
