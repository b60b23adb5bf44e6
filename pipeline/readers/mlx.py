"""MLX affine quantisation: uint32-packed weights with a scale and a bias per group, rebuilt by rows.

Layout (mlx ``quantize(w, group_size, bits)`` as mlx-lm saves it, for Linear and Embedding):
- ``<module>.weight`` U32 [out, in * bits / 32]: each row is one little-endian bit stream,
  value k at bits [k * bits, (k + 1) * bits); 3-, 5- and 6-bit values straddle words (mlx packs
  8, 8 and 4 of them into 3, 5 and 3 bytes, which is the same stream).
- ``<module>.scales`` and ``<module>.biases`` [out, in / group_size], the model's float dtype.
W[o, i] = scales[o, i // g] * q[o, i] + biases[o, i // g].

Every part is row-major with one row per output, so a sampled row costs three small ranges.
Bits and group size are the config's ``quantization`` (mlx-lm writes it to config.json as both
``quantization`` and ``quantization_config``, with per-module overrides keyed by module path);
the shapes only give their product, so without a config mlx-lm's default group of 64 is tried first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import partial

import numpy as np

from hubscan.pipeline.config import Settings
from hubscan.pipeline.errors import FormatError, UnsupportedDtype
from hubscan.pipeline.quant_parts import may_split_parts
from hubscan.pipeline.readers.byte_source import ByteSource
from hubscan.pipeline.readers.dtypes import SAFETENSORS_DTYPES
from hubscan.pipeline.readers.packed_int import unpack_last
from hubscan.pipeline.readers.records import CheckpointHeader, RowBlock, TensorHeader, logical_matrix

SCHEME = "MLX-"
BITS = (2, 3, 4, 5, 6, 8)
GROUP_SIZES = (64, 32, 128)  # mlx-lm's default first: what an undeclared checkpoint most likely used
SCALE_DTYPES = ("F16", "BF16", "F32")


@dataclass(frozen=True)
class MlxAffine:
    """One MLX-quantised Linear or Embedding: the logical [out, in] weight and its three parts."""

    logical: TensorHeader
    weight: TensorHeader
    scales: TensorHeader
    biases: TensorHeader
    bits: int
    group_size: int

    def spans(self, blocks: tuple[RowBlock, ...]) -> tuple[tuple[object, int, int], ...]:
        """The rows of each part: one range per part per block."""
        return tuple(
            ((part.name, b.first), *part.row_span(b.first, b.count))
            for b in blocks
            for part in (self.weight, self.scales, self.biases)
        )

    def dequantise(self, data: Mapping[object, bytes], blocks: tuple[RowBlock, ...]) -> np.ndarray:
        """scales * q + biases for the rows of ``blocks``, in float32."""
        out = [self._rows(data, b) for b in blocks]
        return np.concatenate(out) if len(out) > 1 else out[0]

    def _rows(self, data: Mapping[object, bytes], b: RowBlock) -> np.ndarray:
        n_in = self.logical.n_cols
        words = _part(self.weight, data, b).view("<i4")
        q = unpack_last(words, self.bits, n_in).astype(np.float32)
        scales, biases = (_part(p, data, b).astype(np.float32) for p in (self.scales, self.biases))
        g = np.arange(n_in) // self.group_size
        return scales[:, g] * q + biases[:, g]


def group(
    header: CheckpointHeader, source: ByteSource, settings: Settings, quant: Mapping[str, object] | None
) -> CheckpointHeader:
    """The header with each MLX-quantised module's weight, scales and biases replaced by one logical weight.

    Raises:
        FormatError: a module's parts have dtypes or shapes no MLX layout has.
    """
    by_name = {t.name: t for t in header.tensors}
    prefixes = sorted(
        n.removesuffix(".weight")
        for n, t in by_name.items()
        if n.endswith(".weight") and t.dtype == "U32" and n.removesuffix(".weight") + ".scales" in by_name
    )
    if may_split_parts(source.name):
        # A layer whose biases went to another shard is not rebuilt yet: its parts are dropped.
        prefixes = [p for p in prefixes if f"{p}.biases" in by_name or quant_mode(quant) != "affine"]
    if not prefixes:
        return header
    dims = _known_dims(header, prefixes)
    found = {
        p.logical.name: p for p in (_layer(prefix, by_name, quant or {}, dims, source) for prefix in prefixes)
    }
    used = {t.name for p in found.values() for t in (p.weight, p.scales, p.biases)}
    tensors = [t for t in header.tensors if t.name not in used] + [p.logical for p in found.values()]
    return replace(
        header,
        tensors=tuple(sorted(tensors, key=lambda t: t.start)),
        rebuilt={**header.rebuilt, **found},
    )


def quant_mode(quant: Mapping[str, object] | None) -> str:
    """The config's quantisation mode; mlx writes none for its default, affine."""
    mode = (quant or {}).get("mode")
    return mode if isinstance(mode, str) else "affine"


def _known_dims(header: CheckpointHeader, prefixes: list[str]) -> frozenset[int]:
    """Sizes the model shows without unpacking: float tensors' axes and quantised layers' outputs."""
    quantised = {f"{p}.{s}" for p in prefixes for s in ("weight", "scales", "biases")}
    dims = {d for t in header.tensors if t.name not in quantised for d in t.shape}
    return frozenset(
        dims | {header_shape[0] for header_shape in (t.shape for t in header.tensors if t.name in quantised)}
    )


def _layer(
    prefix: str,
    by_name: Mapping[str, TensorHeader],
    quant: Mapping[str, object],
    dims: frozenset[int],
    source: ByteSource,
) -> MlxAffine:
    bad = partial(FormatError, source.repo_id, source.revision, source.name)
    w, sc, bi = (by_name.get(f"{prefix}.{s}") for s in ("weight", "scales", "biases"))
    assert w is not None and sc is not None
    if bi is None:
        mode = quant_mode(quant)
        if mode != "affine":
            # mlx's mxfp4/nvfp4/mxfp8 modes store scales without biases: a layout of their own.
            where = (source.repo_id, source.revision, source.name)
            raise UnsupportedDtype(*where, f"tensor {w.name}: MLX {mode} quantisation is not read yet")
        raise bad(f"tensor {prefix}.biases is missing (MLX affine needs scales and biases)")
    for t in (sc, bi):
        if t.dtype not in SCALE_DTYPES:
            raise bad(f"tensor {t.name}: dtype {t.dtype}, MLX scales and biases are {'/'.join(SCALE_DTYPES)}")
    if len(w.shape) != 2 or sc.shape != bi.shape or len(sc.shape) != 2 or sc.shape[0] != w.shape[0]:
        raise bad(
            f"tensor {w.name}: shape {list(w.shape)} does not fit {sc.name} {list(sc.shape)} "
            f"and {bi.name} {list(bi.shape)}"
        )
    out, words = w.shape
    groups = sc.shape[1]
    bits, group_size = _bits_and_group(prefix, words, groups, quant, dims)
    if bits is None or group_size is None:
        raise bad(
            f"tensor {w.name}: {words} words and {groups} groups per row fit no MLX bits and group size"
        )
    n_in = groups * group_size
    item = SAFETENSORS_DTYPES[sc.dtype].itemsize
    # the original's size in the scales' dtype (the model's): the whole-tensor cut-off falls as for the base
    logical = logical_matrix(w.name, f"{SCHEME}int{bits}-g{group_size}", out, n_in, w, item)
    return MlxAffine(logical, w, sc, bi, bits, group_size)


def _bits_and_group(
    prefix: str, words: int, groups: int, quant: Mapping[str, object], dims: frozenset[int]
) -> tuple[int | None, int | None]:
    """(bits, group size) that give ``words`` uint32 per row over ``groups`` groups.

    The config's values (a per-module override first) win when they fit; else, since 4 bits in
    groups of 64 and 8 bits in groups of 32 pack alike, the guess whose input width the model
    shows elsewhere (a norm's length, another layer's output) is taken.
    """
    override = quant.get(prefix)
    declared = [(override.get("bits"), override.get("group_size"))] if isinstance(override, Mapping) else []
    declared.append((quant.get("bits"), quant.get("group_size")))
    fits = [f for bits, gs in declared if (f := _fit(words, groups, gs)) and bits in (None, f[0])]
    if fits:
        return fits[0]
    guesses = [f for gs in GROUP_SIZES if (f := _fit(words, groups, gs))]
    seen = [f for f in guesses if groups * f[1] in dims]
    if seen or guesses:
        return (seen or guesses)[0]
    return None, None


def _fit(words: int, groups: int, group_size: object) -> tuple[int, int] | None:
    """(bits, group size) if that group size packs a row into ``words`` words with a supported width."""
    if not isinstance(group_size, int) or isinstance(group_size, bool) or group_size <= 0:
        return None
    n_in = groups * group_size
    if (words * 32) % n_in or words * 32 // n_in not in BITS:
        return None
    return words * 32 // n_in, group_size


def _part(t: TensorHeader, data: Mapping[object, bytes], b: RowBlock) -> np.ndarray:
    raw = data.get((t.name, b.first), b"")
    if len(raw) != b.count * t.row_bytes:
        raise ValueError(f"{t.name}: expected {b.count * t.row_bytes} bytes, got {len(raw)}")
    return np.frombuffer(raw, dtype=SAFETENSORS_DTYPES[t.dtype]).reshape(b.count, t.n_cols)
