"""Tensors a quantisation format stores beside its weights: never evidence of lineage.

A quantiser's code tables are the same in every file of its format (bitsandbytes' NF4
``quant_map`` [16] and ``nested_quant_map`` [256]), and its scales, zero points and group
indices only serve the dequantiser. Stored as tensors, two unrelated models quantised the
same way share them and look related (two NF4 copies of unrelated models were flagged as
re-parameterised copies). So the rule has two halves:

- a reader that knows the format consumes a quantised layer's parts and yields only the
  rebuilt weight (pipeline/readers/quantised.py);
- whatever no reader consumed is still dropped by name here, and an integer tensor of a module
  that has such parts is packed data no reader rebuilt, dropped too.

A new format adds one row to ``AUXILIARY_PARTS``: the last component of its parts' names.
"""

from __future__ import annotations

import re

# Format → the last name component of the tensors its dequantiser reads besides the packed
# weight. Pure data, importable by every stage.
AUXILIARY_PARTS: dict[str, frozenset[str]] = {
    # AutoGPTQ / AutoAWQ: "<module>.qzeros", ".scales", ".g_idx" (".qweight" is the weight itself)
    "GPTQ/AWQ": frozenset({"qzeros", "scales", "g_idx"}),
    # bitsandbytes 4-bit "<module>.weight.absmax", ".quant_map", ".nested_absmax", ".nested_quant_map",
    # ".quant_state.bitsandbytes__nf4|fp4" (JSON in a U8 tensor); 8-bit "<module>.SCB", ".weight_format"
    "bitsandbytes": frozenset(
        {
            "absmax",
            "quant_map",
            "nested_absmax",
            "nested_quant_map",
            "bitsandbytes__nf4",
            "bitsandbytes__fp4",
            "SCB",
            "weight_format",
        }
    ),
    # MLX affine: "<module>.scales", "<module>.biases" per group
    "MLX": frozenset({"scales", "biases"}),
    # compressed-tensors and block FP8 (read by their own readers; dropped here if none does)
    "compressed-tensors": frozenset(
        {
            "weight_scale",
            "weight_zero_point",
            "weight_global_scale",
            "weight_g_idx",
            "weight_shape",
            "input_scale",
            "input_global_scale",
            "output_scale",
            "k_scale",
            "v_scale",
        }
    ),
    "block FP8": frozenset({"weight_scale_inv"}),
}
ALL_AUXILIARY: frozenset[str] = frozenset().union(*AUXILIARY_PARTS.values())


def is_auxiliary(name: str) -> bool:
    """True for a tensor name whose last component is a quantiser's part (scales, code tables, state)."""
    return name.rpartition(".")[2] in ALL_AUXILIARY


# transformers and mlx-lm name shards "model-00001-of-00004.safetensors" and split them by size,
# tensor by tensor, so one layer's parts can straddle two shards.
_SHARD_RE = re.compile(r"-\d+-of-\d+\.[A-Za-z0-9]+$")


def may_split_parts(filename: str) -> bool:
    """True when a file is one shard of several: a layer's parts may lie partly in another shard."""
    return _SHARD_RE.search(filename) is not None
