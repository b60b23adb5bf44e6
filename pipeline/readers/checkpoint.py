"""Read one weight file: header, row plan, merged ranged requests, decoded rows.

The format modules (safetensors.py, gguf.py, torch_zip.py) only parse headers and decode rows;
this module owns the plan so every format costs the same number of requests per layer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import ModuleType

import numpy as np

from pipeline.config import Settings
from pipeline.errors import FormatError
from pipeline.readers import gguf, safetensors, torch_zip
from pipeline.readers.byte_source import ByteSource
from pipeline.readers.ranges import Span, fetch, plan_requests
from pipeline.readers.records import CheckpointHeader, LocalHeaderGuard, RowBlock, TensorHeader, TensorRows
from pipeline.readers.sampling import plan_rows, row_indices
from pipeline.readers.zip_directory import check_guard

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


def read_header(source: ByteSource, settings: Settings) -> CheckpointHeader:
    """Parse and validate a file's header.

    Raises:
        FormatError: the header cannot be trusted.
    """
    fmt = format_of(source.name)
    if fmt is None:
        raise FormatError(
            source.repo_id, source.revision, source.name, "not a safetensors, GGUF or PyTorch file"
        )
    header: CheckpointHeader = FORMATS[fmt].read_header(source, settings)
    return header


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
    for batch in _batches(plans, settings.batch_bytes):
        spans = [
            Span(*t.row_span(b.first, b.count), key=(t.name, b.first)) for t, blocks in batch for b in blocks
        ]
        names = {t.name for t, _ in batch}
        guards = [g for g in unchecked if names.intersection(g.tensors)]
        unchecked = [g for g in unchecked if g not in guards]
        # Each guard ends where its storage's first rows begin: merged into the same request.
        spans += [Span(g.begin, g.end, key=("guard", g.entry)) for g in guards]
        data = fetch(source, plan_requests(spans, settings.merge_gap_bytes), settings.fetch_concurrency)
        _check_guards(source, guards, data)
        for tensor, blocks in batch:
            yield _decode(source, tensor, blocks, data, decode)


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
        parts = [decode(tensor, data[(tensor.name, b.first)], b.count) for b in blocks]
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
    plans: list[tuple[TensorHeader, tuple[RowBlock, ...]]], limit: int
) -> Iterator[list[tuple[TensorHeader, tuple[RowBlock, ...]]]]:
    """Group tensors in file order so each batch plans at most ``limit`` bytes (one tensor may exceed)."""
    batch: list[tuple[TensorHeader, tuple[RowBlock, ...]]] = []
    size = 0
    for tensor, blocks in sorted(plans, key=lambda p: p[0].start):
        cost = sum(b.count for b in blocks) * tensor.row_bytes
        if batch and size + cost > limit:
            yield batch
            batch, size = [], 0
        batch.append((tensor, blocks))
        size += cost
    if batch:
        yield batch
