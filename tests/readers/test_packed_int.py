"""GPTQ/AWQ packed ints: hand-built files with known numbers, exact round trips, bad input.

Every file here is a real safetensors file read through the real reader path (header,
grouping, merged range reads, dequantisation); expected values are written out by hand or
built with plain Python integers, not with the reader's code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hubscan.jobs import fingerprint
from hubscan.pipeline.config import Settings
from hubscan.pipeline.readers import checkpoint
from hubscan.pipeline.readers.byte_source import LocalFile
from hubscan.pipeline.readers.packed_int import unpack_last
from hubscan.pipeline.roles import classify
from hubscan.pipeline.storage.duckdb import connect
from hubscan.testbed.writers.gptq_pack import awq_tensors, gptq_tensors, pack_bits, rtn_quantise
from hubscan.testbed.writers.safetensors_write import write_safetensors

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
PREFIX = "layers.0.attn.q_proj"


def _i32(word: int) -> int:
    """An unsigned 32-bit pattern as the int32 safetensors stores."""
    return word - (1 << 32) if word >= 1 << 31 else word


def _read(path: Path, settings: Settings | None = None) -> dict[str, tuple[object, np.ndarray, np.ndarray]]:
    """name -> (header, rows, values) through the real reader."""
    settings = settings or Settings()
    with LocalFile(path, "test/packed") as src:
        header = checkpoint.read_header(src, settings)
        return {
            r.header.name: (r.header, r.rows, r.values)
            for r in checkpoint.read_rows(src, header, settings, lambda n: classify(n).role)
        }


def test_hand_built_gptq_with_act_order_groups(tmp_path):
    # W is [8 out, 8 in], 4 bits, 2 groups; g_idx interleaves the groups as act-order does.
    # q[i, o] = i, so every qweight word holds nibbles 0..7, low first: 0x76543210.
    # v1 zeros minus one: group 0 zero 3 (stored 2), group 1 zero 5 (stored 4).
    scales = np.array([[0.5] * 8, [0.25] * 4 + [1.0] * 4], dtype=np.float16)
    write_safetensors(
        tmp_path / "model.safetensors",
        {
            f"{PREFIX}.qweight": np.full((1, 8), 0x76543210, dtype=np.int32),
            f"{PREFIX}.qzeros": np.array([[0x22222222], [0x44444444]], dtype=np.int32),
            f"{PREFIX}.scales": scales,
            f"{PREFIX}.g_idx": np.array([0, 1, 0, 1, 0, 1, 0, 1], dtype=np.int32),
        },
    )
    got = _read(tmp_path / "model.safetensors")
    assert list(got) == [f"{PREFIX}.weight"]
    header, rows, values = got[f"{PREFIX}.weight"]
    assert header.shape == (8, 8) and header.dtype == "GPTQ-int4-g4"
    assert rows.tolist() == list(range(8))
    # W[o, i] = s[g(i), o] * (i - z[g(i)]): even i use 0.5 * (i - 3), odd i s1[o] * (i - 5)
    assert values[0].tolist() == [-1.5, -1.0, -0.5, -0.5, 0.5, 0.0, 1.5, 0.5]
    assert values[7].tolist() == [-1.5, -4.0, -0.5, -2.0, 0.5, 0.0, 1.5, 2.0]


def test_hand_built_awq_interleaved_outputs(tmp_path):
    # W is [8 out, 2 in]; input 0 holds q = o + 1 for output o. AWQ puts output ORDER[k] in
    # nibble k, ORDER = 0,2,4,6,1,3,5,7: nibbles 1,3,5,7,2,4,6,8 -> word 0x86427531.
    write_safetensors(
        tmp_path / "model.safetensors",
        {
            f"{PREFIX}.qweight": np.array([[_i32(0x86427531)], [0]], dtype=np.int32),
            f"{PREFIX}.qzeros": np.array([[0x11111111]], dtype=np.int32),  # zero 1, stored as is
            f"{PREFIX}.scales": np.full((1, 8), 0.5, dtype=np.float16),
        },
    )
    header, _, values = _read(tmp_path / "model.safetensors")[f"{PREFIX}.weight"]
    assert header.dtype == "AWQ-int4" and header.shape == (8, 2)
    assert values[:, 0].tolist() == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5]
    assert values[:, 1].tolist() == [-0.5] * 8


def test_three_bit_values_cross_word_boundaries_as_one_stream():
    values = [j % 8 for j in range(64)]
    stream = sum(v << (3 * j) for j, v in enumerate(values))  # plain Python integers
    words = np.array([[_i32((stream >> (32 * k)) & 0xFFFFFFFF) for k in range(6)]], dtype=np.int32)
    assert unpack_last(words, 3, 64)[0].tolist() == values


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_reader_unpacks_what_the_independent_packer_packed(bits):
    v = np.random.default_rng(bits).integers(0, 1 << bits, size=(7, 96))
    assert np.array_equal(unpack_last(pack_bits(v, bits), bits, 96), v)


@pytest.fixture(scope="module")
def minilm_q(testbed) -> np.ndarray:
    from hubscan.testbed.demohub.variants import load_repo_tensors

    return load_repo_tensors(testbed / MINILM)["encoder.layer.2.intermediate.dense.weight"]


@pytest.mark.parametrize(
    "scheme,bits,group,act_order",
    [
        ("GPTQ", 4, 128, True),
        ("GPTQ", 3, 128, True),
        ("GPTQ", 8, 64, False),
        ("GPTQ", 2, 32, True),
        ("AWQ", 4, 64, False),
    ],
)
def test_pack_then_read_equals_the_rtn_matrix_bit_for_bit(tmp_path, minilm_q, scheme, bits, group, act_order):
    qz = rtn_quantise(minilm_q, bits, group, act_order, min_zero=1 if scheme == "GPTQ" else 0)
    name = "encoder.layer.2.intermediate.dense"
    parts = gptq_tensors(name, qz) if scheme == "GPTQ" else awq_tensors(name, qz)
    write_safetensors(tmp_path / "model.safetensors", parts)
    expected = qz.dequantised()
    assert act_order is (not np.array_equal(qz.g_idx, np.sort(qz.g_idx)))
    exact = _read(tmp_path / "model.safetensors", Settings(exact=True))[f"{name}.weight"]
    assert exact[0].shape == (1536, 384) and np.array_equal(exact[2], expected)
    # sampled: the same head and tail rows the unquantised base reads, bit for bit
    _, rows, values = _read(tmp_path / "model.safetensors")[f"{name}.weight"]
    assert rows.tolist() == [*range(8), *range(1528, 1536)]
    assert np.array_equal(values, expected[rows])


def _bad_repo(root: Path, name: str, tensors: dict[str, np.ndarray]) -> str:
    write_safetensors(root / "bad" / name / "model.safetensors", tensors)
    return str(root / "bad" / name)


def _gptq_parts(out: int, n_in: int, bits: int, groups: int) -> dict[str, np.ndarray]:
    return {
        f"{PREFIX}.qweight": np.zeros((n_in * bits // 32, out), dtype=np.int32),
        f"{PREFIX}.qzeros": np.zeros((groups, out * bits // 32), dtype=np.int32),
        f"{PREFIX}.scales": np.ones((groups, out), dtype=np.float16),
    }


BAD = {
    "qweight-scales": (
        {**_gptq_parts(32, 64, 4, 2), f"{PREFIX}.scales": np.ones((2, 48), dtype=np.float16)},
        f"tensor {PREFIX}.qweight: shape [8, 32] fits neither GPTQ nor AWQ with {PREFIX}.scales [2, 48] "
        f"and {PREFIX}.qzeros [2, 4]",
    ),
    "qzeros-scales": (
        {**_gptq_parts(32, 64, 4, 2), f"{PREFIX}.qzeros": np.zeros((1, 4), dtype=np.int32)},
        f"tensor {PREFIX}.qzeros: shape [1, 4], {PREFIX}.scales [2, 32] needs [2, 4]",
    ),
    "five-bits": (
        _gptq_parts(32, 64, 5, 2),
        f"tensor {PREFIX}.qzeros: shape [2, 5] packs 5 bits per weight, not 2, 3, 4 or 8",
    ),
    "g-idx-range": (
        {**_gptq_parts(32, 64, 4, 2), f"{PREFIX}.g_idx": np.array([0] * 40 + [7] + [1] * 23, dtype=np.int32)},
        f"tensor {PREFIX}.weight: {PREFIX}.g_idx[40] = 7 is outside the 2 groups of {PREFIX}.scales",
    ),
    "missing-scales": (
        {k: v for k, v in _gptq_parts(32, 64, 4, 2).items() if not k.endswith("scales")},
        f"tensor {PREFIX}.scales is missing (GPTQ/AWQ parts split across files are not read)",
    ),
}


def test_bad_packed_ints_are_one_line_format_errors_and_the_run_goes_on(testbed, tmp_path):
    repos = {kind: _bad_repo(tmp_path, kind, tensors) for kind, (tensors, _) in BAD.items()}
    settings = Settings(store=tmp_path / "store")
    summary = fingerprint.run(settings, [*repos.values(), str(testbed / "demohub/all-MiniLM-L6-v2-GPTQ")])
    assert (summary.done, summary.failed, summary.exit_code) == (1, len(BAD), 3)
    con = connect(settings.store)
    rows = {r: (c, m) for r, c, m in con.sql("SELECT repo_id, category, message FROM failures").fetchall()}
    for kind, (_, reason) in BAD.items():
        category, message = rows[f"bad/{kind}"]
        assert category == "FormatError" and "\n" not in message
        assert message.startswith(f"bad/{kind}@") and message.endswith(f":model.safetensors: {reason}"), (
            message
        )


@pytest.mark.parametrize(
    "name,role,layer",
    [
        ("model.layers.3.self_attn.q_proj.qweight", "attn_q", 3),
        ("model.layers.3.mlp.down_proj.g_idx", "mlp_down", 3),
        ("encoder.layer.5.intermediate.dense.scales", "mlp_up", 5),
        ("transformer.h.2.mlp.dense_4h_to_h.qzeros", "mlp_down", 2),
    ],
)
def test_packed_part_names_keep_their_linears_role_as_kind_quant(name, role, layer):
    r = classify(name)
    assert (r.role, r.layer, r.kind) == (role, layer, "quant")
