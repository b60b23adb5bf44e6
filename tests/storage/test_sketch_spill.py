"""The sketch spill gives back exactly the rows it was written, model by model, whatever order the scan
interleaved them in and whichever models a read asks for."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from hubscan.pipeline.storage.sketch_spill import SketchSpill

SCHEMA = pa.schema(
    {
        "repo_id": pa.string(),
        "revision": pa.string(),
        "role": pa.string(),
        "layer": pa.int32(),
        "expert": pa.int32(),
        "shape": pa.list_(pa.int64()),
        "transposed": pa.bool_(),
        "row_idx": pa.list_(pa.int64()),
        "sketch": pa.list_(pa.float32()),
    }
)


def _rows(seed: int, models: list[tuple[str, str]], count: int) -> list[dict]:
    """Rows of several models interleaved, as a parallel scan streams them; some without row indices."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(count):
        repo, revision = models[i % len(models)]
        width = int(rng.integers(0, 9))
        rows.append({
            "repo_id": repo, "revision": revision, "role": ("attn_q", "mlp_up")[i % 2], "layer": i // 2,
            "expert": -1 if i % 3 else 0, "shape": [width, 16], "transposed": bool(i % 5 == 0),
            "row_idx": None if i % 4 == 0 else rng.integers(0, 100, width).tolist(),
            "sketch": rng.standard_normal(width).astype(np.float32).tolist(),
        })  # fmt: skip
    return rows


def _expected(rows: list[dict]) -> dict:
    out: dict = {}
    for r in rows:
        slot = (r["role"], r["layer"], r["expert"], tuple(r["shape"]), r["transposed"])
        out.setdefault((r["repo_id"], r["revision"]), {})[slot] = (tuple(r["row_idx"] or ()), r["sketch"])
    return out


def test_reads_give_back_each_models_rows_across_interleaved_batches():
    models = [(f"org/m{i}", "r0") for i in range(4)] + [("org/m1", "r1")]
    first, second = _rows(1, models, 23), _rows(2, models[::-1], 17)
    batches = [pa.RecordBatch.from_pylist(b, schema=SCHEMA) for b in (first, second)]
    want = _expected(first + second)
    spill = SketchSpill.write(
        pa.RecordBatchReader.from_batches(SCHEMA, batches), [*models, ("org/none", "r0")]
    )
    try:
        for asked in ([models[0]], [models[1], models[4]], models, [models[3], models[0]]):
            got = spill.read(asked)
            assert set(got) == set(asked)
            for m in asked:
                assert set(got[m]) == set(want[m])
                for slot, sketch in got[m].items():
                    row_idx, values = want[m][slot]
                    assert sketch.row_idx == row_idx
                    assert sketch.values.dtype == np.float32
                    np.testing.assert_array_equal(sketch.values, np.asarray(values, np.float32))
        # a model named but with no rows, or never named, is absent
        assert spill.read([("org/none", "r0"), ("org/other", "r0")]) == {}
        assert spill.read([]) == {}
    finally:
        spill.close()
    assert not spill.folder.exists()


def test_a_spill_of_no_rows_reads_nothing():
    spill = SketchSpill.write(pa.RecordBatchReader.from_batches(SCHEMA, []), [("org/a", "r0")])
    try:
        assert spill.read([("org/a", "r0")]) == {}
    finally:
        spill.close()
