"""bitsandbytes 4-bit weights (NF4/FP4, optionally double-quantised), rebuilt by rows (8-bit: bnb_int8.py).

4-bit (``Params4bit`` as transformers saves it), for a Linear of original shape [out, in]:
- ``<m>.weight`` U8 [ceil(out * in / 2), 1]: the row-major elements two to a byte, the first in
  the high nibble (``bnb_4bit_quant_storage`` may store those bytes as BF16/F16/F32 instead);
- ``<m>.weight.quant_map`` F32 [16]: the code (NF4 or FP4 levels in [-1, 1]);
- ``<m>.weight.absmax``: one scale per block of ``blocksize`` (64) consecutive elements, F32, or
  with double quantisation U8 codes into ``<m>.weight.nested_quant_map`` F32 [256] times
  ``<m>.weight.nested_absmax`` F32 (one per 256 blocks), plus the state's ``nested_offset``;
- ``<m>.weight.quant_state.bitsandbytes__nf4`` (or ``__fp4``) U8: UTF-8 JSON with
  ``quant_type``, ``blocksize``, ``dtype``, ``shape`` and the nested fields.
W.flat[k] = quant_map[nibble k] * absmax[k // blocksize].

Rows are contiguous in every part, so a sampled row block costs a few small ranges. The
shape lives only in the JSON state: where the layer's role and the hidden size fix it, the state
is read with the rows and checked; otherwise it is fetched with the header.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, TypeGuard

import numpy as np

from hubscan.pipeline.config import Settings
from hubscan.pipeline.errors import FormatError
from hubscan.pipeline.quant_parts import may_split_parts
from hubscan.pipeline.readers.byte_source import ByteSource
from hubscan.pipeline.readers.dtypes import SAFETENSORS_DTYPES
from hubscan.pipeline.readers.ranges import Span, fetch, plan_requests
from hubscan.pipeline.readers.records import CheckpointHeader, RowBlock, TensorHeader, logical_matrix
from hubscan.pipeline.roles import READS_HIDDEN, WRITES_HIDDEN, classify

SCHEMES = ("NF4", "FP4")
STATE = ".weight.quant_state.bitsandbytes__"
QUANT_TYPES = ("nf4", "fp4")
# Norms applied to the residual stream, so as long as the hidden size (not q/k or MLA-rank norms).
RESIDUAL_NORMS = frozenset({"attn_norm", "mlp_norm", "post_attn_norm", "post_mlp_norm", "final_norm"})
BLOCK_SIZES = (64, 32, 128, 256, 512, 1024, 2048, 4096)  # 64 is what transformers uses
NESTED_BLOCK = 256  # bitsandbytes double-quantises absmax in blocks of 256 (the state may say otherwise)
STATE_MAX_BYTES = 4096  # a state is ~150 bytes of JSON; a larger one is not a state
DTYPE_BYTES = {"float16": 2, "bfloat16": 2, "float32": 4}


@dataclass(frozen=True)
class Bnb4bit:
    """One 4-bit Linear: the logical [out, in] weight, its parts and what its state says."""

    logical: TensorHeader
    weight: TensorHeader
    absmax: TensorHeader
    quant_map: TensorHeader
    nested_absmax: TensorHeader | None
    nested_quant_map: TensorHeader | None
    blocksize: int
    nested_offset: float
    nested_blocksize: int = NESTED_BLOCK
    # The JSON state when its shape was inferred at header time: read with the rows and checked.
    state: TensorHeader | None = None

    def spans(self, blocks: tuple[RowBlock, ...]) -> tuple[tuple[object, int, int], ...]:
        """Per block: its bytes of packed weight and its absmax entries; the small tables whole."""
        found: list[tuple[object, int, int]] = []
        for b in blocks:
            lo, hi = self._elements(b)
            start = self.weight.start
            found.append(((self.weight.name, b.first), start + lo // 2, start - (-hi // 2)))
            found.append(((self.absmax.name, b.first), *_slice(self.absmax, *self._absmax_range(lo, hi))))
        for t in (self.quant_map, self.nested_absmax, self.nested_quant_map, self.state):
            if t is not None:
                found.append(((t.name, "whole"), t.start, t.start + t.nbytes))
        return tuple(found)

    def dequantise(self, data: Mapping[object, bytes], blocks: tuple[RowBlock, ...]) -> np.ndarray:
        """quant_map[nibble] * absmax[block] for the rows of ``blocks``, in float32."""
        if self.state is not None:
            return self._checked(data).dequantise(data, blocks)
        code = _whole(self.quant_map, data).astype(np.float32)
        if code.shape != (16,):
            raise ValueError(f"{self.quant_map.name}: {code.size} levels, a 4-bit code has 16")
        out = [self._rows(data, b, code) for b in blocks]
        return np.concatenate(out) if len(out) > 1 else out[0]

    def _checked(self, data: Mapping[object, bytes]) -> Bnb4bit:
        """This layer with the nested fields of its state, once the state confirms the inferred layout.

        Raises:
            ValueError: the state says another shape, block size or type than the header was read with.
        """
        assert self.state is not None
        state = _parse_state(self.state.name, bytes(_whole(self.state, data)))
        said = (state.get("quant_type"), state.get("shape"), state.get("blocksize"), "nested_offset" in state)
        read = (
            self.logical.dtype[:3].lower(),
            list(self.logical.shape),
            self.blocksize,
            self.nested_absmax is not None,
        )
        if said != read:
            raise ValueError(
                f"{self.state.name} says (type, shape, block, nested) {said}, the header was read as {read}"
            )
        nested_block = state.get("nested_blocksize", NESTED_BLOCK)
        if not isinstance(nested_block, int) or isinstance(nested_block, bool) or nested_block <= 0:
            raise ValueError(
                f"{self.state.name}: nested_blocksize {nested_block!r} is not a positive integer"
            )
        offset = float(state.get("nested_offset", 0.0))
        return replace(self, nested_offset=offset, nested_blocksize=nested_block, state=None)

    def _elements(self, b: RowBlock) -> tuple[int, int]:
        n_in = self.logical.n_cols
        return b.first * n_in, (b.first + b.count) * n_in

    def _absmax_range(self, lo: int, hi: int) -> tuple[int, int]:
        return lo // self.blocksize, -(-hi // self.blocksize)

    def _rows(self, data: Mapping[object, bytes], b: RowBlock, code: np.ndarray) -> np.ndarray:
        lo, hi = self._elements(b)
        packed = _packed(self.weight, data, b, -(-hi // 2) - lo // 2)
        nibbles = np.stack([packed >> 4, packed & 0x0F], axis=1).reshape(-1)
        q = nibbles[lo % 2 :][: hi - lo]  # an odd first element sits in its byte's low nibble
        first, last = self._absmax_range(lo, hi)
        scale = self._absmax(data, b, first, last - first)
        k = np.arange(lo, hi) // self.blocksize - first
        return (code[q] * scale[k]).reshape(b.count, self.logical.n_cols)

    def _absmax(self, data: Mapping[object, bytes], b: RowBlock, first: int, count: int) -> np.ndarray:
        raw = block_values(self.absmax, data, b, count)
        if self.nested_absmax is None or self.nested_quant_map is None:
            return raw.astype(np.float32)
        code = _whole(self.nested_quant_map, data).astype(np.float32)
        outer = _whole(self.nested_absmax, data).astype(np.float32)
        if code.shape != (256,):
            raise ValueError(f"{self.nested_quant_map.name}: {code.size} levels, an 8-bit code has 256")
        idx = (first + np.arange(count)) // self.nested_blocksize
        if len(idx) and idx[-1] >= outer.size:
            raise ValueError(f"{self.nested_absmax.name}: {outer.size} values, block {idx[-1]} needs more")
        return code[raw] * outer[idx] + np.float32(self.nested_offset)


def group(
    header: CheckpointHeader, source: ByteSource, settings: Settings, quant: Mapping[str, object] | None
) -> CheckpointHeader:
    """The header with each bitsandbytes Linear's parts replaced by one logical ``<m>.weight``.

    Raises:
        FormatError: a state or a part does not fit the layout.
        FetchError: the 4-bit states could not be read.
    """
    by_name = {t.name: t for t in header.tensors}
    bad = partial(FormatError, source.repo_id, source.revision, source.name)
    found: dict[str, Bnb4bit] = {}
    states = [t for n, t in by_name.items() if STATE in n and _whole_here(n, by_name, source.name)]
    # A state costs a request of its own at header time (states lie a layer's weights apart); when
    # the role and hidden size fix the shape, it is read with the rows instead and checked there.
    hidden = _hidden(header)
    inferred = {t.name: g for t in states if (g := _inferred_state(t, by_name, hidden)) is not None}
    fetched = _read_states([t for t in states if t.name not in inferred], source, settings, bad)
    for name, state in (fetched | inferred).items():
        layer = _four_bit(name, state, by_name, bad)
        found[layer.logical.name] = replace(layer, state=by_name[name]) if name in inferred else layer
    if not found:
        return header
    used = {t.name for p in found.values() for t in _parts(p)}
    tensors = [t for t in header.tensors if t.name not in used] + [p.logical for p in found.values()]
    return replace(
        header,
        tensors=tuple(sorted(tensors, key=lambda t: t.start)),
        rebuilt={**header.rebuilt, **found},
    )


def _hidden(header: CheckpointHeader) -> int | None:
    """Residual width: the length of the blocks' norms (bitsandbytes leaves them float).

    Not the embedding's width: ALBERT and ELECTRA factorise it (128 wide beside a hidden of 768).
    """
    for t in header.tensors:
        r = classify(t.name)
        if r.role in RESIDUAL_NORMS and r.kind == "weight" and len(t.shape) == 1:
            return t.shape[0]
    return None


def _inferred_state(
    state: TensorHeader, by_name: Mapping[str, TensorHeader], hidden: int | None
) -> dict[str, Any] | None:
    """The state a Linear's role implies (hidden is its input, or its output), or None if unsure."""
    prefix = state.name[: state.name.index(STATE)] + ".weight"
    weight, absmax = by_name.get(prefix), by_name.get(f"{prefix}.absmax")
    if (
        hidden is None
        or weight is None
        or absmax is None
        or state.dtype != "U8"
        or state.nbytes > STATE_MAX_BYTES
    ):
        return None
    role = classify(prefix).role
    # A BERT pooler maps hidden to hidden: a square of the hidden size is its only shape.
    reads = role in READS_HIDDEN or role == "pooler"
    if role.endswith("_exps") or not (reads or role in WRITES_HIDDEN):
        return None
    for numel in (2 * weight.nbytes, 2 * weight.nbytes - 1):
        if numel % hidden or (role == "pooler" and numel != hidden * hidden):
            continue
        shape = [numel // hidden, hidden] if reads else [hidden, numel // hidden]
        blocksize = next((b for b in BLOCK_SIZES if -(-numel // b) == absmax.numel), None)
        if blocksize is not None:
            nested = {"nested_offset": 0.0} if f"{prefix}.nested_absmax" in by_name else {}
            kind = state.name.rpartition("__")[2]
            return {"quant_type": kind, "blocksize": blocksize, "shape": shape, "dtype": "float16", **nested}
    return None


def _whole_here(state_name: str, by_name: Mapping[str, TensorHeader], filename: str) -> bool:
    """False for a layer of a shard whose weight, absmax or code lies in another shard (not rebuilt
    yet: its parts are dropped, the layer left out); in a single file a missing part is an error."""
    prefix = state_name[: state_name.index(STATE)] + ".weight"
    here = all(f"{prefix}{s}" in by_name for s in ("", ".absmax", ".quant_map"))
    return here or not may_split_parts(filename)


def _parts(p: Bnb4bit) -> tuple[TensorHeader, ...]:
    found = (p.weight, p.absmax, p.quant_map, p.nested_absmax, p.nested_quant_map)
    return tuple(t for t in found if t is not None)


def _read_states(
    states: list[TensorHeader], source: ByteSource, settings: Settings, bad: partial[FormatError]
) -> dict[str, dict[str, Any]]:
    """Every 4-bit state's JSON, fetched in one merged plan (they sit together in the file)."""
    for t in states:
        if t.dtype != "U8" or t.nbytes > STATE_MAX_BYTES:
            raise bad(f"tensor {t.name}: {t.dtype} of {t.nbytes} bytes is not a bitsandbytes state")
    spans = [Span(t.start, t.start + t.nbytes, key=t.name) for t in states]
    data = fetch(source, plan_requests(spans, settings.merge_gap_bytes), settings.fetch_concurrency)
    out: dict[str, dict[str, Any]] = {}
    for t in states:
        try:
            out[t.name] = _parse_state(t.name, data.get(t.name, b""))
        except ValueError as exc:
            raise bad(f"tensor {exc}") from None
    return out


def _parse_state(name: str, raw: bytes) -> dict[str, Any]:
    """A state tensor's JSON object.

    Raises:
        ValueError: "<name>: why" when the bytes are not a JSON object.
    """
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{name}: not a JSON quant state ({exc})") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{name}: quant state is not a JSON object")
    return doc


def _four_bit(
    state_name: str, state: dict[str, Any], by_name: Mapping[str, TensorHeader], bad: partial[FormatError]
) -> Bnb4bit:
    prefix = state_name[: state_name.index(STATE)] + ".weight"
    kind = state_name.rpartition("__")[2]
    shape, blocksize, quant_type = state.get("shape"), state.get("blocksize"), state.get("quant_type")
    if kind not in QUANT_TYPES or quant_type != kind:
        raise bad(f"tensor {state_name}: quant_type {quant_type!r}, expected {kind!r} (nf4 or fp4)")
    if not _ints(shape) or len(shape) != 2 or not isinstance(blocksize, int) or blocksize <= 0:
        raise bad(
            f"tensor {state_name}: shape {shape!r} / blocksize {blocksize!r} are not a 2-D shape and a block"
        )
    parts = {s: by_name.get(f"{prefix}{s}") for s in ("", ".absmax", ".quant_map")}
    for s, t in parts.items():
        if t is None:
            raise bad(
                f"tensor {prefix}{s} is missing (bitsandbytes 4-bit needs weight, absmax and quant_map)"
            )
    weight, absmax, quant_map = parts[""], parts[".absmax"], parts[".quant_map"]
    assert weight is not None and absmax is not None and quant_map is not None
    out, n_in = shape
    numel, blocks = out * n_in, -(-out * n_in // blocksize)
    # bnb_4bit_quant_storage may store the packed bytes as another dtype ([n / 2 / itemsize, 1]).
    if weight.nbytes != -(-numel // 2):
        raise bad(f"tensor {weight.name}: {weight.dtype}{list(weight.shape)} does not pack {shape} in 4 bits")
    nested = by_name.get(f"{prefix}.nested_absmax"), by_name.get(f"{prefix}.nested_quant_map")
    want_absmax = "U8" if nested[0] is not None else "F32"
    if absmax.dtype != want_absmax or absmax.numel != blocks:
        raise bad(
            f"tensor {absmax.name}: {absmax.dtype}{list(absmax.shape)}, expected {want_absmax}[{blocks}]"
        )
    if (nested[0] is None) != (nested[1] is None) or (nested[0] is not None and "nested_offset" not in state):
        raise bad(f"tensor {prefix}: nested_absmax, nested_quant_map and nested_offset come together")
    for t in (quant_map, *nested):
        if t is not None and t.dtype != "F32":
            raise bad(f"tensor {t.name}: dtype {t.dtype}, bitsandbytes tables are F32")
    item = DTYPE_BYTES.get(str(state.get("dtype")).removeprefix("torch."), 2)
    double = "-dq" if nested[0] is not None else ""
    logical = logical_matrix(prefix, f"{kind.upper()}{double}", out, n_in, weight, item)
    offset = float(state.get("nested_offset", 0.0))
    nested_block = state.get("nested_blocksize", NESTED_BLOCK)
    if not isinstance(nested_block, int) or isinstance(nested_block, bool) or nested_block <= 0:
        raise bad(f"tensor {state_name}: nested_blocksize {nested_block!r} is not a positive integer")
    return Bnb4bit(logical, weight, absmax, quant_map, nested[0], nested[1], blocksize, offset, nested_block)


def _slice(t: TensorHeader, first: int, end: int) -> tuple[int, int]:
    """Byte range of elements [first, end) of a tensor read flat."""
    item = SAFETENSORS_DTYPES[t.dtype].itemsize
    return t.start + first * item, t.start + end * item


def block_values(t: TensorHeader, data: Mapping[object, bytes], b: RowBlock, count: int) -> np.ndarray:
    """``count`` elements of ``t`` read for block ``b`` (bnb 4- and 8-bit alike).

    Raises:
        ValueError: the bytes read are not that many elements.
    """
    raw = data.get((t.name, b.first), b"")
    dtype = SAFETENSORS_DTYPES[t.dtype]
    if len(raw) != count * dtype.itemsize:
        raise ValueError(f"{t.name}: expected {count * dtype.itemsize} bytes, got {len(raw)}")
    return np.frombuffer(raw, dtype=dtype)


def _packed(t: TensorHeader, data: Mapping[object, bytes], b: RowBlock, count: int) -> np.ndarray:
    """The packed 4-bit bytes of one block, whatever dtype stores them."""
    raw = data.get((t.name, b.first), b"")
    if len(raw) != count:
        raise ValueError(f"{t.name}: expected {count} bytes, got {len(raw)}")
    return np.frombuffer(raw, dtype=np.uint8)


def _whole(t: TensorHeader, data: Mapping[object, bytes]) -> np.ndarray:
    raw = data.get((t.name, "whole"), b"")
    if len(raw) != t.nbytes:
        raise ValueError(f"{t.name}: expected {t.nbytes} bytes, got {len(raw)}")
    return np.frombuffer(raw, dtype=SAFETENSORS_DTYPES[t.dtype])


def _ints(value: object) -> TypeGuard[list[int]]:
    return isinstance(value, list) and all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value
    )
