"""The layer sketches of many models, written once in one scan and read back model by model.

`layer_sketches.fetch_groups` reads, run after run, a budget of models whose relatives are scattered over
the whole block: a base is named by thousands of runs, a run of 4,096 models names ~3,500 read before.
Chunk files had to be read whole for each relative they held: at 100k Hub-shaped models, 1.5M models'
rows were read to use 440k. Here the sketch values and row indices go to two flat files (float32 and
int64, in scan order) and every row's place stays in memory (~56 bytes a row), so a read takes exactly
its models' bytes with `os.pread` (adjacent rows in one call) and builds no Arrow table. Reads go
through the page cache, not a memory map: mapped pages would count in the process's resident set.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hubscan.pipeline.errors import QueryError, one_line
from hubscan.pipeline.keys import ModelKey

# role, layer, expert (-1: none), shape, transposed
Slot = tuple[str, int, int, tuple[int, ...], bool]
VALUES_FILE, ROWS_FILE = "values.f32", "row_idx.i64"
VALUE, INDEX = np.dtype(np.float32), np.dtype(np.int64)
# Columns of list_layer_sketches.sql that name a row's slot.
SLOT_COLUMNS = ("role", "layer", "expert", "shape", "transposed")


def slot_of(role: str, layer: Any, expert: Any, shape: Iterable[int], transposed: Any) -> Slot:
    """A list_layer_sketches.sql row's slot as the key readers use."""
    return (role, int(layer), int(expert), tuple(shape), bool(transposed))


@dataclass(frozen=True)
class Sketch:
    """One layer matrix's sampled values and the rows they were read from (empty when not recorded)."""

    row_idx: tuple[int, ...]
    values: np.ndarray


@dataclass
class SketchSpill:
    """Rows of list_layer_sketches.sql in scan order: each row's model, slot and the place of its values
    and row indices in the folder's two files."""

    folder: Path
    models: list[ModelKey] = field(default_factory=list)
    number: dict[ModelKey, int] = field(default_factory=dict)  # each model's place in ``models``
    slots: list[Slot] = field(default_factory=list)
    slot_number: dict[tuple[object, ...], int] = field(default_factory=dict)  # a row's raw slot -> place
    parts: list[np.ndarray] = field(default_factory=list)  # per batch: model, slot, 2 offsets, 2 lengths
    index: np.ndarray = field(default_factory=lambda: np.empty((0, 6), np.int64))
    order: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # rows by model, scan order
    bounds: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))  # model m: order[b[m]:b[m+1]]

    @classmethod
    def write(cls, rows: pa.RecordBatchReader, models: Collection[ModelKey]) -> SketchSpill:
        """Every row of the reader (list_layer_sketches.sql) to a fresh temporary folder (`close` removes it).

        Raises:
            QueryError: the query failed while streaming, or the files could not be written.
        """
        ordered = sorted(models)
        spill = cls(
            Path(tempfile.mkdtemp(prefix="hubscan-sketches-")), ordered, {m: i for i, m in enumerate(ordered)}
        )
        try:
            with (
                (spill.folder / VALUES_FILE).open("wb") as values,
                (spill.folder / ROWS_FILE).open("wb") as idx,
            ):
                for batch in rows:
                    spill._append(batch, values, idx)
        except (duckdb.Error, OSError, pa.ArrowException) as exc:
            spill.close()
            raise QueryError(
                None, None, "list_layer_sketches.sql", f"writing the sketch spill: {one_line(exc)}"
            ) from None
        spill._build_index()
        return spill

    def close(self) -> None:
        """Remove the folder and its files."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def read(self, models: Iterable[ModelKey]) -> dict[ModelKey, dict[Slot, Sketch]]:
        """The sketches of these models (a model the spill lacks is absent).

        Raises:
            QueryError: the files could not be read.
        """
        numbers = [i for m in models if (i := self.number.get(m)) is not None]
        out: dict[ModelKey, dict[Slot, Sketch]] = {}
        if not numbers:
            return out
        rows = self.index[np.concatenate([self.order[self.bounds[i] : self.bounds[i + 1]] for i in numbers])]
        try:
            values = _read_ranges(self.folder / VALUES_FILE, rows[:, 2], rows[:, 4], VALUE)
            row_idx: list[tuple[int, ...]] = [()] * len(rows)  # not recorded: synthetic, vectors
            if rows[:, 5].any():
                row_idx = [
                    tuple(r.tolist())
                    for r in _read_ranges(self.folder / ROWS_FILE, rows[:, 3], rows[:, 5], INDEX)
                ]
        except OSError as exc:
            raise QueryError(
                None, None, "list_layer_sketches.sql", f"reading the sketch spill: {one_line(exc)}"
            ) from None
        for model, slot, v, r in zip(rows[:, 0].tolist(), rows[:, 1].tolist(), values, row_idx, strict=True):
            out.setdefault(self.models[model], {})[self.slots[slot]] = Sketch(r, v)
        return out

    def _append(self, batch: pa.RecordBatch, values: BinaryIO, idx: BinaryIO) -> None:
        """One scan batch: its values and row indices appended to the files, its rows' places kept."""
        keys = zip(batch["repo_id"].to_pylist(), batch["revision"].to_pylist(), strict=True)
        model = np.fromiter((self.number[k] for k in keys), np.int64, batch.num_rows)
        slot = np.fromiter(self._slot_numbers(batch), np.int64, batch.num_rows)
        v_off, v_len = _append_list(batch["sketch"], values, VALUE)
        r_off, r_len = _append_list(batch["row_idx"], idx, INDEX)
        self.parts.append(np.stack([model, slot, v_off, r_off, v_len, r_len], axis=1))

    def _slot_numbers(self, batch: pa.RecordBatch) -> Iterable[int]:
        """Each row's slot as a number into ``slots`` (one tuple per distinct slot, shared by every model)."""
        columns = [batch[c].to_pylist() for c in SLOT_COLUMNS]
        for role, layer, expert, shape, transposed in zip(*columns, strict=True):
            raw = (role, layer, expert, *shape, transposed)
            n = self.slot_number.get(raw)
            if n is None:
                n = self.slot_number[raw] = len(self.slots)
                self.slots.append(slot_of(role, layer, expert, shape, transposed))
            yield n

    def _build_index(self) -> None:
        """Every row's place in one array, and each model's rows in scan order."""
        self.index = np.concatenate(self.parts) if self.parts else np.empty((0, 6), np.int64)
        self.parts = []
        self.order = np.argsort(self.index[:, 0], kind="stable")
        self.bounds = np.searchsorted(self.index[self.order, 0], np.arange(len(self.models) + 1))


def _append_list(column: pa.Array, fh: BinaryIO, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """A list column's values appended to ``fh`` as ``dtype``: each row's offset (in items, from the file's
    start) and length. Null lists are empty."""
    lengths = pc.fill_null(pc.list_value_length(column), 0).to_numpy().astype(np.int64)
    flat = pc.list_flatten(column).to_numpy(zero_copy_only=False).astype(dtype, copy=False)
    start = fh.tell() // dtype.itemsize
    fh.write(np.ascontiguousarray(flat).tobytes())
    offsets = start + np.concatenate([[0], np.cumsum(lengths)[:-1]]) if len(lengths) else lengths
    return offsets.astype(np.int64), lengths


def _read_ranges(path: Path, offsets: np.ndarray, lengths: np.ndarray, dtype: np.dtype) -> list[np.ndarray]:
    """Each row's items from ``path``, rows adjacent in the file read in one call."""
    out: list[np.ndarray] = [np.empty(0, dtype)] * len(offsets)
    if not len(offsets):
        return out
    order = np.argsort(offsets, kind="stable")
    starts, ends = offsets[order], offsets[order] + lengths[order]
    # a new read wherever a row does not start where the one before it ended
    breaks = np.flatnonzero(starts[1:] != ends[:-1]) + 1
    first_of, last_of = starts.tolist(), ends.tolist()  # Python ints: the loop below is per row
    row_of = order.tolist()
    bounds = [0, *breaks.tolist(), len(row_of)]
    fd = os.open(path, os.O_RDONLY)
    try:
        for a, b in itertools.pairwise(bounds):
            first, last = first_of[a], last_of[b - 1]
            if last == first:
                continue
            size = (last - first) * dtype.itemsize
            data = os.pread(fd, size, first * dtype.itemsize)
            if len(data) != size:
                raise OSError(f"{path.name}: short read at item {first}")
            buf = np.frombuffer(data, dtype)
            for i in range(a, b):
                out[row_of[i]] = buf[first_of[i] - first : last_of[i] - first]
    finally:
        os.close(fd)
    return out
