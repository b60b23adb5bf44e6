"""Quantised layouts read by rows (MLX affine, bitsandbytes 4- and 8-bit), and the rule that their parts are never evidence.

Each layout module exposes ``group(header, source, settings, quant) -> CheckpointHeader``: it
replaces a quantised layer's stored parts by one logical ``<module>.weight`` (a ``Rebuilt``)
and leaves everything else alone. After every layout has had its turn, ``drop_auxiliary``
removes what none consumed but what is still a quantiser's part (pipeline/quant_parts.py):
code tables, scales and state that are the same in every file of a format must never reach
a fingerprint, or two unrelated models quantised the same way look related.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

from hubscan.pipeline.config import Settings
from hubscan.pipeline.quant_parts import is_auxiliary
from hubscan.pipeline.readers import bnb, bnb_int8, mlx
from hubscan.pipeline.readers.byte_source import ByteSource
from hubscan.pipeline.readers.dtypes import SAFETENSORS_DTYPES
from hubscan.pipeline.readers.records import CheckpointHeader

Grouper = Callable[[CheckpointHeader, ByteSource, Settings, Mapping[str, object] | None], CheckpointHeader]
# One entry per row-read layout; a new format appends its module's ``group``.
GROUPERS: tuple[Grouper, ...] = (mlx.group, bnb.group, bnb_int8.group)
# Dtype-name prefixes of rebuilt tensors: the model's dtype is named by them, not by its F16 rest.
REBUILT_SCHEMES = (mlx.SCHEME, *bnb.SCHEMES, bnb_int8.SCHEME)


def rebuild(
    header: CheckpointHeader, source: ByteSource, settings: Settings, quant: Mapping[str, object] | None
) -> CheckpointHeader:
    """The header with every row-read quantised layer rebuilt and every leftover quantiser part dropped.

    Raises:
        FormatError: a layer's parts do not fit its format.
        FetchError: a format's state tensors could not be read.
    """
    for group in GROUPERS:
        header = group(header, source, settings, quant)
    return drop_auxiliary(header)


def drop_auxiliary(header: CheckpointHeader) -> CheckpointHeader:
    """Remove quantiser parts no reader consumed, and integer weights no reader rebuilt.

    An integer ``<module>.weight`` is packed data: beside a scale or code table in a layout no
    reader knows, or with its parts in another shard (not rebuilt yet; the layer is left out).
    As raw ints it would be compared with the base's floats, or with another model's ints of
    the same layout, which share the code, not the weights.
    """
    aux = {t.name for t in header.tensors if is_auxiliary(t.name)}
    modules = {_module(n) for n in aux}
    rebuilt = header.packed.keys() | header.rebuilt.keys() | header.scaled.keys()
    dropped = aux | {
        t.name
        for t in header.tensors
        if not _is_float(t.dtype)
        and t.name not in rebuilt
        and (_module(t.name) in modules or t.name.endswith(".weight"))
    }
    if not dropped:
        return header
    return replace(header, tensors=tuple(t for t in header.tensors if t.name not in dropped))


def _module(name: str) -> str:
    """The module a parameter or quantiser part belongs to ("a.b.weight.absmax" and "a.b.scales" → "a.b")."""
    head = name.rpartition(".")[0]
    for marker in (".weight.quant_state", ".weight"):
        if head.endswith(marker):
            return head[: -len(marker)]
    return head


def _is_float(dtype: str) -> bool:
    # Rebuilt and packed logical tensors carry scheme names ("MLX-int4-g64"): they are weights.
    return dtype not in SAFETENSORS_DTYPES or dtype.startswith(("F", "BF"))
