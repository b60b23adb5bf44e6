"""Records the readers hand to the fingerprint stage: where a tensor lives, and rows read from it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from math import prod
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class TensorHeader:
    """One tensor as a file header describes it; shape in PyTorch order ([out, in] for matrices).

    Storage is row-major: row ``r`` (a vector along the last axis) occupies
    ``[start + r * row_bytes, start + (r + 1) * row_bytes)``; quantised formats set
    ``row_bytes`` to the bytes of one row of blocks.
    """

    name: str
    dtype: str
    shape: tuple[int, ...]
    file: str
    start: int
    nbytes: int
    row_bytes: int

    @property
    def numel(self) -> int:
        """Number of elements."""
        return prod(self.shape) if self.shape else 1

    @property
    def n_rows(self) -> int:
        """Rows when every axis but the last is flattened."""
        return prod(self.shape[:-1]) if len(self.shape) > 1 else 1

    @property
    def n_cols(self) -> int:
        """Length of one row (the last axis)."""
        return self.shape[-1] if self.shape else 1

    def row_span(self, first: int, count: int) -> tuple[int, int]:
        """Absolute byte range [begin, end) of rows first..first+count-1."""
        return (self.start + first * self.row_bytes, self.start + (first + count) * self.row_bytes)


# A quantised layout's original weights were (almost always) 16-bit, F16 or BF16 (FP8 and int releases
# are cast from them): its logical tensor reports that size, so the whole-tensor cut-off of row
# sampling falls as for the base.
LOGICAL_ITEMSIZE = 2


def logical_matrix(
    name: str, dtype: str, out: int, n_in: int, stored: TensorHeader, itemsize: int = LOGICAL_ITEMSIZE
) -> TensorHeader:
    """The [out, n_in] original a quantised layout stands for, placed at its stored values: what roles,
    sampling and fingerprints see of it."""
    return TensorHeader(
        name, dtype, (out, n_in), stored.file, stored.start, out * n_in * itemsize, n_in * itemsize
    )


@dataclass(frozen=True)
class RowBlock:
    """A contiguous run of rows of one tensor."""

    first: int
    count: int


@dataclass(frozen=True, eq=False)
class TensorRows:
    """Decoded float32 rows of one tensor: ``values[i]`` is row ``rows[i]``."""

    header: TensorHeader
    rows: np.ndarray  # int64 row indices, ascending
    values: np.ndarray  # float32, shape (len(rows), n_cols)
    sampled: bool  # False when every row was read


@dataclass(frozen=True)
class LocalHeaderGuard:
    """Bytes [begin, end) before a storage's data that a reader predicted (a zip local header).

    They are fetched with the storage's first rows (adjacent, so in the same request) and
    checked before any of those rows is trusted.
    """

    entry: str
    begin: int
    end: int
    tensors: tuple[str, ...]


@dataclass(frozen=True)
class PackedLinear:
    """A GPTQ/AWQ packed int Linear: the logical [out, in] weight and the stored parts it is rebuilt from.

    ``logical`` is what roles, sampling and fingerprints see; its ``start`` is the qweight's (file
    order for batching) and its ``nbytes`` the F16 size of the original (the whole-tensor cut-off
    must fall where it falls for the unquantised base). ``zero_offset`` is 1 for GPTQ v1
    checkpoints, which store every zero point minus one.
    """

    logical: TensorHeader
    scheme: str  # "GPTQ" | "AWQ"
    bits: int
    group_size: int
    qweight: TensorHeader
    qzeros: TensorHeader
    scales: TensorHeader
    g_idx: TensorHeader | None
    zero_offset: int

    @property
    def parts(self) -> tuple[TensorHeader, ...]:
        """The stored tensors that must be read to rebuild rows of the logical weight."""
        found = (self.qweight, self.qzeros, self.scales, self.g_idx)
        return tuple(t for t in found if t is not None)


class Rebuilt(Protocol):
    """A logical tensor a quantised layout stores as parts, rebuilt row by row (pipeline/readers/quantised.py).

    Unlike a GPTQ/AWQ PackedLinear, whose parts are read whole, a Rebuilt layout names the byte
    ranges the planned rows need, so row sampling works as for a dense tensor.
    """

    @property
    def logical(self) -> TensorHeader:
        """What roles, sampling and fingerprints see: the original name, [out, in] shape and size."""
        ...

    def spans(self, blocks: tuple[RowBlock, ...]) -> tuple[tuple[object, int, int], ...]:
        """(key, begin, end) byte ranges of the stored parts that rows ``blocks`` need."""
        ...

    def dequantise(self, data: Mapping[object, bytes], blocks: tuple[RowBlock, ...]) -> np.ndarray:
        """Rows ``blocks`` of the logical tensor as float32, from the bytes of ``spans(blocks)``.

        Raises:
            ValueError: bytes do not fit the layout (the caller names model and file).
        """
        ...


@dataclass(frozen=True)
class ScaledLinear:
    """A Linear stored as low-precision codes plus the scales that rebuild it (compressed-tensors, FP8).

    ``parts`` names each stored tensor by what it is to the decoder ("values", "scale", "zero",
    "global"); the ones in ``whole`` are read whole (block scales, zero points packed across rows,
    a global scale), the others row by row with the logical weight, whose row r they hold at row r.
    ``dropped`` are auxiliaries of the same Linear that no fingerprint may see (the stored shape;
    activation scales are dropped for every Linear by pipeline/readers/scaled.py). ``logical`` is what roles, sampling and fingerprints see, as for PackedLinear.
    """

    logical: TensorHeader
    codec: str  # "int" (packed) | "dense" (FP8/int8 codes) | "nvfp4" | "mxfp4"
    parts: tuple[tuple[str, TensorHeader], ...]
    whole: frozenset[str] = frozenset()
    bits: int = 8
    group_size: int = 0  # inputs per scale; 0 when one scale covers a row, a block or the tensor
    block: tuple[int, int] = (0, 0)  # (rows, inputs) per scale of a block-scaled weight
    dropped: tuple[str, ...] = ()


@dataclass(frozen=True)
class CheckpointHeader:
    """All tensors of one weight file plus the metadata its header carries.

    ``packed`` maps a logical tensor name (one of ``tensors``) to the packed parts it replaces;
    ``scaled`` does the same for scaled layouts (pipeline/readers/scaled.py), and ``rebuilt`` for the
    layouts read by rows (MLX, bitsandbytes; pipeline/readers/quantised.py).
    """

    file: str
    format: str
    size: int
    tensors: tuple[TensorHeader, ...]
    metadata: dict[str, object] = field(default_factory=dict)
    guards: tuple[LocalHeaderGuard, ...] = ()
    packed: dict[str, PackedLinear] = field(default_factory=dict)
    scaled: dict[str, ScaledLinear] = field(default_factory=dict)
    rebuilt: dict[str, Rebuilt] = field(default_factory=dict)
