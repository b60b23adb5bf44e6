"""The models and tensors schemas come from the records' field lists; stores written before must still read."""

from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq

from hubscan.pipeline.fingerprints.model import ModelRecord
from hubscan.pipeline.fingerprints.tensor import TensorFingerprint
from hubscan.pipeline.storage.parquet import Store
from hubscan.pipeline.storage.schema import MODELS, TENSORS

_f32_list = pa.list_(pa.float32())
_i64_list = pa.list_(pa.int64())
_str_list = pa.list_(pa.string())

# The literal schemas as written by hand before the records defined them (issue 15): column names,
# types and order of every store written so far.
OLD_MODELS = pa.schema(
    [
        ("repo_id", pa.string()),
        ("revision", pa.string()),
        ("source", pa.string()),
        ("endpoint", pa.string()),
        ("format", pa.string()),
        ("files", _str_list),
        ("architecture", pa.string()),
        ("model_type", pa.string()),
        ("layers", pa.int64()),
        ("hidden", pa.int64()),
        ("heads", pa.int64()),
        ("kv_heads", pa.int64()),
        ("intermediate", pa.int64()),
        ("experts", pa.int64()),
        ("vocab", pa.int64()),
        ("params", pa.int64()),
        ("dtype", pa.string()),
        ("base_models", _str_list),
        ("copy_of", pa.string()),
        ("sweep_id", pa.string()),
        ("license", pa.string()),
        ("checkpoint_bytes", pa.int64()),
        ("bytes_read", pa.int64()),
        ("requests", pa.int64()),
        ("api_requests", pa.int64()),
        ("resolver_requests", pa.int64()),
        ("cdn_requests", pa.int64()),
        ("tensors", pa.int64()),
        ("has_tokens", pa.bool_()),
        ("exact", pa.bool_()),
        ("seed", pa.int64()),
        ("seconds", pa.float64()),
        ("fingerprinted_at", pa.timestamp("us", tz="UTC")),
        ("hubscan_version", pa.string()),
        ("schema_version", pa.int32()),
        ("local_dir", pa.string()),
        ("license_name", pa.string()),
        ("created_at", pa.timestamp("us", tz="UTC")),
        ("code_notices", _str_list),
        # issue 23: a PEFT adapter's facts, added last so older stores still read
        ("adapter_type", pa.string()),
        ("adapter_base", pa.string()),
        ("adapter_rank", pa.int64()),
        ("adapter_alpha", pa.float64()),
        ("adapter_targets", _str_list),
        ("adapter_layers", _i64_list),
        # issue 22: the Hub's relation for each declared base ("quantized:org/base"), last again
        ("base_relations", _str_list),
    ]
)

OLD_TENSORS = pa.schema(
    [
        ("repo_id", pa.string()),
        ("revision", pa.string()),
        ("file", pa.string()),
        ("name", pa.string()),
        ("role", pa.string()),
        ("layer", pa.int64()),
        ("expert", pa.int64()),
        ("kind", pa.string()),
        ("transposed", pa.bool_()),
        ("dtype", pa.string()),
        ("shape", _i64_list),
        ("numel", pa.int64()),
        ("sampled", pa.bool_()),
        ("rows_read", pa.int64()),
        ("mean", pa.float64()),
        ("std", pa.float64()),
        ("rms", pa.float64()),
        ("absmax", pa.float64()),
        ("kurtosis", pa.float64()),
        ("sketch", _f32_list),
        ("row_idx", _i64_list),
        ("row_norms", _f32_list),
        ("col_norms", _f32_list),
        ("dim_std", _f32_list),
        ("values", _f32_list),
        ("tokens", _str_list),
        ("token_vectors", _f32_list),
    ]
)


def test_the_derived_schemas_equal_the_ones_stores_were_written_with():
    assert MODELS.equals(OLD_MODELS, check_metadata=True)
    assert TENSORS.equals(OLD_TENSORS, check_metadata=True)


def _tensor(**changes: object) -> TensorFingerprint:
    row: dict[str, object] = {
        "repo_id": "org/a", "revision": "1" * 40, "file": "model.safetensors", "name": "embed.weight",
        "role": "embed", "layer": None, "expert": None, "kind": "matrix", "transposed": False,
        "dtype": "F16", "shape": [30, 8], "numel": 240, "sampled": True, "rows_read": 2,
        "mean": 0.125, "std": 1.5, "rms": 1.25, "absmax": 4.0, "kurtosis": 3.0,
        "sketch": [0.5, -0.25], "row_idx": [0, 7], "row_norms": [1.0, 2.0], "col_norms": [0.75],
        "dim_std": [0.5], "values": [], "tokens": ["[CLS]", "the"], "token_vectors": [1.5, -2.0],
    }  # fmt: skip
    return TensorFingerprint.from_row({**row, **changes})


def _model(**changes: object) -> ModelRecord:
    row: dict[str, object] = {
        "repo_id": "org/a", "revision": "1" * 40, "source": "hub", "endpoint": "http://127.0.0.1:1",
        "format": "safetensors", "files": ["model.safetensors"], "architecture": "BertModel",
        "model_type": "bert", "layers": 6, "hidden": 384, "heads": 12, "kv_heads": None,
        "intermediate": 1536, "experts": None, "vocab": 30522, "params": 22_700_000, "dtype": "F32",
        "base_models": ["org/base"], "copy_of": None, "sweep_id": "s1", "license": "apache-2.0",
        "checkpoint_bytes": 90_000_000, "bytes_read": 1_000_000, "requests": 9, "api_requests": 1,
        "resolver_requests": 2, "cdn_requests": 6, "tensors": 104, "has_tokens": True, "exact": False,
        "seed": 0, "seconds": 1.5, "fingerprinted_at": datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        "hubscan_version": "0.1", "schema_version": 1, "local_dir": None, "license_name": None,
        "created_at": datetime(2024, 5, 6, tzinfo=UTC), "code_notices": ["a.py:1: (c) other"],
        "adapter_type": "LORA", "adapter_base": "org/base", "adapter_rank": 8, "adapter_alpha": 16.0,
        "adapter_targets": ["q_proj", "v_proj"], "adapter_layers": [0, 1],
        "base_relations": ["finetune:org/base"],
    }  # fmt: skip
    return ModelRecord.from_row({**row, **changes})


def test_records_survive_a_trip_through_arrow_and_parquet(tmp_path):
    tensors = [_tensor(), _tensor(name="norm.weight", layer=3, shape=[8], values=[0.5, 1.0], tokens=[])]
    models = [_model(), _model(repo_id="org/b", code_notices=None, created_at=None, adapter_type=None,
                               adapter_base=None, adapter_rank=None, adapter_alpha=None, adapter_targets=None,
                               adapter_layers=None, base_relations=None)]  # fmt: skip
    for kind, records in ((TensorFingerprint, tensors), (ModelRecord, models)):
        path = tmp_path / f"{kind.__name__}.parquet"
        pq.write_table(kind.as_arrow(records), path)
        assert kind.from_arrow(pq.read_table(path)) == records


def test_a_stored_model_reads_back_as_the_record_written(tmp_path):
    store = Store(tmp_path / "store").init()
    model, tensor = _model(), _tensor()
    store.write_model(model.as_row(), [tensor.as_row()])
    assert TensorFingerprint.from_arrow(store.dataset("tensors").to_table()) == [tensor]
    stored = ModelRecord.from_arrow(store.dataset("models").to_table())
    assert [r.repo_id for r in stored] == ["org/a"] and stored[0].fingerprinted_at == model.fingerprinted_at
