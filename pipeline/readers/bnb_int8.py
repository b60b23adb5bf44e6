"""bitsandbytes 8-bit (LLM.int8) Linears, rebuilt by rows.

``Linear8bitLt`` as transformers saves it: ``<m>.weight`` I8 [out, in], row-wise absmax scaled to
127, with ``<m>.SCB`` F32 [out] (each row's absmax) and a ``<m>.weight_format`` U8 flag (0: row
major). W[o] = weight[o] * SCB[o] / 127. Weight rows and SCB entries are both contiguous, so a
sampled row block costs two small ranges.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import partial

import numpy as np

from hubscan.pipeline.config import Settings
from hubscan.pipeline.errors import FormatError
from hubscan.pipeline.readers.bnb import block_values
from hubscan.pipeline.readers.byte_source import ByteSource
from hubscan.pipeline.readers.dtypes import SAFETENSORS_DTYPES
from hubscan.pipeline.readers.records import CheckpointHeader, RowBlock, TensorHeader, logical_matrix

SCHEME = "INT8-bnb"


@dataclass(frozen=True)
class Bnb8bit:
    """One LLM.int8 Linear: int8 rows and each row's absmax."""

    logical: TensorHeader
    weight: TensorHeader
    scb: TensorHeader

    def spans(self, blocks: tuple[RowBlock, ...]) -> tuple[tuple[object, int, int], ...]:
        """Per block: its int8 rows and its SCB entries."""
        item = SAFETENSORS_DTYPES[self.scb.dtype].itemsize
        found: list[tuple[object, int, int]] = []
        for b in blocks:
            found.append(((self.weight.name, b.first), *self.weight.row_span(b.first, b.count)))
            scb = (self.scb.start + b.first * item, self.scb.start + (b.first + b.count) * item)
            found.append(((self.scb.name, b.first), *scb))
        return tuple(found)

    def dequantise(self, data: Mapping[object, bytes], blocks: tuple[RowBlock, ...]) -> np.ndarray:
        """weight * SCB / 127 for the rows of ``blocks``, in float32."""
        out = []
        for b in blocks:
            w = block_values(self.weight, data, b, b.count * self.logical.n_cols).astype(np.float32)
            scb = block_values(self.scb, data, b, b.count).astype(np.float32)
            out.append(w.reshape(b.count, -1) * (scb / np.float32(127))[:, None])
        return np.concatenate(out) if len(out) > 1 else out[0]


def group(
    header: CheckpointHeader, source: ByteSource, settings: Settings, quant: Mapping[str, object] | None
) -> CheckpointHeader:
    """The header with each LLM.int8 Linear's weight and SCB replaced by one logical ``<m>.weight``.

    Raises:
        FormatError: a weight beside an SCB is not int8 [out, in], or the SCB does not fit it.
    """
    by_name = {t.name: t for t in header.tensors}
    bad = partial(FormatError, source.repo_id, source.revision, source.name)
    found: dict[str, Bnb8bit] = {}
    for n, t in by_name.items():
        weight = by_name.get(n.removesuffix("SCB") + "weight") if n.endswith(".SCB") else None
        if weight is not None:
            layer = _layer(weight, t, bad)
            found[layer.logical.name] = layer
    if not found:
        return header
    used = {t.name for p in found.values() for t in (p.weight, p.scb)}
    tensors = [t for t in header.tensors if t.name not in used] + [p.logical for p in found.values()]
    return replace(
        header, tensors=tuple(sorted(tensors, key=lambda t: t.start)), rebuilt={**header.rebuilt, **found}
    )


def _layer(weight: TensorHeader, scb: TensorHeader, bad: partial[FormatError]) -> Bnb8bit:
    if weight.dtype != "I8" or len(weight.shape) != 2:
        raise bad(
            f"tensor {weight.name}: {weight.dtype}{list(weight.shape)} beside {scb.name} is not int8 [out, in]"
        )
    if scb.dtype not in ("F32", "F16") or scb.numel != weight.shape[0]:
        raise bad(f"tensor {scb.name}: {scb.dtype}{list(scb.shape)}, expected F32[{weight.shape[0]}]")
    logical = logical_matrix(weight.name, SCHEME, *weight.shape, weight)
    return Bnb8bit(logical, weight, scb)
