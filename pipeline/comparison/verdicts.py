"""Verdicts for scored pairs, with every threshold in one table next to the reason for its value."""

from __future__ import annotations

from dataclasses import dataclass

from hubscan.pipeline.comparison.layout import with_compared
from hubscan.pipeline.comparison.working_row import WorkingRow

EXACT_COPY = "exact copy"
VOCAB_COPY = "copy with vocabulary pruned/extended"
CAST_COPY = "cast/quantised copy"
FINE_TUNE = "fine-tune"
# The moved matrices each moved by a low-rank delta on the sampled rows: a merged LoRA
# (pipeline/flagging/low_rank_deltas.py sets the row's ``delta``; pipeline/comparison/low_rank.py measures it).
LOW_RANK_FINE_TUNE = "low-rank fine-tune"
SAME_LINEAGE = "same lineage"
STRUCTURAL = "structural derivative"
# A mixture of two relatives (set after judging, by the lineage pass: pipeline/flagging/flag_lineage.py).
MERGED = "merge"
REPARAM = "re-parameterised copy"
REPARAM_FINE_TUNE = "re-parameterised fine-tune"
UNRELATED = "unrelated"
INSUFFICIENT = "insufficient evidence"
# Verdicts that mean someone re-parameterised the weights to hide the relation.
OBFUSCATION_VERDICTS = frozenset({REPARAM, REPARAM_FINE_TUNE})


@dataclass(frozen=True)
class Threshold:
    """A verdict threshold and why it has that value."""

    value: float
    reason: str


THRESHOLDS: dict[str, Threshold] = {
    "exact_identical": Threshold(
        0.999,
        "fraction of same-index matrices with bit-identical sampled values: re-uploads, renames, "
        "shards and vocabulary pruning never touch a layer value",
    ),
    "cast_max_dev": Threshold(
        0.02,
        "largest 1 - r of same-index matrices a quantisation reaches: Q4_0 measured 0.004 here, "
        "Q4_x keeps cosine >= 0.995 (models.md); beyond it the weights moved",
    ),
    "weight_only_values": Threshold(
        0.9,
        "fraction of 1-D tensors (norms, biases) bit-identical while matrices differ: weight-only "
        "quantisation (int8 ONNX, GGUF keep them F32); training moves them",
    ),
    "fine_tune_min": Threshold(
        0.5,
        "element-aligned r along the layer map: trained-on weights stay far above it, independent "
        "models sit at chance (~0.01-0.02 for 2048 sampled values)",
    ),
    "vector_rounding_max": Threshold(
        5e-6,
        "1 - r of the sorted 1-D tensors (norms, biases, embedding dim-std) that rounding explains: casts "
        "to BF16 measured 1.6e-6, F16 2e-8, int8/Q4/Q8/GPTQ/AWQ copies 0 (they keep 1-D tensors); a 1 % "
        "fine-tune-like drift 2.4e-5. Below it with matrices within cast_max_dev: a quantisation round trip",
    ),
    "min_signals": Threshold(
        2,
        "decisive signals a relation needs besides a copy-level sketch: one per-dimension signal "
        "alone cannot tell shared lineage from coincidence",
    ),
    "invariant_max_p": Threshold(
        1e-6,
        "p-value the permutation-invariant (sorted) signal must reach to name a re-parameterised copy "
        "on its own: copies measured 1e-21 (1 % drift) to 1e-300, unrelated same-shape pairs 0.9996",
    ),
    "aligned_chance_p": Threshold(
        0.01,
        "p-value above which a position-aligned signal (sketch, gain, dim_std, col_norms, tokens) counts "
        "as at chance: hidden units were permuted if all are there while sorted vectors agree",
    ),
    "rescale_same_min": Threshold(
        0.999,
        "element-aligned r of same-index matrices (scale-free) above which the weights are the same",
    ),
    "rescale_profile_max": Threshold(
        0.9,
        "std-profile r below which the same weights were rescaled: casts and drift keep it >= 0.9999, "
        "per-layer Q*c, K/c, V*c', O/c' gave 0.106",
    ),
}
# Position-aligned signals: a permutation of hidden units (or neurons, heads) sends them to chance.
ALIGNED_SIGNALS = ("sketch", "gain", "dim_std", "col_norms", "tokens")
# 1 - r that rounding to a storage dtype alone produces on trained weights (measured on
# all-MiniLM-L6 vs its casts: F16 2e-8, BF16 1.4e-6, Q8_0 1.6e-5, Q4_0 4e-3; about 2x margin).
# A 1 % fine-tune-like drift gives 5e-5: above every band up to Q8_0, inside Q4 noise.
CAST_DEV_BY_DTYPE: tuple[tuple[str, float], ...] = (
    ("F16", 1e-6),
    ("BF16", 1e-5),
    ("F8", 1e-3),
    ("Q8", 3e-5),
    ("Q6", 3e-4),
    ("Q5", 1e-3),
    ("Q4", 1e-2),
    ("IQ4", 1e-2),
    ("Q3", 2e-2),
    ("Q2", 2e-2),
    ("IQ", 2e-2),
    # GPTQ/AWQ packed ints (dtype "GPTQ-int4-g128"): round-to-nearest on all-MiniLM-L6 reaches
    # 1 - r of 2.4e-5 (int8), 5.9e-3 (int4), 2.6e-2 (int3), 0.12 (int2) per matrix at g128;
    # about 2x, since GPTQ's error feedback moves weights further than rounding alone.
    ("GPTQ-INT8", 5e-5),
    ("GPTQ-INT4", 1.2e-2),
    ("GPTQ-INT3", 5e-2),
    ("GPTQ-INT2", 0.25),
    ("AWQ-INT4", 1.2e-2),
    # compressed-tensors and FP8 (dtype "INT4-g128", "FP8-E4M3-channel", "NVFP4"): the testbed's
    # quantisers on all-MiniLM-L6 reach a worst matrix 1 - r of 7e-5 (int8 channel), 9.9e-3
    # (int4 g128 symmetric), 3.9e-4 (FP8 any granularity), 4.9e-3 (NVFP4), 7.6e-3 (MXFP4).
    ("INT8", 1.5e-4),
    ("INT4", 1.5e-2),
    ("FP8-", 1e-3),
    ("NVFP4", 1e-2),
    ("MXFP4", 1.5e-2),
    # MLX affine min/max per group and bitsandbytes blockwise absmax (pipeline/readers/mlx.py,
    # bnb.py, bnb_int8.py) on all-MiniLM-L6's FFN, groups of 32 / 128: MLX int8 1.1e-5 / 1.9e-5,
    # int6 1.8e-4 / 3.1e-4, int5 7.5e-4 / 1.3e-3, int4 3.2e-3 / 5.4e-3, int3 1.4e-2 / 2.4e-2,
    # int2 7.1e-2 / 0.11; NF4 4.3e-3, FP4 7.9e-3 (double quantisation adds 1e-5), LLM.int8 3.0e-5;
    # about 2x.
    ("MLX-INT8", 5e-5),
    ("MLX-INT6", 7e-4),
    ("MLX-INT5", 3e-3),
    ("MLX-INT4", 1.2e-2),
    ("MLX-INT3", 5e-2),
    ("MLX-INT2", 0.25),
    ("NF4", 1.2e-2),
    ("FP4", 2e-2),
    ("INT8-BNB", 6e-5),
)


def cast_band(dtype: str | None) -> float:
    """1 - r that storing weights in this dtype can explain (0 for F32 and unknown dtypes)."""
    d = (dtype or "").upper()
    return max((band for prefix, band in CAST_DEV_BY_DTYPE if d.startswith(prefix)), default=0.0)


def verdict(row: WorkingRow) -> tuple[str, str]:
    """(verdict, reason) of one scored pair; the row carries the signals and ``flagged``."""
    if row.copy_link:
        return EXACT_COPY, "byte-identical weight files (copy_of)"
    signals = int(row.signals or 0)
    if not row.flagged:
        if signals == 0:
            return INSUFFICIENT, "no decisive signal could be computed (no shared shapes or embeddings)"
        return UNRELATED, "no combination of signals beats its background at the chosen q"
    t = THRESHOLDS
    hidden = obfuscation(row)
    if hidden is not None:
        return (REPARAM_FINE_TUNE if _moved_after_reparam(row) else REPARAM), hidden
    sketch, same = row.sketch, row.sketch_same
    same_depth = row.a_layers == row.b_layers and row.map_is_identity is not False
    if same_depth and same is not None:
        if (row.sketch_identical or 0.0) >= t["exact_identical"].value:
            va, vb = row.a_vocab, row.b_vocab
            if va and vb and va != vb:
                return VOCAB_COPY, (
                    f"every same-index matrix bit-identical, vocabularies of {va:,} and {vb:,} rows: "
                    "the embedding table was cut or grown, nothing else touched"
                )
            return EXACT_COPY, "every same-index matrix has bit-identical sampled values"
        # before the cast check: a merge's untouched matrices carry the median r
        delta = row.delta
        if delta is not None and delta.rank is not None:
            return LOW_RANK_FINE_TUNE, delta.low_rank_reason()
        if delta is not None and delta.partial and delta.dev > cast_bands(row)[0]:
            return FINE_TUNE, delta.partial_reason()
        dev = 1.0 - same
        cast = _cast_reason(row, dev)
        if cast is not None:
            return CAST_COPY, cast
        if sketch is not None and sketch >= t["fine_tune_min"].value:
            return FINE_TUNE, f"same weights moved by training: element-aligned r = {sketch:.4f}"
    if sketch is not None and sketch >= t["fine_tune_min"].value:
        return STRUCTURAL, f"layers copied onto another depth or order: element-aligned r = {sketch:.3f}"
    if signals < t["min_signals"].value:
        return INSUFFICIENT, "flagged on a single per-dimension signal"
    return SAME_LINEAGE, "matrices at chance but per-dimension or token-aligned statistics shared"


def cast_bands(row: WorkingRow) -> tuple[float, str]:
    """1 - r the two sides' storage dtypes explain together, and the coarser dtype.

    Siblings (two casts of one base) each carry their own rounding, so the bands add up.
    """
    a, b = row.a_dtype, row.b_dtype
    return cast_band(a) + cast_band(b), str(max((a, b), key=cast_band))


def _cast_reason(row: WorkingRow, dev: float) -> str | None:
    """Why matrices at 1 - r = dev are a cast or quantisation of the same weights, or None."""
    t = THRESHOLDS
    band, dtype = cast_bands(row)
    if dev <= band:
        return f"1 - r = {dev:.1e}, within what rounding to {dtype} explains"
    if dev > t["cast_max_dev"].value:
        return None
    if (row.values_identical or 0.0) >= t["weight_only_values"].value:
        return f"norms and biases bit-identical, matrices at 1 - r = {dev:.1e}: weight-only quantisation"
    vec_dev = _vector_dev(row)
    if vec_dev is not None and vec_dev <= t["vector_rounding_max"].value:
        return (
            f"norms and biases agree to rounding (1 - r = {vec_dev:.1e}), matrices at 1 - r = {dev:.1e}: "
            "a cast or quantisation round trip (int8/Q4/Q8/GPTQ/AWQ/bf16), not training"
        )
    return None


def _vector_dev(row: WorkingRow) -> float | None:
    """1 - r of the sorted 1-D tensors (scale- and permutation-blind), or None when not computed."""
    value = row.sorted
    return None if value is None else max(0.0, 1.0 - float(value))


def obfuscation(row: WorkingRow) -> str | None:
    """Why a flagged pair looks deliberately re-parameterised, or None.

    Permuted: the permutation-invariant signal is far beyond chance while every position-aligned
    signal is at chance. Rescaled: same-index matrices agree element-wise (Pearson ignores scale)
    while the per-layer std profile, which does not, is bent.
    """
    t = THRESHOLDS
    sorted_p = row.sorted_p
    aligned = [float(p) for s in ALIGNED_SIGNALS if (p := row.value(f"{s}_p")) is not None]
    at_chance = bool(aligned) and min(aligned) > t["aligned_chance_p"].value
    if sorted_p is not None and sorted_p <= t["invariant_max_p"].value and at_chance:
        return (
            f"sorted per-dimension vectors agree (r = {row.sorted:.6f}, p = {sorted_p:.1e}) while every "
            f"position-aligned signal is at chance: hidden units, neurons or heads permuted (obfuscation)"
        )
    same, profile = row.sketch_same, row.std_profile
    if (
        same is not None
        and profile is not None
        and same >= t["rescale_same_min"].value
        and profile < t["rescale_profile_max"].value
    ):
        return (
            f"same-index matrices agree element-wise (r = {same:.4f}) but the per-layer std profile is bent "
            f"(r = {profile:.3f}): Q/K or V/O rescaled against each other (obfuscation)"
        )
    return None


def _moved_after_reparam(row: WorkingRow) -> bool:
    """A re-parameterised pair whose weights also moved beyond rounding: trained before or after it."""
    vec_dev = _vector_dev(row)
    if vec_dev is not None:
        return vec_dev > THRESHOLDS["vector_rounding_max"].value
    # rescaled copies keep same-index matrices element-aligned, so drift shows there too
    same = row.sketch_same
    return same is not None and 1.0 - same > cast_bands(row)[0]


# Structural kinds a layer or expert map can show (pipeline.comparison.layer_align / expert_map);
# any of them makes a flagged pair a structural derivative, whatever its sketch alone suggested
# (a MoE upcycled from a dense model shares attention layers bit for bit: an "exact copy" by sketch).
STRUCTURAL_KINDS = (
    "pruned",
    "up-scaled",
    "re-ordered",
    "partial",
    "stacked",
    "upcycled-moe",
    "expert-permuted",
)


def decide(row: WorkingRow, structure: str | None, summary: str) -> tuple[str, str, bool]:
    """(verdict, reason, obfuscation) of one scored pair, with its layer/expert map's structure when mapped.

    The one place a pair's verdict is decided. ``obfuscation`` follows the signals alone: a
    re-parameterised copy that is also structurally derived keeps the flag.
    """
    name, reason = verdict(row)
    obfuscated = name in OBFUSCATION_VERDICTS
    if row.flagged and structure is not None and structure in STRUCTURAL_KINDS:
        return STRUCTURAL, summary if summary.startswith(structure) else f"{structure}: {summary}", obfuscated
    return name, with_compared(reason, row.pair.layout, row.compared), obfuscated
