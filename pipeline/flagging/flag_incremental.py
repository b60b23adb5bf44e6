"""`hubscan flag --incremental`: score the edges of the models added since the last flag run, keep the rest.

A model is placed when the last run's pairs name it or it was fingerprinted before that run; any other
stored model revision is new (a changed revision is a new key, so only then is a placed model rescored;
`fingerprint --force` also makes it new). The run scores, per block holding a new model:
- a block scored through lineage edges (more than EXHAUSTIVE_MAX models): the edges naming a new model
  (each side's nearest screened pairs and the spanning forest, computed over the whole block as in a full
  run) and the block's background sample, drawn again for the block's new size;
- a smaller block: every pair, as a full run would (at most EXHAUSTIVE_MAX^2 / 2 pairs).
The last run's other rows stay as they were, flag id and all; rows naming a model no longer stored are
dropped. Each run controls the false discovery rate at its --q over the blocks it scored (every pair
of those blocks, as in a full run); rows kept from earlier runs keep the control of the run that wrote
them. A full `hubscan flag` rescores everything at once.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from hubscan.pipeline.comparison.candidates import CandidatePair, block_of
from hubscan.pipeline.keys import ModelKey, PairKey
from hubscan.pipeline.storage.parquet import Store

# Candidates of a touched block rescored whatever models they name: the random and the whole-block ones.
RESCORED_VIA = frozenset({"exhaustive", "background"})


def new_models(store: Store, previous: pa.Table | None) -> set[ModelKey] | None:
    """The stored model revisions the last flag run did not place; None when there is no last run."""
    if previous is None or previous.num_rows == 0:
        return None
    ran_at: datetime = pc.min(previous["flagged_at"]).as_py()
    placed = set(zip(previous["a_repo_id"].to_pylist(), previous["a_revision"].to_pylist(), strict=True))
    placed |= set(zip(previous["b_repo_id"].to_pylist(), previous["b_revision"].to_pylist(), strict=True))
    models = store.dataset("models").to_table(columns=["repo_id", "revision", "fingerprinted_at"]).to_pylist()
    return {
        (m["repo_id"], m["revision"])
        for m in models
        if (m["repo_id"], m["revision"]) not in placed
        and (m["fingerprinted_at"] is None or m["fingerprinted_at"] >= ran_at)
    }


def focus(pairs: list[CandidatePair], new: Collection[ModelKey]) -> list[CandidatePair]:
    """The candidates an incremental run scores: in each block naming a new model, the pairs naming one
    and the whole-block or random ones (see the module docstring)."""
    touched = {p.block for p in pairs if _names(p, new)}
    return [p for p in pairs if p.block in touched and (p.via in RESCORED_VIA or _names(p, new))]


def merged(previous: pa.Table, scored: pa.Table, stored: Iterable[ModelKey]) -> pa.Table:
    """The last run's rows not rescored now (and naming stored models only), then this run's rows."""
    keep_models = set(stored)
    rescored = set(_keys(scored))
    touched = _blocks(scored)
    drop = [
        k in rescored or (block, via) in touched or k[:2] not in keep_models or k[2:] not in keep_models
        for k, block, via in zip(
            _keys(previous), _block_column(previous), previous["via"].to_pylist(), strict=True
        )
    ]
    kept = previous.filter(pc.invert(pa.array(drop, pa.bool_())))
    return pa.concat_tables([kept, scored.cast(kept.schema)])


def merged_maps(previous: pa.Table, scored_pairs: pa.Table, maps: pa.Table) -> pa.Table:
    """The last run's layer-map rows of the pairs not rescored now, then this run's."""
    rescored = set(_keys(scored_pairs))
    drop = [k in rescored for k in _keys(previous)]
    return pa.concat_tables(
        [previous.filter(pc.invert(pa.array(drop, pa.bool_()))), maps.cast(previous.schema)]
    )


def _names(pair: CandidatePair, new: Collection[ModelKey]) -> bool:
    return pair.a in new or pair.b in new


def _keys(table: pa.Table) -> list[PairKey]:
    cols = [table[c].to_pylist() for c in ("a_repo_id", "a_revision", "b_repo_id", "b_revision")]
    return list(zip(*cols, strict=True))


def _block_column(table: pa.Table) -> list[int | str]:
    return [
        block_of(h, lay)
        for h, lay in zip(table["hidden"].to_pylist(), table["layout"].to_pylist(), strict=True)
    ]


def _blocks(scored: pa.Table) -> set[tuple[int | str, str]]:
    """(block, via) of the rescored kinds in the blocks this run scored: the earlier such rows are replaced."""
    blocks = set(_block_column(scored))
    return {(b, via) for b in blocks for via in RESCORED_VIA}
