"""One model revision's record: what it is, where it came from and what reading it cost.

Its fields, in order, are the ``models`` table's columns. Columns added after the first stores were
written come last and are nullable, so older stores still read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

import pyarrow as pa

from hubscan.pipeline.fingerprints.arrow_record import ArrowRecord
from hubscan.pipeline.request_counts import RequestCounts

_str_list = pa.list_(pa.string())
_utc = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True, kw_only=True)
class ModelRecord(ArrowRecord):
    """A row of the ``models`` table; writing it commits the model (its tensors are written first)."""

    repo_id: Annotated[str, pa.string()]
    revision: Annotated[str, pa.string()]
    source: Annotated[str, pa.string()]  # "hub", "local"
    endpoint: Annotated[str | None, pa.string()]
    format: Annotated[str, pa.string()]  # "safetensors", "gguf", "pytorch"
    files: Annotated[list[str], _str_list]
    architecture: Annotated[str | None, pa.string()]
    model_type: Annotated[str | None, pa.string()]
    layers: Annotated[int | None, pa.int64()]
    hidden: Annotated[int | None, pa.int64()]
    heads: Annotated[int | None, pa.int64()]
    kv_heads: Annotated[int | None, pa.int64()]
    intermediate: Annotated[int | None, pa.int64()]
    experts: Annotated[int | None, pa.int64()]
    vocab: Annotated[int | None, pa.int64()]
    params: Annotated[int, pa.int64()]
    dtype: Annotated[str | None, pa.string()]  # the dtype holding most parameters
    base_models: Annotated[list[str], _str_list]  # declared lineage from the model card
    # "repo@sha" whose weight files are byte-identical (nothing read)
    copy_of: Annotated[str | None, pa.string()] = None
    sweep_id: Annotated[str | None, pa.string()] = None  # set by the sweep that committed it
    license: Annotated[str | None, pa.string()]
    checkpoint_bytes: Annotated[int, pa.int64()]
    bytes_read: Annotated[int, pa.int64()]
    requests: Annotated[int, pa.int64()]
    api_requests: Annotated[int, pa.int64()]  # counted by the Hub's API quota
    resolver_requests: Annotated[
        int, pa.int64()
    ]  # counted by its resolvers quota (/resolve/ on the Hub host)
    cdn_requests: Annotated[int, pa.int64()]  # ranges read from the signed CDN URL: in no quota
    tensors: Annotated[int, pa.int64()]
    has_tokens: Annotated[bool, pa.bool_()]
    exact: Annotated[bool, pa.bool_()]
    seed: Annotated[int, pa.int64()]
    seconds: Annotated[float, pa.float64()]
    fingerprinted_at: Annotated[datetime, _utc]
    # stamped by the store when it writes the row
    hubscan_version: Annotated[str | None, pa.string()] = None
    schema_version: Annotated[int | None, pa.int32()] = None
    # The repo's folder on this machine (a local source, or the folder the demo hub served):
    # compare reads whole matrices from it.
    local_dir: Annotated[str | None, pa.string()]
    license_name: Annotated[str | None, pa.string()]  # the card's name for an ``other`` licence
    created_at: Annotated[datetime | None, _utc]  # the Hub's createdAt (null for local folders)
    # "file:line: text" copyright / licence header lines of model code naming another organisation
    # (sweep --read-code; null when the code was not read)
    code_notices: Annotated[list[str] | None, _str_list] = None
    # A PEFT adapter's facts (adapter_config.json and its tensors): null for a model with weights of its
    # own. Columns of the models row, not a table: one adapter is one model revision, committed with it.
    adapter_type: Annotated[str | None, pa.string()] = None  # "LORA", "DORA", "IA3", …
    adapter_base: Annotated[str | None, pa.string()] = None  # base_model_name_or_path
    adapter_rank: Annotated[int | None, pa.int64()] = None
    adapter_alpha: Annotated[float | None, pa.float64()] = None
    adapter_targets: Annotated[list[str] | None, _str_list] = None  # target_modules as declared
    adapter_layers: Annotated[list[int] | None, pa.list_(pa.int64())] = None  # blocks it adapts
    # "relation:base" for declared bases whose relation the Hub's tags (base_model:<relation>:<id>) or a
    # local card's base_model_relation state: finetune, adapter, quantized, merge
    base_relations: Annotated[list[str] | None, _str_list] = None

    @property
    def counts(self) -> RequestCounts:
        """The model's requests and bytes read, as one record."""
        return RequestCounts(
            self.requests, self.api_requests, self.resolver_requests, self.cdn_requests, self.bytes_read
        )
