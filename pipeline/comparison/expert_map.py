"""Expert maps: which dense MLP (or which slice of it, or which other expert) each MoE expert comes from.

Upcycling starts every expert from a dense MLP, either as a copy (Mixtral-style; same shape, so
the element-aligned sketches line up and decide) or as a fine-grained slice (Qwen-MoE-style:
expert e = rows e*n/k..(e+1)*n/k of up/gate and the same columns of down). Slices have other
shapes, so their sampled positions do not coincide with the dense ones; but down's sampled rows
are hidden dimensions, the same rows in both, so the expert's down column norms are a window of
the dense down's column norms, and the window's offset names the slice. Up/gate input-column
norms (over hidden dimensions) are reported beside it: they show the expert reads the hidden
basis of that layer, not which slice it is. MoE vs MoE: experts of matched layers are paired by
a linear assignment over their sketch r (expert permutations).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from hubscan.pipeline.comparison import chance
from hubscan.pipeline.comparison.std_profile import pearson
from hubscan.pipeline.keys import ModelKey

# Family-wise chance level over all experts of a pair for calling an expert matched.
EXPERT_ALPHA = 1e-3
# Floor on a matched expert's r: an upcycled expert keeps r >= 0.9 after light training, while
# per-dimension norms of unrelated MLPs of the same layer shape reach ~0.4 (shared architecture).
MIN_EXPERT_R = 0.5
MLP_ROLES = ("mlp_gate", "mlp_up", "mlp_down")
UPCYCLED = "upcycled-moe"
EXPERTS_PERMUTED = "expert-permuted"
SAME_EXPERTS = "same expert order"

Mlp = dict[str, Mapping[str, Any]]  # role -> tensors row
Model = dict[tuple[int, int], Mlp]  # (layer, expert; -1 = dense) -> MLP


@dataclass(frozen=True)
class ExpertMatch:
    """One expert of the MoE side and where it comes from in the other model."""

    layer: int
    expert: int
    other_layer: int | None
    other_expert: int | None  # None: the dense MLP
    slice_lo: int | None  # rows of the dense up/gate (columns of down) the expert was cut from
    slice_hi: int | None
    r: float | None
    alt_r: float | None  # the best r among the other candidates: how distinct the match is
    col_r: float | None  # up/gate input-column-norm r with the matched MLP
    evidence: str
    log10_p: float | None
    matched: bool


@dataclass(frozen=True)
class ExpertMap:
    """The expert map of a pair whose MLPs differ in structure."""

    moe_side: str  # "a" or "b" (for MoE vs MoE: "a")
    matches: tuple[ExpertMatch, ...]
    structure: str | None  # UPCYCLED, EXPERTS_PERMUTED, SAME_EXPERTS or None
    summary: str
    how: str = ""  # UPCYCLED: "expert copies" or "fine-grained slices"


def models_from_rows(rows: Iterable[Mapping[str, Any]]) -> dict[ModelKey, Model]:
    """list_mlp_tensors.sql rows as {(repo_id, revision): {(layer, expert): {role: row}}}."""
    out: dict[ModelKey, Model] = {}
    for r in rows:
        key = (r["repo_id"], r["revision"])
        slot = (int(r["layer"]), -1 if r["expert"] is None else int(r["expert"]))
        out.setdefault(key, {}).setdefault(slot, {})[r["role"]] = r
    return out


def is_moe(model: Model) -> bool:
    """True when the model has routed experts."""
    return any(e >= 0 for _, e in model)


def expert_map(a: Model, b: Model, layer_pairs: Iterable[tuple[int, int]] | None = None) -> ExpertMap | None:
    """MoE vs dense or MoE vs MoE; None when neither side has experts."""
    if not (is_moe(a) or is_moe(b)):
        return None
    if is_moe(a) and is_moe(b):
        return _moe_vs_moe(a, b, layer_pairs)
    moe, dense, side = (a, b, "a") if is_moe(a) else (b, a, "b")
    return _moe_vs_dense(moe, dense, side)


def _pearson(x: Any, y: Any) -> float | None:
    u, v = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(u) != len(v) or len(u) < chance.MIN_VALUES:
        return None
    return pearson(u, v)


def _sketch_r(x: Mlp, y: Mlp) -> tuple[float | None, int, int]:
    """Median element-aligned r over the MLP roles whose shapes agree: (r, roles, values)."""
    rs, n = [], 0
    for role in MLP_ROLES:
        if role in x and role in y and list(x[role]["shape"]) == list(y[role]["shape"]):
            r = _pearson(x[role]["sketch"], y[role]["sketch"])
            if r is not None:
                rs.append(r)
                n = len(x[role]["sketch"])
    return (float(np.median(rs)) if rs else None), len(rs), n


def _col_r(x: Mlp, y: Mlp) -> float | None:
    """Median r of the up/gate input-column norms (one value per hidden dimension)."""
    rs = [_pearson(x[r]["col_norms"], y[r]["col_norms"]) for r in ("mlp_up", "mlp_gate") if r in x and r in y]
    got = [r for r in rs if r is not None]
    return float(np.median(got)) if got else None


def _slices(expert: Mlp, dense: Mlp) -> list[tuple[int, int, float]]:
    """(lo, hi, r) for each aligned window of the dense down's column norms the expert's could be."""
    if "mlp_down" not in expert or "mlp_down" not in dense:
        return []
    e, d = expert["mlp_down"], dense["mlp_down"]
    if list(e["row_idx"] or []) != list(d["row_idx"] or []):
        return []  # different hidden rows sampled: the norms are not of the same rows
    w, n = len(e["col_norms"]), len(d["col_norms"])
    if w == 0 or n <= w or n % w:
        return []
    out = []
    for lo in range(0, n, w):
        r = _pearson(e["col_norms"], d["col_norms"][lo : lo + w])
        if r is not None:
            out.append((lo, lo + w, r))
    return out


def _moe_vs_dense(moe: Model, dense: Model, side: str) -> ExpertMap:
    experts = sorted(k for k in moe if k[1] >= 0)
    dense_layers = sorted(k for k in dense if k[1] < 0)
    cut = math.log(EXPERT_ALPHA / max(1, len(experts)))
    matches = []
    for layer, e in experts:
        cands: list[
            tuple[float, float, int, int | None, int | None, str]
        ] = []  # log p, r, layer, lo, hi, how
        for dl in dense_layers:
            r, roles, n = _sketch_r(moe[(layer, e)], dense[dl])
            if r is not None:
                cands.append(
                    (chance.prior_log_p("sketch", r, n, 1, roles, 1), r, dl[0], None, None, "sketch")
                )
            for s_lo, s_hi, rs in _slices(moe[(layer, e)], dense[dl]):
                cands.append(
                    (chance.log_p_single(rs, s_hi - s_lo), rs, dl[0], s_lo, s_hi, "down col-norm window")
                )
        if not cands:
            matches.append(
                ExpertMatch(layer, e, None, None, None, None, None, None, None, "none", None, False)
            )
            continue
        cands.sort(key=lambda c: c[0])  # most significant first
        lp, r, dl_, lo, hi, how = cands[0]
        alt = max((c[1] for c in cands[1:]), default=None)
        lp_k = chance.log_p_max(lp, len(cands))
        ok = lp_k < cut and r >= MIN_EXPERT_R
        col = _col_r(moe[(layer, e)], dense[(dl_, -1)])
        matches.append(ExpertMatch(layer, e, dl_, None, lo, hi, r, alt, col, how, lp_k / math.log(10.0), ok))
    return _dense_summary(side, matches)


def _dense_summary(side: str, matches: list[ExpertMatch]) -> ExpertMap:
    got = [m for m in matches if m.matched]
    moe, other = side.upper(), "B" if side == "a" else "A"
    if not got:
        return ExpertMap(side, tuple(matches), None, "no expert beyond chance: no expert map")
    sliced = [m for m in got if m.slice_lo is not None]
    same_layer = sum(m.layer == m.other_layer for m in got)
    if len(sliced) > len(got) / 2:
        width = sliced[0].slice_hi - sliced[0].slice_lo  # type: ignore[operator]
        in_order = sum(m.slice_lo == m.expert * width for m in sliced)
        rmin = min(m.r or 0.0 for m in sliced)
        text = (f"{moe} experts are fine-grained slices of {other}'s dense MLPs: {len(sliced)} of {len(matches)} "
                f"matched by down col-norm windows of {width} (r >= {rmin:.3f}), {in_order} at slice = expert "
                f"index, {same_layer} in the same layer")  # fmt: skip
        return ExpertMap(side, tuple(matches), UPCYCLED, text, "fine-grained slices")
    rmin = min(m.r or 0.0 for m in got)
    text = (f"{moe} experts are copies of {other}'s dense MLPs: {len(got)} of {len(matches)} matched by "
            f"element-aligned sketches (r >= {rmin:.4f}), {same_layer} in the same layer")  # fmt: skip
    return ExpertMap(side, tuple(matches), UPCYCLED, text, "expert copies")


def _moe_vs_moe(a: Model, b: Model, layer_pairs: Iterable[tuple[int, int]] | None) -> ExpertMap:
    layers_a = sorted({k[0] for k in a})
    pairs = (
        list(layer_pairs)
        if layer_pairs is not None
        else [(la, la) for la in layers_a if any(k[0] == la for k in b)]
    )
    n_exp = sum(1 for k in a if k[1] >= 0)
    cut = math.log(EXPERT_ALPHA / max(1, n_exp))
    matches: list[ExpertMatch] = []
    for la, lb in pairs:
        ea = sorted(e for (layer, e) in a if layer == la and e >= 0)
        eb = sorted(e for (layer, e) in b if layer == lb and e >= 0)
        if not ea or not eb:
            continue
        cells = [[_sketch_r(a[(la, x)], b[(lb, y)]) for y in eb] for x in ea]
        r = np.array([[c[0] if c[0] is not None else -1.0 for c in row] for row in cells])
        rows, cols = linear_sum_assignment(-np.arctanh(np.clip(r, -0.999999, 0.999999)))
        for i, j in zip(rows, cols, strict=True):
            rr, roles, n = cells[i][j]
            others = [r[i, k] for k in range(len(eb)) if k != j]
            if rr is None:
                matches.append(
                    ExpertMatch(la, ea[i], lb, eb[j], None, None, None, None, None, "none", None, False)
                )
                continue
            lp = chance.log_p_max(chance.prior_log_p("sketch", rr, n, 1, roles, 1), len(eb))
            ok = lp < cut and rr >= MIN_EXPERT_R
            # a copy-upcycled MoE matches every expert to every expert; the match is its own only when
            # it stands out from the row
            matches.append(ExpertMatch(la, ea[i], lb, eb[j], None, None, rr, max(others, default=None),
                                       _col_r(a[(la, ea[i])], b[(lb, eb[j])]), "sketch", lp / math.log(10.0), ok))  # fmt: skip
    got = [m for m in matches if m.matched]
    if not got:
        return ExpertMap("a", tuple(matches), None, "no expert beyond chance: no expert map")
    moved = [m for m in got if m.other_expert != m.expert]
    if moved:
        text = (
            f"experts permuted: {len(moved)} of {len(got)} matched experts sit in another slot "
            f"(e.g. A layer {moved[0].layer} expert {moved[0].expert} -> B expert {moved[0].other_expert})"
        )
        return ExpertMap("a", tuple(matches), EXPERTS_PERMUTED, text)
    return ExpertMap("a", tuple(matches), SAME_EXPERTS, f"every expert in the same slot ({len(got)} matched)")
