"""A scored pair as one frozen record, whose field list is also the Arrow schema of the `pairs` table.

Each signal of the signal table (pipeline.comparison.signals) has one ``SignalValue`` in the
record and five columns in the schema, both taken from that table, so a new signal reaches the
stored pairs and every printout that lists ``SIGNALS`` without another edit.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

import pyarrow as pa

from hubscan.pipeline.comparison.match_rows import LayerMatch, RoleMatch
from hubscan.pipeline.comparison.signals import SIGNALS, signal_columns
from hubscan.pipeline.comparison.working_row import WorkingRow
from hubscan.pipeline.keys import PairKey

_layer_match = pa.struct([("a_layer", pa.int64()), ("b_layer", pa.int64()), ("r", pa.float64())])
_role_match = pa.struct(
    [("role", pa.string()), ("a_layer", pa.int64()), ("b_layer", pa.int64()), ("r", pa.float64())]
)
# The record field that stands for the five columns of every signal, in the signal table's order.
SIGNALS_FIELD = "by_signal"


def _arrow(arrow: pa.DataType) -> dict[str, pa.DataType]:
    """Field metadata: the field is stored as one `pairs` column of this Arrow type."""
    return {"arrow": arrow}


@dataclass(frozen=True, slots=True)
class SignalValue:
    """One signal of one pair: its value, what its n counts, the block's 5-95 % background, its p-value."""

    value: float | None = None
    n: int | None = None
    bg_lo: float | None = None
    bg_hi: float | None = None
    p: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ScoredPair(Mapping[str, Any]):
    """One scored candidate pair, as `hubscan flag` writes it to `pairs`; read-only once judged.

    Also a read-only mapping over its `pairs` columns, for readers that name columns (printouts, SQL-shaped tests).
    """

    a_repo_id: str = field(metadata=_arrow(pa.string()))
    a_revision: str = field(metadata=_arrow(pa.string()))
    b_repo_id: str = field(metadata=_arrow(pa.string()))
    b_revision: str = field(metadata=_arrow(pa.string()))
    # the comparability block
    hidden: int | None = field(default=None, metadata=_arrow(pa.int64()))
    # how the pair became a candidate: exhaustive, lsh, copy_of
    via: str | None = field(default=None, metadata=_arrow(pa.string()))
    # unknown architecture: the block is the matrices' shapes instead of a hidden size (null otherwise)
    layout: str | None = field(default=None, metadata=_arrow(pa.string()))
    # unknown architecture: which tensors were matched, how
    compared: str | None = field(default=None, metadata=_arrow(pa.string()))
    a_layers: int | None = field(default=None, metadata=_arrow(pa.int64()))
    b_layers: int | None = field(default=None, metadata=_arrow(pa.int64()))
    a_dtype: str | None = field(default=None, metadata=_arrow(pa.string()))
    b_dtype: str | None = field(default=None, metadata=_arrow(pa.string()))
    # one per entry of SIGNALS, in its order: stored as <name>, <name>_n, _bg_lo, _bg_hi, _p
    by_signal: tuple[SignalValue, ...] = field(default=())
    # median r of same-index tensors (1 - it: cast/drift)
    sketch_same: float | None = field(default=None, metadata=_arrow(pa.float64()))
    # fraction of same-index matrices bit-identical
    sketch_identical: float | None = field(default=None, metadata=_arrow(pa.float64()))
    # fraction of 1-D tensors bit-identical
    values_identical: float | None = field(default=None, metadata=_arrow(pa.float64()))
    # best match per shallow layer
    layer_map: list[LayerMatch] | None = field(default=None, metadata=_arrow(pa.list_(_layer_match)))
    # best col-norm layers per role
    col_norms_map: list[RoleMatch] | None = field(default=None, metadata=_arrow(pa.list_(_role_match)))
    # decisive signals available
    signals: int | None = field(default=None, metadata=_arrow(pa.int64()))
    # -log10 of the combined p-value
    score: float | None = field(default=None, metadata=_arrow(pa.float64()))
    p: float | None = field(default=None, metadata=_arrow(pa.float64()))
    # Benjamini-Hochberg across the run
    q: float | None = field(default=None, metadata=_arrow(pa.float64()))
    flagged: bool | None = field(default=None, metadata=_arrow(pa.bool_()))
    verdict: str | None = field(default=None, metadata=_arrow(pa.string()))
    reason: str | None = field(default=None, metadata=_arrow(pa.string()))
    # direct signals at chance while invariant ones agree (permuted), or the std profile bent while the
    # scale-free element-aligned signal is not (rescaled): a sign of deliberate obfuscation
    obfuscation: bool | None = field(default=None, metadata=_arrow(pa.bool_()))
    # structural kind from the layer/expert map, else null
    structure: str | None = field(default=None, metadata=_arrow(pa.string()))
    declared: bool | None = field(default=None, metadata=_arrow(pa.bool_()))
    declared_how: str | None = field(default=None, metadata=_arrow(pa.string()))
    # presumed-unrelated pairs behind the backgrounds
    background_pairs: int | None = field(default=None, metadata=_arrow(pa.int64()))
    flag_id: str | None = field(default=None, metadata=_arrow(pa.string()))
    q_level: float | None = field(default=None, metadata=_arrow(pa.float64()))
    flagged_at: datetime | None = field(default=None, metadata=_arrow(pa.timestamp("us", tz="UTC")))
    hubscan_version: str | None = field(default=None, metadata=_arrow(pa.string()))
    # licences along the edge (pipeline.comparison.licences): both cards' licences normalised to the
    # Hub's tags, the inferred parent side ("a", "b", "neither") and the licence finding
    a_license: str | None = field(default=None, metadata=_arrow(pa.string()))
    b_license: str | None = field(default=None, metadata=_arrow(pa.string()))
    parent: str | None = field(default=None, metadata=_arrow(pa.string()))
    parent_how: str | None = field(default=None, metadata=_arrow(pa.string()))
    # relicensed, attribution-missing, licence-unknown
    license_finding: str | None = field(default=None, metadata=_arrow(pa.string()))
    license_reason: str | None = field(default=None, metadata=_arrow(pa.string()))
    # which evidence set ``parent`` (pipeline/comparison/direction.py): declared, merge, structure,
    # precision, created, centre, unknown; and a declared relation the weights contradict
    parent_evidence: str | None = field(default=None, metadata=_arrow(pa.string()))
    declared_finding: str | None = field(default=None, metadata=_arrow(pa.string()))
    # an edge between a merge and one of its parents: that parent's weight and the method
    # (linear, slerp, ties, dare), fitted on the sampled values (pipeline/comparison/merge_fit.py)
    merge_weight: float | None = field(default=None, metadata=_arrow(pa.float64()))
    merge_method: str | None = field(default=None, metadata=_arrow(pa.string()))
    # unknown architectures: each matched matrix pair, shown by `hubscan compare` and never stored
    matches: list[dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        if len(self.by_signal) != len(SIGNALS):
            raise ValueError(f"{len(self.by_signal)} signal values for the {len(SIGNALS)} signals {SIGNALS}")

    @property
    def key(self) -> PairKey:
        """(a_repo_id, a_revision, b_repo_id, b_revision)."""
        return (self.a_repo_id, self.a_revision, self.b_repo_id, self.b_revision)

    def signal(self, name: str) -> SignalValue:
        """The values of one signal of the signal table."""
        return self.by_signal[SIGNALS.index(name)]

    def __getitem__(self, column: str) -> Any:
        """The value of one `pairs` column (or ``matches``), for readers that name columns."""
        return _GETTERS[column](self)

    def __iter__(self) -> Iterator[str]:
        return iter(_GETTERS)

    def __len__(self) -> int:
        return len(_GETTERS)


def _signal_getters() -> dict[str, Callable[[ScoredPair], Any]]:
    out: dict[str, Callable[[ScoredPair], Any]] = {}
    for i, name in enumerate(SIGNALS):
        for column, part in zip(signal_columns(name), ("value", "n", "bg_lo", "bg_hi", "p"), strict=True):
            out[column] = _signal_getter(i, part)
    return out


def _signal_getter(index: int, part: str) -> Callable[[ScoredPair], Any]:
    part_of = operator.attrgetter(part)
    return lambda r: part_of(r.by_signal[index])


def _schema() -> pa.Schema:
    """The `pairs` schema: the record's stored fields in order, each signal expanded to its five columns."""
    out: list[pa.Field] = []
    for f in fields(ScoredPair):
        if f.name == SIGNALS_FIELD:
            for name in SIGNALS:
                value, n, lo, hi, p = signal_columns(name)
                out += [pa.field(value, pa.float64()), pa.field(n, pa.int64()), pa.field(lo, pa.float64()),
                        pa.field(hi, pa.float64()), pa.field(p, pa.float64())]  # fmt: skip
        elif "arrow" in f.metadata:
            out.append(pa.field(f.name, f.metadata["arrow"]))
    return pa.schema(out)


PAIRS_SCHEMA = _schema()
_STORED = tuple(f.name for f in fields(ScoredPair) if "arrow" in f.metadata)
_GETTERS: dict[str, Callable[[ScoredPair], Any]] = {
    **{name: operator.attrgetter(name) for name in (*_STORED, "matches")},
    **_signal_getters(),
}


def pairs_table(records: Sequence[ScoredPair], stamp: Mapping[str, Any] | None = None) -> pa.Table:
    """The records as the `pairs` table; ``stamp`` sets a column to one value for every row (the run)."""
    stamp = stamp or {}
    # column by column: a copy of every row as a dict first doubled the driver's peak memory
    arrays = [
        pa.array(
            [stamp[f.name]] * len(records) if f.name in stamp else [_GETTERS[f.name](r) for r in records],
            f.type,
        )
        for f in PAIRS_SCHEMA
    ]
    return pa.Table.from_arrays(arrays, schema=PAIRS_SCHEMA)


def pairs_from_table(table: pa.Table) -> list[ScoredPair]:
    """The records a `pairs` table holds (as `pairs_table` wrote them)."""
    return [pair_from_row(row) for row in table.to_pylist()]


def pair_from_row(row: Mapping[str, Any]) -> ScoredPair:
    """The record of one `pairs` table row (as `pairs_table` wrote it)."""
    by_signal = tuple(SignalValue(*(row.get(c) for c in signal_columns(name))) for name in SIGNALS)
    values: dict[str, Any] = {name: row.get(name) for name in _STORED}
    return ScoredPair(by_signal=by_signal, **values)


def signal_values(row: WorkingRow) -> tuple[SignalValue, ...]:
    """Every signal's values out of a scorer's working row, in the signal table's order."""
    return tuple(SignalValue(*(row.value(c) for c in signal_columns(name))) for name in SIGNALS)
