"""Read one weight file: header, row plan, merged ranged requests, decoded rows.

The format modules (safetensors.py, gguf.py, torch_zip.py) only parse headers and decode rows;
this module owns the plan so every format costs the same number of requests per layer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from types import ModuleType

import numpy as np

from hubscan.pipeline.config import Settings
from hubscan.pipeline.errors import FormatError
from hubscan.pipeline.readers import gguf, packed_int, quantised, safetensors, scaled, torch_zip
from hubscan.pipeline.readers.byte_source import ByteSource
from hubscan.pipeline.readers.ranges import Span, fetch, plan_requests
from hubscan.pipeline.readers.records import (
    CheckpointHeader,
    LocalHeaderGuard,
    PackedLinear,
    Rebuilt,
    RowBlock,
    ScaledLinear,
    TensorHeader,
    TensorRows,
)
from hubscan.pipeline.readers.sampling import plan_rows, row_indices
from hubscan.pipeline.readers.zip_directory import check_guard

FORMATS: dict[str, ModuleType] = {"safetensors": safetensors, "gguf": gguf, torch_zip.FORMAT: torch_zip}
SUFFIXES: dict[str, str] = {
    ".safetensors": "safetensors",
    ".gguf": "gguf",
    **dict.fromkeys(torch_zip.SUFFIXES, torch_zip.FORMAT),
}


def format_of(filename: str) -> str | None:
    """The format a file name promises, or None for files hubscan does not read."""
    for suffix, name in SUFFIXES.items():
        if filename.endswith(suffix):
            return name
    return None


def read_header(
    source: ByteSource, settings: Settings, quant: Mapping[str, object] | None = None
) -> CheckpointHeader:
    """Parse and validate a file's header; GPTQ/AWQ and scaled parts become logical [out, in] weights.

    ``quant`` is a ``quantization_config`` the listing already carried (never fetched for it).

    Raises:
        FormatError: the header cannot be trusted.
    """
    fmt = format_of(source.name)
    if fmt is None:
        raise FormatError(
            source.repo_id, source.revision, source.name, "not a safetensors, GGUF or PyTorch file"
        )
    header: CheckpointHeader = FORMATS[fmt].read_header(source, settings)
    if fmt == "safetensors":
        header = packed_int.group_packed(header, source, quant)
        header = scaled.group_scaled(header, source, quant, settings)
        return quantised.rebuild(header, source, settings, quant)
    # Quantised layers are rebuilt from safetensors only; elsewhere their parts are still no evidence.
    return quantised.drop_auxiliary(header)


def read_rows(
    source: ByteSource,
    header: CheckpointHeader,
    settings: Settings,
    role_of: Callable[[str], str],
    tokens: list[str] | None = None,
) -> Iterator[TensorRows]:
    """Yield the planned rows of every tensor, fetched in merged requests, batch by batch.

    Raises:
        FetchError: a range could not be had.
        FormatError: bytes do not decode as the header promised.
    """
    decode = FORMATS[header.format].decode_rows
    plans = [(t, plan_rows(t, role_of(t.name), settings, tokens)) for t in header.tensors]
    unchecked = list(header.guards)
    for batch in _batches(plans, settings.batch_bytes, header):
        spans = [s for t, blocks in batch for s in _spans(t, blocks, header)]
        names = {t.name for t, _ in batch}
        guards = [g for g in unchecked if names.intersection(g.tensors)]
        unchecked = [g for g in unchecked if g not in guards]
        # Each guard ends where its storage's first rows begin: merged into the same request.
        spans += [Span(g.begin, g.end, key=("guard", g.entry)) for g in guards]
        data = fetch(source, plan_requests(spans, settings.merge_gap_bytes), settings.fetch_concurrency)
        _check_guards(source, guards, data)
        for tensor, blocks in batch:
            packed = header.packed.get(tensor.name)
            rebuilt = header.rebuilt.get(tensor.name)
            if packed is not None:
                yield _dequantise(source, packed, blocks, data)
            elif tensor.name in header.scaled:
                yield _rebuild_scaled(source, header.scaled[tensor.name], blocks, data)
            elif rebuilt is not None:
                yield _rebuild(source, rebuilt, blocks, data)
            else:
                yield _decode(source, tensor, blocks, data, decode)


def _spans(tensor: TensorHeader, blocks: tuple[RowBlock, ...], header: CheckpointHeader) -> list[Span]:
    """Byte ranges one tensor needs: its planned rows, the rows' parts of a rebuilt or scaled layout
    (scaled.spans), or every part of a packed Linear.

    A row of a packed weight is spread over every packed row (GPTQ) or every input row (AWQ),
    so the parts are read whole: 0.5 byte per weight at 4 bits, in a few merged requests
    (bench/packed.py measures the alternatives).
    """
    if tensor.name in header.scaled:
        return scaled.spans(header.scaled[tensor.name], blocks)
    packed, rebuilt = header.packed.get(tensor.name), header.rebuilt.get(tensor.name)
    if rebuilt is not None:
        return [Span(b, e, key=(tensor.name, k)) for k, b, e in rebuilt.spans(blocks)]
    if packed is None:
        return [Span(*tensor.row_span(b.first, b.count), key=(tensor.name, b.first)) for b in blocks]
    return [Span(p.start, p.start + p.nbytes, key=(tensor.name, p.name)) for p in packed.parts]


def _rebuild(
    source: ByteSource, rebuilt: Rebuilt, blocks: tuple[RowBlock, ...], data: dict[object, bytes]
) -> TensorRows:
    own = {k: data.get((rebuilt.logical.name, k), b"") for k, _, _ in rebuilt.spans(blocks)}
    return _logical_rows(source, rebuilt.logical, blocks, lambda: rebuilt.dequantise(own, blocks))


def _dequantise(
    source: ByteSource, packed: PackedLinear, blocks: tuple[RowBlock, ...], data: dict[object, bytes]
) -> TensorRows:
    parts = {p.name: data.get((packed.logical.name, p.name), b"") for p in packed.parts}
    return _logical_rows(
        source, packed.logical, blocks, lambda: packed_int.dequantise_rows(packed, parts, row_indices(blocks))
    )


def _rebuild_scaled(
    source: ByteSource, s: ScaledLinear, blocks: tuple[RowBlock, ...], data: dict[object, bytes]
) -> TensorRows:
    return _logical_rows(source, s.logical, blocks, lambda: scaled.rebuild(s, data, blocks))


def _logical_rows(
    source: ByteSource, logical: TensorHeader, blocks: tuple[RowBlock, ...], values: Callable[[], np.ndarray]
) -> TensorRows:
    """Rows ``blocks`` of a quantised layout's logical tensor; bytes that do not fit are a FormatError line.

    Raises:
        FormatError: the layout's decoder found the bytes inconsistent (names model, file and tensor).
    """
    try:
        decoded = values()
    except ValueError as exc:
        raise FormatError(
            source.repo_id, source.revision, source.name, f"tensor {logical.name}: {exc}"
        ) from None
    rows = row_indices(blocks)
    return TensorRows(header=logical, rows=rows, values=decoded, sampled=len(rows) < logical.n_rows)


def _check_guards(source: ByteSource, guards: list[LocalHeaderGuard], data: dict[object, bytes]) -> None:
    """Refuse rows whose offset the header predicted unless the bytes before them confirm it.

    Raises:
        FormatError: a guard's bytes say the data starts elsewhere.
    """
    for guard in guards:
        reason = check_guard(data[("guard", guard.entry)], guard)
        if reason is not None:
            raise FormatError(source.repo_id, source.revision, source.name, reason)


def _decode(
    source: ByteSource,
    tensor: TensorHeader,
    blocks: tuple[RowBlock, ...],
    data: dict[object, bytes],
    decode: Callable[[TensorHeader, bytes, int], np.ndarray],
) -> TensorRows:
    try:
        # A zero-byte span is never requested (a tensor with a 0 dimension): it decodes from b"".
        parts = [decode(tensor, data.get((tensor.name, b.first), b""), b.count) for b in blocks]
    except ValueError as exc:
        raise FormatError(
            source.repo_id, source.revision, source.name, f"tensor {tensor.name}: {exc}"
        ) from None
    rows = row_indices(blocks)
    return TensorRows(
        header=tensor,
        rows=rows,
        values=np.concatenate(parts) if len(parts) > 1 else parts[0],
        sampled=len(rows) < tensor.n_rows,
    )


def _batches(
    plans: list[tuple[TensorHeader, tuple[RowBlock, ...]]], limit: int, header: CheckpointHeader
) -> Iterator[list[tuple[TensorHeader, tuple[RowBlock, ...]]]]:
    """Group tensors in file order so each batch plans at most ``limit`` bytes (one tensor may exceed)."""
    batch: list[tuple[TensorHeader, tuple[RowBlock, ...]]] = []
    size = 0
    for tensor, blocks in sorted(plans, key=lambda p: p[0].start):
        cost = sum(s.end - s.begin for s in _spans(tensor, blocks, header))
        if batch and size + cost > limit:
            yield batch
            batch, size = [], 0
        batch.append((tensor, blocks))
        size += cost
    if batch:
        yield batch
