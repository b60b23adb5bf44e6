"""EXL2/EXL3 (exllamav2, exllamav3) checkpoints: recognised by their tensor names and refused in one line.

EXL2 stores a Linear as ``q_weight`` (I32 codes of 2-8 bits, mixed within one matrix and packed
by row groups), ``q_scale`` and ``q_scale_max`` (4-bit group scales and their F16 maxima),
``q_groups`` (bits and first row of each group) and ``q_invperm`` (act-order). EXL3 stores
``trellis`` (I16 tiles of a trellis code decoded through a codebook) with ``suh``/``svh``, the sign
vectors of the Hadamard rotations applied to both sides. In neither does a byte range hold an
original row: EXL2 permutes inputs and varies bit widths by group, EXL3 rotates the whole matrix.
Rather than fingerprint codes as if they were weights, the model becomes one failures row.
"""

from __future__ import annotations

from collections.abc import Iterable

from hubscan.pipeline.errors import UnsupportedFormat
from hubscan.pipeline.readers.byte_source import ByteSource

# (format, parameter names of one Linear that only that format writes)
SIGNATURES = (
    ("EXL2", ("q_weight", "q_groups")),
    ("EXL3", ("trellis", "suh")),
)


def refuse(names: Iterable[str], source: ByteSource) -> None:
    """Raise for a file whose Linears are EXL2/EXL3-quantised; return for anything else.

    Raises:
        UnsupportedFormat: names the format and the first quantised tensor.
    """
    by_module: dict[str, set[str]] = {}
    for name in names:
        head, _, last = name.rpartition(".")
        by_module.setdefault(head, set()).add(last)
    for fmt, params in SIGNATURES:
        hits = sorted(m for m, have in by_module.items() if all(p in have for p in params))
        if hits:
            raise UnsupportedFormat(
                source.repo_id,
                source.revision,
                source.name,
                f"tensor {hits[0]}.{params[0]}: {fmt}-quantised Linears ({len(hits)} here) keep no "
                f"original row in any byte range; hubscan does not decode {fmt}",
            )
