"""Score candidate pairs: complete their working rows, calibrate each signal against its block, combine, flag.

Pure python over working rows (pipeline.comparison.working_row): the DuckDB side lives in
pipeline/flagging/engine.py, the passes over a hub's rows in pipeline/flagging/flag_rows.py, the verdict in
judge.py, so the same code scores a whole sweep and the single pair of ``hubscan compare``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hubscan.pipeline.comparison import chance
from hubscan.pipeline.comparison.calibrate import (
    BACKGROUND_Z,
    RELATED_Z,
    Background,
    acat,
    fit_data_only,
    fit_shrunk,
    log_tail,
    with_range,
)
from hubscan.pipeline.comparison.candidates import CandidatePair
from hubscan.pipeline.comparison.lineage import declared
from hubscan.pipeline.comparison.signals import DECISIVE, signal_columns
from hubscan.pipeline.comparison.std_profile import std_profile_r_z, zscored
from hubscan.pipeline.comparison.working_row import WorkingRow
from hubscan.pipeline.keys import ModelKey, PairKey

# The false discovery rate flags are controlled at across one run.
DEFAULT_Q = 0.01
# Stored p- and q-values stop here (a double cannot hold a copy's tail probability); the ranking
# lives in ``score`` = -log10 p, computed in log space and never capped (printed as "< 1e-300").
MIN_P = 1e-300
# Candidates that were not chosen for their similarity: a random sample of their block's pairs.
UNSELECTED_VIA = frozenset({"exhaustive", "background"})
# A block with at least this many unselected pairs fits its backgrounds on them alone; LSH pairs
# were chosen for similar per-dimension vectors and would widen those backgrounds.
MIN_UNSELECTED = 200


@dataclass(frozen=True)
class ModelInfo:
    """What scoring needs of a model besides its tensors."""

    dtype: str | None = None
    base_models: tuple[str, ...] = ()
    copy_of: str | None = None  # "repo@revision"
    vocab: int | None = None  # embedding rows: a copy whose vocabulary differs is named as such


@dataclass
class BatchSignals:
    """One batch's working rows (a row per candidate, its signal columns filled by the compute_*.sql files)
    and the std profiles of its models (list_std_profiles.sql): what a Ray task sends back."""

    rows: dict[PairKey, WorkingRow] = field(default_factory=dict)
    profiles: dict[ModelKey, dict[str, list[float]]] = field(default_factory=dict)

    @classmethod
    def of(cls, candidates: Iterable[CandidatePair]) -> BatchSignals:
        """Empty rows for these candidates, in their order (the first of a repeated pair kept)."""
        out = cls()
        for c in candidates:
            out.rows.setdefault(c.key, WorkingRow(c))
        return out

    def add_signal_rows(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """One signal query's rows into the working rows of their pairs (non-null values; a later query wins).

        Raises:
            QueryError: a row has a column the working row has no field for.
        """
        for r in rows:
            row = self.rows.get((r["a_repo_id"], r["a_revision"], r["b_repo_id"], r["b_revision"]))
            if row is not None:  # the queries read only this batch's candidates
                row.take(r)


def declared_bases(models: Mapping[ModelKey, ModelInfo]) -> dict[str, tuple[str, ...]]:
    """Each repo's declared base models (its card's base_model), for `set_flags`."""
    return {k[0]: m.base_models for k, m in models.items()}


def set_flags(
    rows: Iterable[WorkingRow],
    log_qs: Iterable[float],
    q_level: float,
    bases: Mapping[str, tuple[str, ...]],
) -> None:
    """Each row's q-value (from its BH-adjusted log q), flag, and whether a model card declares the link."""
    for row, log_q in zip(rows, log_qs, strict=True):
        q = _p_of(log_q)
        row.q = q
        row.q_level = q_level
        row.flagged = bool(row.copy_link or q <= q_level)
        row.declared, row.declared_how = declared(row.pair.a_repo_id, row.pair.b_repo_id, bases)


def copy_links(models: Mapping[ModelKey, ModelInfo]) -> set[PairKey]:
    """The pairs of stored models whose files are byte-identical (a model's copy_of names the other)."""
    links = set()
    for key, info in models.items():
        if info.copy_of and "@" in info.copy_of:
            repo, rev = info.copy_of.rsplit("@", 1)
            other = (repo, rev)
            if other in models:
                a, b = sorted([key, other])
                links.add((a[0], a[1], b[0], b[1]))
    return links


def copy_pairs(cand: Iterable[CandidatePair], links: Collection[PairKey]) -> list[CandidatePair]:
    """Candidates for the byte-identical copies (``links``, from `copy_links`) no candidate query
    proposed, in the block of their model."""
    have = set()
    block_of: dict[ModelKey, tuple[int | None, str | None]] = {}  # (hidden, layout) of every candidate model
    for c in cand:
        have.add(c.key)
        block_of[c.a] = block_of[c.b] = (c.hidden, c.layout)
    out = []
    for pk in sorted(set(links) - have):
        hidden, layout = block_of.get(pk[:2]) or block_of.get(pk[2:]) or (None, None)
        out.append(CandidatePair.of(pk, hidden, "copy_of", layout))
    return out


def merge_rows(
    batch: BatchSignals, models: Mapping[ModelKey, ModelInfo], links: Collection[PairKey]
) -> list[WorkingRow]:
    """A batch's working rows completed: the byte-identical copies marked, the models' dtypes and
    vocabularies, the std profiles compared, and each signal's n as the pairs table counts it."""
    rows = list(batch.rows.values())
    batch.rows.clear()  # the list holds them now
    profiles: dict[ModelKey, dict[str, np.ndarray]] = {}
    while batch.profiles:  # consumed one model at a time, so raw and z-scored lists never both whole
        key, roles = batch.profiles.popitem()
        profiles[key] = zscored(roles)
    for row in rows:
        ka, kb = row.pair.a, row.pair.b
        ma, mb = models.get(ka, ModelInfo()), models.get(kb, ModelInfo())
        row.copy_link = row.key in links
        row.a_dtype, row.b_dtype = ma.dtype, mb.dtype
        row.a_vocab, row.b_vocab = ma.vocab, mb.vocab
        row.std_profile, row.std_profile_n = std_profile_r_z(profiles.get(ka, {}), profiles.get(kb, {}))
        # SQL gives vector widths as *_n; the pairs table counts what its n_counts says
        row.gain_width, row.dim_std_width, row.col_norms_width = row.gain_n, row.dim_std_n, row.col_norms_n
        row.gain_n, row.dim_std_n = _int(row.gain_width), _int(row.dim_std_width)
        row.col_norms_n = _int(row.col_norms_roles)
        row.tokens_n = row.tokens_shared
        row.sorted_n = _int(row.sorted_vectors)
    return rows


def chance_z(row: WorkingRow) -> dict[str, float]:
    """Each decisive signal's chance-level z (the prior), before any data background; counts them in the row."""
    zc = {}
    for s in DECISIVE:
        params = _prior_params(s, row)
        value = row.value(s)
        if value is None or params is None:
            continue
        zc[s] = chance.z_from_log_p(chance.prior_log_p(s, float(value), *params))
    row.signals = len(zc)
    return zc


def _prior_params(signal: str, row: WorkingRow) -> tuple[float, int, int, int] | None:
    """(n, tries, roles, layers) of a signal's chance null; None when the signal has too few values."""
    if signal == "sketch":
        n, roles, layers = row.sketch_len, row.sketch_roles, row.sketch_layers
        deep = max(row.a_layers or 1, row.b_layers or 1)
        return None if n is None else (float(n), int(deep), _int(roles) or 1, _int(layers) or 1)
    if signal == "col_norms":
        return _maybe(row.col_norms_width, _int(row.col_norms_tries), _int(row.col_norms_roles))
    if signal == "sorted":
        width, vectors = row.sorted_width, _int(row.sorted_vectors)
        return None if width is None or not vectors else (float(width), 1, vectors, 1)
    if signal == "tokens":
        # rows of one model share a mean direction: count one row's width, not every value
        return _maybe(row.tokens_cols, 1, 1)
    return _maybe(row.value(f"{signal}_width"), 1, 1)


def _maybe(n: float | None, tries: int | None, roles: int | None) -> tuple[float, int, int, int] | None:
    if n is None or float(n) < chance.MIN_VALUES:
        return None
    return float(n), tries or 1, roles or 1, 1


@dataclass(frozen=True, slots=True)
class FitSample:
    """What fitting a block's backgrounds needs of one pair: ~0.3 kB, a fraction of its working row, so
    `hubscan flag` keeps the samples it fits on while the rows themselves wait on disk."""

    key: PairKey
    block: int | str
    unselected: bool  # a random sample of its block (not chosen for similarity), or known unrelated
    known: bool  # given as unrelated by the user
    copy_link: bool
    z: tuple[float | None, ...]  # chance z of each DECISIVE signal, None where not computed
    values: tuple[Any, ...]  # each DECISIVE signal's value, for the background ranges
    std_profile: float | None


def fit_sample(row: WorkingRow, zc: Mapping[str, float], known: Collection[frozenset[str]]) -> FitSample:
    """A scored row's sample for `fit_backgrounds`."""
    is_known = frozenset((row.pair.a_repo_id, row.pair.b_repo_id)) in known
    return FitSample(
        key=row.key,
        block=row.pair.block,
        unselected=row.pair.via in UNSELECTED_VIA or is_known,
        known=is_known,
        copy_link=row.copy_link,
        z=tuple(zc.get(s) for s in DECISIVE),
        values=tuple(row.value(s) for s in DECISIVE),
        std_profile=row.std_profile,
    )


def fit_backgrounds(samples: Sequence[FitSample]) -> dict[tuple[int | str, str], Background]:
    """Per block and signal, the empirical null from pairs no signal puts beyond RELATED_Z.

    The samples are taken in pair-key order, so a fit does not depend on the order pairs were scored in
    (a flag run scores them unit by unit).
    """
    blocks: dict[int | str, list[FitSample]] = defaultdict(list)
    for sample in sorted(samples, key=lambda x: x.key):
        blocks[sample.block].append(sample)
    fitted: dict[tuple[int | str, str], Background] = {}
    for hidden, members in blocks.items():
        unselected = [m for m in members if m.unselected]
        if len(unselected) >= MIN_UNSELECTED:
            members = unselected
        unrelated = [
            m for m in members
            if not m.copy_link and (m.known or all(z < RELATED_Z for z in m.z if z is not None))
        ]  # fmt: skip
        for i, s in enumerate(DECISIVE):
            seen = [(z, m.values[i]) for m in unrelated if (z := m.z[i]) is not None]
            fitted[(hidden, s)] = with_range(fit_shrunk([z for z, _ in seen]), [v for _, v in seen])
        profiles = [m.std_profile for m in unrelated if m.std_profile is not None]
        data = fit_data_only([chance.fisher_z(v) for v in profiles])
        if data is not None:
            fitted[(hidden, "std_profile")] = with_range(data, profiles)
    return fitted


def calibrate(
    row: WorkingRow, zc: Mapping[str, float], fitted: Mapping[tuple[int | str, str], Background]
) -> float:
    """Per-signal p-values and background ranges against the block's null; combined score and p (its log returned)."""
    hidden = row.pair.block
    log_ps: list[float] = []
    row.background_pairs = 0
    for s in DECISIVE:
        _, _, lo, hi, p = signal_columns(s)
        bg = fitted.get((hidden, s))
        params = _prior_params(s, row)
        if bg is None or params is None:
            continue
        row.background_pairs = max(row.background_pairs, bg.pairs)
        if bg.lo is not None and bg.hi is not None:
            setattr(row, lo, bg.lo)
            setattr(row, hi, bg.hi)
        else:
            setattr(row, lo, chance.value_at_z(s, bg.delta - BACKGROUND_Z * bg.sigma, *params))
            setattr(row, hi, chance.value_at_z(s, bg.delta + BACKGROUND_Z * bg.sigma, *params))
        if s in zc:
            lp = log_tail(zc[s], bg)
            setattr(row, p, _p_of(lp))
            log_ps.append(lp)
    std_bg = fitted.get((hidden, "std_profile"))
    if std_bg is not None:
        row.std_profile_bg_lo = std_bg.lo
        row.std_profile_bg_hi = std_bg.hi
        if row.std_profile is not None:
            lp = log_tail(chance.fisher_z(row.std_profile), std_bg)
            row.std_profile_p = _p_of(lp)
    # byte-identical files (copy_of) have p = 0 exactly: score inf
    log_p = -math.inf if row.copy_link else acat(log_ps)
    row.p = _p_of(log_p)
    row.score = -log_p / math.log(10.0) if log_p < 0.0 else 0.0
    return log_p


def _p_of(log_p: float) -> float:
    """A log p as a stored p-value, floored at MIN_P."""
    return max(MIN_P, math.exp(log_p)) if log_p > -math.inf else MIN_P


def _int(v: float | None) -> int | None:
    return None if v is None else round(float(v))
