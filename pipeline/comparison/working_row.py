"""The scorer's working row: one candidate pair's signals, their calibration and its flag, filled in steps.

Mutable on purpose, unlike the records around it: the signal SQL fills its columns (``take``), scoring
adds the chance counts and widths, calibration the backgrounds and p-values, the FDR pass q and the
flag, and the low-rank pass its delta; `judge` then turns it into the frozen ``ScoredPair``. Slots keep
it a fraction of a dict's size (a hub's rows wait on disk between passes: flag_rows.py pickles them).

Field names are the signal queries' columns and the `pairs` columns, so the signal table
(pipeline.comparison.signals) names a signal's value, n, background and p here as it does there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from hubscan.pipeline.comparison.candidates import CandidatePair
from hubscan.pipeline.comparison.low_rank import PairDelta
from hubscan.pipeline.comparison.match_rows import LayerMatch, RoleMatch
from hubscan.pipeline.comparison.signals import SIGNALS, signal_columns
from hubscan.pipeline.errors import QueryError
from hubscan.pipeline.keys import PairKey

# A signal query's key columns: the pair's record holds them.
_KEY_COLUMNS = frozenset({"a_repo_id", "a_revision", "b_repo_id", "b_revision"})


@dataclass(slots=True)
class WorkingRow:
    """A candidate pair while it is scored; every value None until the step that computes it."""

    pair: CandidatePair
    copy_link: bool = False  # byte-identical files (a model's copy_of names the other)
    # compute_sketch_scores.sql (and compute_layout_scores.sql for unknown architectures)
    sketch: float | None = None
    sketch_layers: int | None = None
    sketch_roles: int | None = None
    sketch_len: float | None = None
    sketch_n: int | None = None
    sketch_same: float | None = None
    sketch_identical: float | None = None
    map_is_identity: bool | None = None
    layer_map: list[LayerMatch] | None = None
    a_layers: int | None = None
    b_layers: int | None = None
    values_identical: float | None = None
    values_n: int | None = None
    # compute_dim_scores.sql: its *_n columns are vector widths until `merge_rows` moves them to *_width
    gain: float | None = None
    gain_n: int | None = None
    dim_std: float | None = None
    dim_std_n: int | None = None
    col_norms: float | None = None
    col_norms_n: int | None = None
    col_norms_tries: float | None = None
    col_norms_roles: int | None = None
    col_norms_map: list[RoleMatch] | None = None
    # compute_token_scores.sql
    tokens: float | None = None
    tokens_shared: int | None = None
    tokens_cols: int | None = None
    tokens_values: int | None = None
    # compute_sorted_scores.sql
    sorted: float | None = None
    sorted_vectors: int | None = None
    sorted_width: float | None = None
    # compute_layout_scores.sql only: what was matched, and each matched matrix pair (`hubscan compare`)
    compared: str | None = None
    matches: list[dict[str, Any]] | None = None
    # the models' own facts, and the std profiles compared (merge_rows)
    a_dtype: str | None = None
    b_dtype: str | None = None
    a_vocab: int | None = None
    b_vocab: int | None = None
    std_profile: float | None = None
    std_profile_n: int | None = None
    gain_width: float | None = None
    dim_std_width: float | None = None
    col_norms_width: float | None = None
    tokens_n: int | None = None
    sorted_n: int | None = None
    # calibration (scoring.chance_z, calibrate): per signal its block's 5-95 % background and p-value
    signals: int | None = None
    background_pairs: int | None = None
    std_profile_bg_lo: float | None = None
    std_profile_bg_hi: float | None = None
    std_profile_p: float | None = None
    sketch_bg_lo: float | None = None
    sketch_bg_hi: float | None = None
    sketch_p: float | None = None
    gain_bg_lo: float | None = None
    gain_bg_hi: float | None = None
    gain_p: float | None = None
    dim_std_bg_lo: float | None = None
    dim_std_bg_hi: float | None = None
    dim_std_p: float | None = None
    col_norms_bg_lo: float | None = None
    col_norms_bg_hi: float | None = None
    col_norms_p: float | None = None
    tokens_bg_lo: float | None = None
    tokens_bg_hi: float | None = None
    tokens_p: float | None = None
    sorted_bg_lo: float | None = None
    sorted_bg_hi: float | None = None
    sorted_p: float | None = None
    p: float | None = None
    score: float | None = None
    # the false discovery rate over the run (scoring.set_flags)
    q: float | None = None
    q_level: float | None = None
    flagged: bool | None = None
    declared: bool | None = None
    declared_how: str | None = None
    # merged LoRAs and partial training (pipeline/flagging/low_rank_deltas.py), read by the verdict
    delta: PairDelta | None = None

    @property
    def key(self) -> PairKey:
        """(a_repo_id, a_revision, b_repo_id, b_revision)."""
        return self.pair.key

    def take(self, sql_row: Mapping[str, Any]) -> None:
        """A signal query's row (same pair): its non-null columns, a later query's winning.

        Raises:
            QueryError: the row has a column no field holds (a query changed without this record).
        """
        for column, value in sql_row.items():
            if value is None or column in _KEY_COLUMNS:
                continue
            if column not in _SQL_FIELDS:
                raise QueryError(
                    None, None, None, f"signal column {column!r} has no field in the working row"
                )
            setattr(self, column, value)

    def value(self, column: str) -> Any:
        """One of a signal's columns by its name in the signal table (``signal_columns``)."""
        return getattr(self, column)


def _sql_fields() -> frozenset[str]:
    """The fields a signal query may fill: those declared from ``sketch`` to ``matches`` (the pair and the
    values scoring computes are set by scoring only)."""
    names = [f.name for f in fields(WorkingRow)]
    return frozenset(names[names.index("sketch") : names.index("matches") + 1])


_SQL_FIELDS = _sql_fields()


def _check_signal_fields() -> None:
    """Each signal of the signal table has its five columns here (a new signal needs its fields)."""
    names = {f.name for f in fields(WorkingRow)}
    missing = [c for s in SIGNALS for c in signal_columns(s) if c not in names]
    if missing:
        raise TypeError(f"WorkingRow lacks the signal columns {missing}")


_check_signal_fields()
