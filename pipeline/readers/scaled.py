"""Scaled low-precision Linears (compressed-tensors int/FP8/FP4, block FP8) as logical [out, in] weights.

Like packed_int for GPTQ/AWQ: each quantised Linear's stored parts (codes, scales, zero points,
global scale, stored shape, activation scales) become one ``<module>.weight`` on the base's name,
shape and rows, so roles, sampling and fingerprints treat the copy like its base, and no quantiser
auxiliary is ever a tensor of its own. The layout is read from the header's names, dtypes and
shapes; a ``quantization_config`` the listing carried only picks between readings the shapes
leave open (bits, block size) and is cross-checked. The format modules hold each layout's facts:
compressed_int.py, dense_scaled.py, fp4.py; exllama.py refuses EXL2/EXL3.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from functools import partial

import numpy as np

from hubscan.pipeline.config import Settings
from hubscan.pipeline.errors import FormatError
from hubscan.pipeline.readers import compressed_int, dense_scaled, exllama, fp4
from hubscan.pipeline.readers.byte_source import ByteSource
from hubscan.pipeline.readers.dtypes import SAFETENSORS_DTYPES
from hubscan.pipeline.readers.ranges import Span, fetch, plan_requests
from hubscan.pipeline.readers.records import CheckpointHeader, RowBlock, ScaledLinear, TensorHeader
from hubscan.pipeline.readers.sampling import row_indices
from hubscan.pipeline.roles import SCALED_PARTS

# Prefixes of the logical tensors' dtype names ("INT4-g128", "FP8-E4M3-channel", "NVFP4").
SCALED_SCHEMES = ("INT2-", "INT3-", "INT4-", "INT5-", "INT6-", "INT8-", "FP8-", "NVFP4", "MXFP4")
DECODERS: dict[str, Callable[[ScaledLinear, Mapping[str, np.ndarray], np.ndarray], np.ndarray]] = {
    "int": compressed_int.decode,
    "dense": dense_scaled.decode,
    "nvfp4": fp4.decode,
    "mxfp4": fp4.decode,
}
# compressed-tensors' format names for what each codec reads (a config naming another is refused).
CT_FORMATS = {
    "int": ("pack-quantized",),
    "dense": ("float-quantized", "int-quantized", "naive-quantized"),
    "nvfp4": ("nvfp4-pack-quantized",),
    "mxfp4": ("mxfp4-pack-quantized",),
}
# Quantisation state that sits beside the Linears of a scaled checkpoint, never a fingerprint
# either: activation scales and zero points (static W8A8, NVFP4 W4A4) and the KV-cache scales of
# an attention module.
ACTIVATION_AUX = (
    "input_scale",
    "input_zero_point",
    "input_global_scale",
    "output_scale",
    "output_zero_point",
)
KV_SCALES = ("k_scale", "v_scale")


def group_scaled(
    header: CheckpointHeader, source: ByteSource, quant: Mapping[str, object] | None, settings: Settings
) -> CheckpointHeader:
    """The header with each scaled Linear's parts replaced by one logical ``<module>.weight``.

    A Linear whose parts a shard boundary split (safetensors shards cut the state dict wherever
    the size limit falls) cannot be rebuilt from either file: its parts are left out of both,
    never read as weights of their own, and the rest of the model is read.

    Raises:
        UnsupportedFormat: an EXL2/EXL3 file.
        FormatError: parts missing, of the wrong dtype, or of shapes no layout has.
    """
    exllama.refuse((t.name for t in header.tensors), source)
    by_name = {t.name: t for t in header.tensors}
    bad = partial(FormatError, source.repo_id, source.revision, source.name)
    quant = quant or {}
    found: dict[str, ScaledLinear] = {}
    packed = [p for p in _prefixes(by_name, ".weight_packed") if _whole(p, by_name, quant)]
    ints = [p for p in packed if by_name[f"{p}.weight_packed"].dtype == "I32"]
    shapes = _stored_shapes(ints, by_name, source, settings, bad)
    for prefix in packed:
        if prefix in shapes:
            s = compressed_int.find(prefix, by_name, shapes[prefix], _declared_bits(quant), bad)
        else:
            s = fp4.find(prefix, by_name, bad)
        found[s.logical.name] = s
    for suffix in ("weight_scale_inv", "weight_scale"):
        for prefix in _prefixes(by_name, f".{suffix}"):
            weight = by_name.get(f"{prefix}.weight")
            if weight is not None and weight.dtype in dense_scaled.CODE_DTYPES and prefix not in packed:
                s = dense_scaled.find(prefix, suffix, by_name, _declared_block(quant), bad)
                found[s.logical.name] = s
    _cross_check(quant, found.values(), bad)
    used = {t.name for s in found.values() for _, t in s.parts} | {
        n for s in found.values() for n in s.dropped
    }
    scaled_file = bool(found) or _declares_scaled(quant)
    if not scaled_file and not any(n.rpartition(".")[2] in SCALED_PARTS for n in by_name):
        return header
    used |= _stray_parts(by_name, used, scaled_file)
    kept = [t for t in header.tensors if t.name not in used and t.name not in found]
    tensors = sorted([*kept, *(s.logical for s in found.values())], key=lambda t: t.start)
    return replace(header, tensors=tuple(tensors), scaled=found)


def spans(s: ScaledLinear, blocks: tuple[RowBlock, ...]) -> list[Span]:
    """Byte ranges of the planned rows of each row-aligned part, and of each part read whole."""
    name = s.logical.name
    out: list[Span] = []
    for what, t in s.parts:
        if what in s.whole:
            out.append(Span(t.start, t.start + t.nbytes, key=(name, t.name)))
        else:
            out += [Span(*t.row_span(b.first, b.count), key=(name, t.name, b.first)) for b in blocks]
    return out


def cost(s: ScaledLinear, blocks: tuple[RowBlock, ...]) -> int:
    """Bytes the planned rows of a scaled Linear take to read (for batching)."""
    n = sum(b.count for b in blocks)
    return sum(t.nbytes if w in s.whole else n * t.row_bytes for w, t in s.parts)


def rebuild(s: ScaledLinear, data: Mapping[object, bytes], blocks: tuple[RowBlock, ...]) -> np.ndarray:
    """The planned rows of the logical weight as float32, from the fetched bytes of its parts.

    Raises:
        ValueError: byte counts that do not fit the header, or codes the format leaves undefined.
    """
    rows = row_indices(blocks)
    name = s.logical.name
    arrays: dict[str, np.ndarray] = {}
    for what, t in s.parts:
        if what in s.whole:
            raw, want, shape = data.get((name, t.name), b""), t.nbytes, t.shape
        else:
            raw = b"".join(data.get((name, t.name, b.first), b"") for b in blocks)
            want, shape = len(rows) * t.row_bytes, (len(rows), t.n_cols)
        if len(raw) != want:
            raise ValueError(f"{t.name}: expected {want} bytes, got {len(raw)}")
        arrays[what] = np.frombuffer(raw, dtype=SAFETENSORS_DTYPES[t.dtype]).reshape(shape)
    return DECODERS[s.codec](s, arrays, rows)


def _prefixes(by_name: Mapping[str, TensorHeader], suffix: str) -> list[str]:
    return sorted(n[: -len(suffix)] for n in by_name if n.endswith(suffix) and len(n) > len(suffix))


def _stored_shapes(
    prefixes: list[str],
    by_name: Mapping[str, TensorHeader],
    source: ByteSource,
    settings: Settings,
    bad: Callable[[str], FormatError],
) -> dict[str, tuple[int, int]]:
    """The [out, in] each ``weight_shape`` holds, read in merged requests.

    The shapes' 16 bytes each are the only values the header cannot give; safetensors lays its
    I64 tensors out together, so they usually come back in one request.
    """
    wanted = []
    for p in prefixes:
        t = by_name.get(f"{p}.weight_shape")
        if t is None:
            raise bad(f"tensor {p}.weight_shape is missing: pack-quantized padding hides the original width")
        if t.dtype not in ("I64", "I32") or t.shape != (2,):
            raise bad(f"tensor {t.name}: {t.dtype}{list(t.shape)} is not the two sizes of a matrix")
        wanted.append(t)
    spans_ = [Span(t.start, t.start + t.nbytes, key=t.name) for t in wanted]
    data = fetch(source, plan_requests(spans_, settings.merge_gap_bytes), settings.fetch_concurrency)
    shapes: dict[str, tuple[int, int]] = {}
    for p, t in zip(prefixes, wanted, strict=True):
        raw = data.get(t.name, b"")
        if len(raw) != t.nbytes:
            raise bad(f"tensor {t.name}: expected {t.nbytes} bytes, got {len(raw)}")
        out, n_in = (int(v) for v in np.frombuffer(raw, dtype=SAFETENSORS_DTYPES[t.dtype]))
        if out < 1 or n_in < 1:
            raise bad(f"tensor {t.name}: holds [{out}, {n_in}], not a matrix's shape")
        shapes[p] = (out, n_in)
    return shapes


def _whole(prefix: str, by_name: Mapping[str, TensorHeader], quant: Mapping[str, object]) -> bool:
    """Whether every part a packed Linear needs is in this file (scale, stored shape for ints,
    zero points when the config declares asymmetric ints)."""
    need = ["weight_scale"]
    if by_name[f"{prefix}.weight_packed"].dtype == "I32":
        need.append("weight_shape")
        if _declares_asymmetric(quant):
            need.append("weight_zero_point")
    return all(f"{prefix}.{n}" in by_name for n in need)


def _stray_parts(by_name: Mapping[str, TensorHeader], used: set[str], scaled_file: bool) -> set[str]:
    """Auxiliaries no grouped Linear took (activation and KV scales; parts of Linears split across
    files), and, in a file of scaled Linears, FP8 weights left without a scale."""
    stray = set()
    for name, t in by_name.items():
        last = name.rpartition(".")[2]
        unscaled = scaled_file and last == "weight" and t.dtype in dense_scaled.FP8_DTYPES
        if name not in used and (
            last in SCALED_PARTS or last in ACTIVATION_AUX or last in KV_SCALES or unscaled
        ):
            stray.add(name)
    return stray


def _declares_scaled(quant: Mapping[str, object]) -> bool:
    return str(quant.get("quant_method", "")).lower() in ("compressed-tensors", "fp8")


def _declares_asymmetric(quant: Mapping[str, object]) -> bool:
    """Whether a compressed-tensors config declares asymmetric integer weights (zero points stored)."""
    for g in _config_groups(quant):
        w = g.get("weights")
        if isinstance(w, Mapping) and w.get("type") == "int" and w.get("symmetric") is False:
            return True
    return False


def _config_groups(quant: Mapping[str, object]) -> list[Mapping[str, object]]:
    groups = quant.get("config_groups")
    return [g for g in groups.values() if isinstance(g, Mapping)] if isinstance(groups, Mapping) else []


def _declared_bits(quant: Mapping[str, object]) -> frozenset[int]:
    """Integer weight widths a compressed-tensors config declares (empty when none is)."""
    bits = set()
    for g in _config_groups(quant):
        w = g.get("weights")
        if isinstance(w, Mapping) and w.get("type") == "int" and isinstance(w.get("num_bits"), int):
            bits.add(int(w["num_bits"]))
    return frozenset(bits)


def _declared_block(quant: Mapping[str, object]) -> tuple[int, int] | None:
    """The FP8 block size: ``weight_block_size`` (fp8) or a group's ``block_structure`` (compressed-tensors)."""
    found: Iterable[object] = [quant.get("weight_block_size")]
    for g in _config_groups(quant):
        w = g.get("weights")
        if isinstance(w, Mapping):
            found = [*found, w.get("block_structure")]
    for b in found:
        if isinstance(b, list) and len(b) == 2 and all(isinstance(v, int) and v > 0 for v in b):
            return int(b[0]), int(b[1])
    return None


def _cross_check(
    quant: Mapping[str, object], found: Iterable[ScaledLinear], bad: Callable[[str], FormatError]
) -> None:
    """A compressed-tensors config naming one format must agree with the layout the shapes show."""
    if str(quant.get("quant_method", "")).lower() != "compressed-tensors":
        return
    declared = {quant.get("format")} | {g.get("format") for g in _config_groups(quant)}
    named = {d for d in declared if isinstance(d, str)}
    if not named or "mixed-precision" in named:
        return
    for s in found:
        if not named.intersection(CT_FORMATS[s.codec]):
            raise bad(
                f"tensor {s.logical.name}: quantization_config says {'/'.join(sorted(named))} "
                f"but the parts are {'/'.join(CT_FORMATS[s.codec])}"
            )
