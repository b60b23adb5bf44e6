"""Which rows of a tensor to read: a pure function of seed, role and shape.

Two models with tensors of the same role and shape sample the same rows, so their
sampled values are element-aligned and can be correlated directly.

Matrices are read at both ends (a head block and a tail block of rows): tensors of a layer
sit next to each other in a file, so the tail of one matrix, the small tensors after it and
the head of the next come back in one ranged request. Embedding tables are read in a few
blocks at seeded positions instead, because their first rows are special tokens.
"""

from __future__ import annotations

import hashlib

import numpy as np

from hubscan.pipeline.config import Settings
from hubscan.pipeline.readers.records import RowBlock, TensorHeader

EMBED_ROLES = frozenset({"embed", "lm_head"})


def plan_rows(
    header: TensorHeader, role: str, settings: Settings, tokens: list[str] | None = None
) -> tuple[RowBlock, ...]:
    """Row blocks to read for one tensor; every row when exact mode is on or the tensor is small."""
    n = header.n_rows
    if settings.exact or len(header.shape) < 2 or header.nbytes <= settings.whole_tensor_bytes:
        return (RowBlock(0, n),)
    if role in EMBED_ROLES:
        spread = _seeded_blocks(
            n, settings.embed_rows_per_block, settings.embed_blocks, settings.seed, role, header.shape
        )
        return _merge_blocks(spread + token_rows(tokens or [], n, settings))
    k, count = settings.rows_per_block, max(2, settings.matrix_blocks)
    if n <= count * k:
        return (RowBlock(0, n),)
    ends = (RowBlock(0, k), RowBlock(n - k, k))
    if count == 2:
        return ends
    # Interior blocks spread the sample over attention heads and neurons, whose rows differ
    # in scale: more blocks buy std fidelity at one request each (see bench/reading.py).
    inner = _seeded_blocks(n - 2 * k, k, count - 2, settings.seed, role, header.shape)
    return (ends[0], *(RowBlock(b.first + k, b.count) for b in inner), ends[1])


def _seeded_blocks(
    n: int, rows: int, blocks: int, seed: int, role: str, shape: tuple[int, ...]
) -> tuple[RowBlock, ...]:
    """``blocks`` non-overlapping blocks of ``rows`` rows at positions drawn from (seed, role, shape)."""
    if n <= rows * blocks:
        return (RowBlock(0, n),)
    rng = np.random.default_rng(_stream_seed(seed, role, shape))
    # Split the table into equal strata and place one block in each: spread over the
    # vocabulary (ids cluster by script and frequency) and never overlapping.
    stratum = n // blocks
    starts = [i * stratum + int(rng.integers(0, stratum - rows + 1)) for i in range(blocks)]
    return tuple(RowBlock(s, rows) for s in starts)


def _stream_seed(seed: int, role: str, shape: tuple[int, ...]) -> int:
    """A stable 64-bit seed; Python's hash() is salted per process, so it will not do."""
    digest = hashlib.sha256(f"{seed}|{role}|{'x'.join(map(str, shape))}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def row_indices(blocks: tuple[RowBlock, ...]) -> np.ndarray:
    """All row indices covered by the blocks, ascending."""
    return np.concatenate([np.arange(b.first, b.first + b.count, dtype=np.int64) for b in blocks])


def token_rows(tokens: list[str], n_rows: int, settings: Settings) -> tuple[RowBlock, ...]:
    """Rows whose token string hashes lowest: the same tokens in every vocabulary that has them."""
    if not tokens:
        return ()
    vocab = tokens[:n_rows]
    # A threshold on the hash, not a count, so two vocabularies pick the same shared tokens.
    threshold = max(settings.token_sample_fraction, settings.min_token_rows / max(1, len(vocab)))
    cut = int(threshold * 2**64)
    return tuple(RowBlock(i, 1) for i, tok in enumerate(vocab) if _token_hash(settings.seed, tok) < cut)


def _token_hash(seed: int, token: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{seed}|{token}".encode(), digest_size=8).digest(), "little")


def _merge_blocks(blocks: tuple[RowBlock, ...]) -> tuple[RowBlock, ...]:
    """Sorted, with overlapping or touching blocks joined."""
    merged: list[RowBlock] = []
    for b in sorted(blocks, key=lambda b: b.first):
        if merged and b.first <= merged[-1].first + merged[-1].count:
            last = merged[-1]
            end = max(last.first + last.count, b.first + b.count)
            merged[-1] = RowBlock(last.first, end - last.first)
        else:
            merged.append(b)
    return tuple(merged)
