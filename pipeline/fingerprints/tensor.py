"""One tensor's fingerprint: moments, an element-aligned sketch and per-hidden-dimension statistics.

Why several signals: on real weights the per-layer std profile alone rates an unrelated
pair above a related one (all-MiniLM-L6 vs e5-small 0.944, vs its own cousin 0.832);
element-aligned values expose copies and fine-tunes, per-dimension statistics expose
cousins whose layer matrices are at chance.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Annotated

import numpy as np
import pyarrow as pa

from hubscan.pipeline.config import Settings
from hubscan.pipeline.errors import FingerprintError
from hubscan.pipeline.fingerprints.arrow_record import ArrowRecord
from hubscan.pipeline.fingerprints.stats import moments, nonfinite_count
from hubscan.pipeline.keys import ModelKey
from hubscan.pipeline.readers.records import TensorRows
from hubscan.pipeline.readers.sampling import EMBED_ROLES, plan_rows, row_indices, token_rows
from hubscan.pipeline.roles import TensorRole

# Columns of each token row kept for aligning embeddings by token string.
TOKEN_VECTOR_COLS = 256


_f32_list = pa.list_(pa.float32())
_i64_list = pa.list_(pa.int64())


@dataclass(frozen=True, kw_only=True)
class TensorFingerprint(ArrowRecord):
    """A row of the ``tensors`` table; its fields, in order, are the table's columns."""

    repo_id: Annotated[str, pa.string()]
    revision: Annotated[str, pa.string()]
    file: Annotated[str, pa.string()]
    name: Annotated[str, pa.string()]
    role: Annotated[str, pa.string()]
    layer: Annotated[int | None, pa.int64()]
    expert: Annotated[int | None, pa.int64()]
    kind: Annotated[str, pa.string()]
    transposed: Annotated[bool, pa.bool_()]
    dtype: Annotated[str, pa.string()]
    shape: Annotated[list[int], _i64_list]
    numel: Annotated[int, pa.int64()]
    sampled: Annotated[bool, pa.bool_()]
    rows_read: Annotated[int, pa.int64()]
    mean: Annotated[float, pa.float64()]
    std: Annotated[float, pa.float64()]
    rms: Annotated[float, pa.float64()]
    absmax: Annotated[float, pa.float64()]
    kurtosis: Annotated[float, pa.float64()]
    sketch: Annotated[list[float], _f32_list]
    row_idx: Annotated[list[int], _i64_list]
    row_norms: Annotated[list[float], _f32_list]
    col_norms: Annotated[list[float], _f32_list]
    dim_std: Annotated[list[float], _f32_list]
    values: Annotated[list[float], _f32_list]
    tokens: Annotated[list[str], pa.list_(pa.string())]
    token_vectors: Annotated[list[float], _f32_list]


def fingerprint_tensor(
    key: ModelKey, rows: TensorRows, role: TensorRole, settings: Settings, tokens: list[str] | None = None
) -> TensorFingerprint:
    """Fingerprint the rows read from one tensor; pure numpy, no I/O.

    Raises:
        FingerprintError: NaN or infinite values among the rows read.
    """
    h = rows.header
    bad = nonfinite_count(rows.values)
    if bad:
        raise FingerprintError("", None, h.file, f"tensor {h.name}: {bad} NaN/inf values among the rows read")
    m = moments(rows.values)
    is_vector = len(h.shape) < 2
    positional = _positional(rows, role.role, settings)
    token_names, token_vectors = _token_rows(rows, role.role, settings, tokens)
    return TensorFingerprint(
        repo_id=key[0],
        revision=key[1],
        file=h.file,
        name=h.name,
        role=role.role,
        layer=role.layer,
        expert=role.expert,
        kind=role.kind,
        transposed=role.transposed,
        dtype=h.dtype,
        shape=list(h.shape),
        numel=h.numel,
        sampled=rows.sampled,
        rows_read=len(rows.rows),
        mean=m.mean,
        std=m.std,
        rms=m.rms,
        absmax=m.absmax,
        kurtosis=m.kurtosis,
        sketch=_sketch(positional, h.shape, settings),
        row_idx=[] if is_vector else rows.rows.tolist(),
        row_norms=[] if is_vector else np.linalg.norm(rows.values, axis=1).tolist(),
        col_norms=[] if is_vector else _col_norms(rows).tolist(),
        dim_std=rows.values.std(axis=0).tolist() if role.role in EMBED_ROLES else [],
        values=rows.values.ravel().tolist() if is_vector else [],
        tokens=token_names,
        token_vectors=token_vectors,
    )


def _positional(rows: TensorRows, role: str, settings: Settings) -> np.ndarray:
    """The rows chosen by position alone (not by token), so same-shape models align element-wise."""
    wanted = row_indices(plan_rows(rows.header, role, settings))
    keep = np.isin(rows.rows, wanted)
    return rows.values[keep]


def _sketch(values: np.ndarray, shape: tuple[int, ...], settings: Settings) -> list[float]:
    """Values at seeded columns of the positional rows: aligned across same-shape tensors."""
    n_rows, n_cols = values.shape
    if n_rows * n_cols <= settings.sketch_max_values:
        return values.ravel().tolist()
    per_row = max(1, settings.sketch_max_values // max(1, n_rows))
    cols = _seeded_columns(n_cols, per_row, settings.seed, shape)
    take = values[:, cols].ravel()
    return take[: settings.sketch_max_values].tolist()


def _col_norms(rows: TensorRows) -> np.ndarray:
    """Column norms of the whole matrix, estimated from the sampled rows."""
    scale = rows.header.n_rows / max(1, len(rows.rows))
    return np.sqrt((rows.values.astype(np.float64) ** 2).sum(axis=0) * scale).astype(np.float32)


def _token_rows(
    rows: TensorRows, role: str, settings: Settings, tokens: list[str] | None
) -> tuple[list[str], list[float]]:
    """Token strings of the token-selected rows and those rows at seeded columns."""
    if role not in EMBED_ROLES or not tokens:
        return [], []
    # Only the rows chosen by token hash: the positional blocks are read for other signals,
    # and in exact mode every row was read.
    blocks = token_rows(tokens, rows.header.n_rows, settings)
    if not blocks:
        return [], []
    keep = np.isin(rows.rows, row_indices(blocks)) & (rows.rows < len(tokens))
    cols = _seeded_columns(rows.header.n_cols, TOKEN_VECTOR_COLS, settings.seed, rows.header.shape[-1:])
    return [tokens[i] for i in rows.rows[keep]], rows.values[keep][:, cols].ravel().tolist()


def _seeded_columns(n_cols: int, count: int, seed: int, shape: tuple[int, ...]) -> np.ndarray:
    """``count`` sorted column indices drawn from (seed, shape): the same for every same-shape tensor."""
    if count >= n_cols:
        return np.arange(n_cols)
    digest = hashlib.sha256(f"cols|{seed}|{'x'.join(map(str, shape))}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    return np.sort(rng.choice(n_cols, size=count, replace=False))
