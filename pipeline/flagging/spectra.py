"""Run the attention-spectra test on a stored pair: read whole Q/K/V/O of a few layers through the readers.

Layers are the permutation test's (first, middle, last of the shallower model with their
relative-depth peers), read locally or by HTTP ranges from where each fingerprint was read.
"""

from __future__ import annotations

from typing import Any

from hubscan.pipeline.comparison.permutation_test import pick_layers
from hubscan.pipeline.comparison.spectra import HeadSpectra, SpectraTest, head_spectra, spectra_test
from hubscan.pipeline.config import Settings
from hubscan.pipeline.errors import NotComparable
from hubscan.pipeline.flagging.whole_matrices import layer_tensors, read_whole
from hubscan.pipeline.keys import ModelKey
from hubscan.pipeline.storage.duckdb import model_row

ROLES = ("attn_q", "attn_k", "attn_v", "attn_o")


def run(con: Any, settings: Settings, ka: ModelKey, kb: ModelKey) -> SpectraTest:
    """Per-head spectra of the tested layers of both models, heads matched, tested against decoys.

    Raises:
        NotComparable: no separate Q/K/V/O (fused QKV, MLA), unknown or unequal head counts, too few layers.
        ResourceLimit: the matrices are too large to read whole.
        FetchError: a range could not be had.
    """
    heads = {k: _heads(con, k) for k in (ka, kb)}
    if heads[ka] != heads[kb]:
        raise NotComparable(ka[0], ka[1], None, f"spectra: heads {heads[ka]} vs {heads[kb]} of {kb[0]}")
    tensors = {k: {role: layer_tensors(con, k, role) for role in ROLES} for k in (ka, kb)}
    usable = {k: sorted(set.intersection(*(set(t) for t in tensors[k].values()))) for k in (ka, kb)}
    layers = pick_layers(usable[ka], usable[kb])
    if len(layers) < 2:
        raise NotComparable(
            ka[0], ka[1], None, f"spectra: too few layers with separate Q/K/V/O to test with {kb[0]}"
        )
    spectra: dict[ModelKey, list[HeadSpectra]] = {}
    for k in (ka, kb):
        mine = [la if k == ka else lb for la, lb in layers]
        wanted = [tensors[k][role][layer] for layer in mine for role in ROLES]
        mats = read_whole(con, settings, k, wanted, "attention")
        try:
            spectra[k] = [
                head_spectra(mats[4 * i], mats[4 * i + 1], mats[4 * i + 2], mats[4 * i + 3], *heads[k])
                for i in range(len(mine))
            ]
        except ValueError as exc:
            raise NotComparable(k[0], k[1], None, f"spectra: {exc}") from None
    try:
        return spectra_test(spectra[ka], spectra[kb], layers, *heads[ka])
    except ValueError as exc:
        raise NotComparable(ka[0], ka[1], None, f"spectra with {kb[0]}: {exc}") from None


def _heads(con: Any, key: ModelKey) -> tuple[int, int]:
    row = model_row(con, key)
    if row is None or not row["heads"]:
        raise NotComparable(key[0], key[1], None, "spectra: the attention head count is not known")
    return int(row["heads"]), int(row["kv_heads"] or row["heads"])
