"""GPTQ and AWQ packed-int Linears, rebuilt as the [out, in] weight they quantise.

A quantised Linear is stored as parts: ``qweight`` (int32 words of packed ints), ``qzeros``
(packed zero points per group and output), ``scales`` (float per group and output) and, for
GPTQ, ``g_idx`` (the group of each input channel; not monotone with act-order). Grouping
them into one logical ``<prefix>.weight`` lets roles, row sampling, sketches and comparison
treat a quantised copy exactly like its base: same name, shape, rows and sketch positions.

Layouts (W is [out, in], values packed as one little-endian bit stream per word run):
- GPTQ: qweight [in*bits/32, out], packed along the input; qzeros [groups, out*bits/32];
  v1 checkpoints (AutoGPTQ, and GPTQModel's default save) store every zero point minus one.
- AWQ (GEMM): qweight [in, out*bits/32], packed along the output with the eight outputs of a
  word interleaved as [0, 2, 4, 6, 1, 3, 5, 7]; qzeros the same; no g_idx.
W[o, i] = scales[g(i), o] * (q[i, o] - z[g(i), o]).

Format, bits and group size come from the header shapes alone, since fetching config.json
would count as a download; a ``quantization_config`` the listing already carried only picks
the zero-point convention and is cross-checked.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from functools import partial

import numpy as np

from hubscan.pipeline.errors import FormatError
from hubscan.pipeline.readers.byte_source import ByteSource
from hubscan.pipeline.readers.dtypes import SAFETENSORS_DTYPES
from hubscan.pipeline.readers.records import CheckpointHeader, PackedLinear, TensorHeader, logical_matrix
from hubscan.pipeline.roles import QUANT_PARTS

# Prefixes of the logical tensors' dtype names ("GPTQ-int4-g128", "AWQ-int4-g64").
PACKED_SCHEMES = ("GPTQ-", "AWQ-")
SUPPORTED_BITS = (2, 3, 4, 8)
# AutoAWQ's GEMM kernels read the eight 4-bit outputs of a word in this order.
AWQ_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)
AWQ_POSITION = tuple(int(i) for i in np.argsort(AWQ_ORDER))  # nibble that holds output t of a word
SCALE_DTYPES = ("F16", "BF16", "F32")
GPTQ_V2 = "gptq_v2"


def group_packed(
    header: CheckpointHeader, source: ByteSource, quant: Mapping[str, object] | None = None
) -> CheckpointHeader:
    """The header with each packed Linear's parts replaced by one logical ``<prefix>.weight``.

    Raises:
        FormatError: parts missing, of the wrong dtype, or of shapes no GPTQ/AWQ layout has.
    """
    by_name = {t.name: t for t in header.tensors}
    prefixes = sorted(
        {n.rpartition(".")[0] for n in by_name if n.endswith((".qweight", ".qzeros")) and "." in n}
    )
    if not prefixes:
        return header
    bad = partial(FormatError, source.repo_id, source.revision, source.name)
    packed: dict[str, PackedLinear] = {}
    for prefix in prefixes:
        p = _infer(prefix, by_name, quant or {}, bad)
        if p.logical.name in by_name:
            raise bad(f"tensor {p.logical.name}: stored both dense and packed ({prefix}.qweight)")
        packed[p.logical.name] = p
    used = {t.name for p in packed.values() for t in p.parts}
    tensors = [t for t in header.tensors if t.name not in used] + [p.logical for p in packed.values()]
    return replace(header, tensors=tuple(sorted(tensors, key=lambda t: t.start)), packed=packed)


def dequantise_rows(p: PackedLinear, raw: Mapping[str, bytes], rows: np.ndarray) -> np.ndarray:
    """Rows ``rows`` of the logical [out, in] weight as float32, from the parts' whole bytes.

    Raises:
        ValueError: byte counts or g_idx values do not fit the header (the caller names the file).
    """
    out, n_in = p.logical.shape
    words = {t.name: _int32(t, raw[t.name]) for t in (p.qweight, p.qzeros)}
    qweight, qzeros = words[p.qweight.name], words[p.qzeros.name]
    scales = _scales(p.scales, raw[p.scales.name])
    groups = scales.shape[0]
    if p.scheme == "GPTQ":
        q = unpack_last(np.ascontiguousarray(qweight[:, rows].T), p.bits, n_in)  # [rows, in]
        zeros = unpack_last(qzeros, p.bits, out)
    else:
        cols = np.unique(rows // 8)
        at = {int(c): k for k, c in enumerate(cols)}
        block = _awq_order(unpack_last(np.ascontiguousarray(qweight[:, cols]), p.bits, 8 * len(cols)))
        q = block[:, [at[int(r) // 8] * 8 + int(r) % 8 for r in rows]].T  # [rows, in]
        zeros = _awq_order(unpack_last(qzeros, p.bits, out))
    g = _group_index(p, raw, n_in, groups)
    z = zeros[:, rows].astype(np.float32) + np.float32(p.zero_offset)  # [groups, rows]
    # scale * (q - z) in float32, the order the packer's reference uses, so round trips are exact.
    return scales[:, rows][g].T * (q.astype(np.float32) - z[g].T)


def unpack_last(words: np.ndarray, bits: int, count: int) -> np.ndarray:
    """The first ``count`` ``bits``-wide values of each row of int32 words, low bits first.

    Each row is one bit stream (word k holds stream bits 32k..32k+31), which is how AutoGPTQ
    packs 3-bit values across word boundaries and what plain shifts give for 2, 4 and 8 bits.
    """
    n = words.shape[0]
    u = np.ascontiguousarray(words, dtype="<i4").view("<u4")
    if 32 % bits == 0:
        shifts = np.arange(0, 32, bits, dtype=np.uint32)
        vals = (u[:, :, None] >> shifts) & np.uint32((1 << bits) - 1)
        return vals.reshape(n, -1)[:, :count].astype(np.uint8)
    stream = np.unpackbits(u.view(np.uint8).reshape(n, -1), axis=1, bitorder="little")
    stream = stream[:, : count * bits].reshape(n, count, bits)
    return np.packbits(stream, axis=2, bitorder="little")[:, :, 0]


def _awq_order(values: np.ndarray) -> np.ndarray:
    """Undo AWQ's interleaving: column 8j+t becomes output 8j+t."""
    n, m = values.shape
    return values.reshape(n, m // 8, 8)[:, :, list(AWQ_POSITION)].reshape(n, m)


def _group_index(p: PackedLinear, raw: Mapping[str, bytes], n_in: int, groups: int) -> np.ndarray:
    if p.g_idx is None:
        return np.arange(n_in) // p.group_size
    g = _int32(p.g_idx, raw[p.g_idx.name]).reshape(-1).astype(np.int64)
    outside = np.flatnonzero((g < 0) | (g >= groups))
    if len(outside):
        i = int(outside[0])
        raise ValueError(f"{p.g_idx.name}[{i}] = {g[i]} is outside the {groups} groups of {p.scales.name}")
    return g


def _int32(t: TensorHeader, raw: bytes) -> np.ndarray:
    if len(raw) != t.nbytes:
        raise ValueError(f"{t.name}: expected {t.nbytes} bytes, got {len(raw)}")
    return np.frombuffer(raw, dtype="<i4").reshape(t.shape)


def _scales(t: TensorHeader, raw: bytes) -> np.ndarray:
    if len(raw) != t.nbytes:
        raise ValueError(f"{t.name}: expected {t.nbytes} bytes, got {len(raw)}")
    return np.frombuffer(raw, dtype=SAFETENSORS_DTYPES[t.dtype]).astype(np.float32).reshape(t.shape)


def _infer(
    prefix: str,
    by_name: Mapping[str, TensorHeader],
    quant: Mapping[str, object],
    bad: Callable[..., FormatError],
) -> PackedLinear:
    """Scheme, bits and group size of one packed Linear from its parts' shapes."""
    parts = {s: by_name.get(f"{prefix}.{s}") for s in QUANT_PARTS}
    for s in ("qweight", "qzeros", "scales"):
        if parts[s] is None:
            raise bad(f"tensor {prefix}.{s} is missing (GPTQ/AWQ parts split across files are not read)")
    qw, qz, sc, gi = parts["qweight"], parts["qzeros"], parts["scales"], parts["g_idx"]
    assert qw is not None and qz is not None and sc is not None
    for t, want in ((qw, ("I32",)), (qz, ("I32",)), (sc, tuple(SCALE_DTYPES)), (gi, ("I32",))):
        if t is not None and t.dtype not in want:
            raise bad(f"tensor {t.name}: dtype {t.dtype}, packed int layouts use {'/'.join(want)}")
    for t, ndim in ((qw, 2), (qz, 2), (sc, 2), (gi, 1)):
        if t is not None and len(t.shape) != ndim:
            raise bad(f"tensor {t.name}: shape {list(t.shape)} is not {ndim}-D")
    groups, out = sc.shape
    if qw.shape[1] == out:  # GPTQ: packed along the input
        scheme = "GPTQ"
        bits = _bits(32 * qz.shape[1], out, qz, bad)
        n_in = gi.shape[0] if gi is not None else _exact(qw.shape[0] * 32, bits, qw, bad)
        if qw.shape[0] * 32 != n_in * bits:
            raise bad(f"tensor {qw.name}: {qw.shape[0]} packed rows do not hold {n_in} inputs of {bits} bits")
    elif qw.shape[1] == qz.shape[1]:  # AWQ: weights and zeros packed along the output
        scheme, n_in = "AWQ", qw.shape[0]
        bits = _bits(32 * qw.shape[1], out, qw, bad)
        if gi is not None:
            raise bad(f"tensor {gi.name}: AWQ-shaped {qw.name} {list(qw.shape)} has no g_idx")
        if bits != 4:
            raise bad(f"tensor {qw.name}: AWQ with {bits} bits; its GEMM layout is 4-bit only")
    else:
        raise bad(
            f"tensor {qw.name}: shape {list(qw.shape)} fits neither GPTQ nor AWQ "
            f"with {sc.name} {list(sc.shape)} and {qz.name} {list(qz.shape)}"
        )
    if qz.shape != (groups, out * bits // 32):
        raise bad(
            f"tensor {qz.name}: shape {list(qz.shape)}, {sc.name} {list(sc.shape)} needs [{groups}, {out * bits // 32}]"
        )
    if groups < 1 or groups > n_in:
        raise bad(f"tensor {sc.name}: {groups} groups for {n_in} inputs")
    group_size = -(-n_in // groups)  # ceil: a last, shorter group when in is not a multiple
    if -(-n_in // group_size) != groups:
        raise bad(f"tensor {sc.name}: {groups} groups do not tile {n_in} inputs")
    _cross_check(quant, scheme, bits, group_size, groups, n_in, qw, bad)
    zero_offset = 1 if scheme == "GPTQ" and quant.get("checkpoint_format") != GPTQ_V2 else 0
    suffix = f"-g{group_size}" if groups > 1 else ""
    logical = logical_matrix(f"{prefix}.weight", f"{scheme}-int{bits}{suffix}", out, n_in, qw)
    return PackedLinear(logical, scheme, bits, group_size, qw, qz, sc, gi, zero_offset)


def _bits(packed_bits: int, count: int, t: TensorHeader, bad: Callable[..., FormatError]) -> int:
    bits = _exact(packed_bits, count, t, bad)
    if bits not in SUPPORTED_BITS:
        raise bad(f"tensor {t.name}: shape {list(t.shape)} packs {bits} bits per weight, not 2, 3, 4 or 8")
    return bits


def _exact(num: int, den: int, t: TensorHeader, bad: Callable[..., FormatError]) -> int:
    if den <= 0 or num % den:
        raise bad(f"tensor {t.name}: shape {list(t.shape)} is not a whole number of packed values")
    return num // den


def _cross_check(
    quant: Mapping[str, object],
    scheme: str,
    bits: int,
    group_size: int,
    groups: int,
    n_in: int,
    qw: TensorHeader,
    bad: Callable[..., FormatError],
) -> None:
    """A listing's quantization_config must agree with the shapes; the shapes are what is read."""
    method = str(quant.get("quant_method", "")).lower()
    if method not in ("gptq", "awq"):
        return
    if method.upper() != scheme:
        raise bad(f"tensor {qw.name}: quantization_config says {method} but the shapes are {scheme}")
    declared = quant.get("bits")
    if isinstance(declared, int) and declared != bits:
        raise bad(f"tensor {qw.name}: quantization_config says {declared} bits, the shapes {bits}")
    gs = quant.get("group_size")
    if isinstance(gs, int) and gs > 0 and -(-n_in // gs) != groups:
        raise bad(f"tensor {qw.name}: quantization_config group_size {gs} does not give {groups} groups")
