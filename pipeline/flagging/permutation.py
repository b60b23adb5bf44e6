"""Run the permutation-recovery test on a stored pair: read whole MLP up matrices through the readers.

The fingerprints hold only sampled rows, and a permuted copy's sampled rows are other neurons, so
the test reads each tested layer's whole up matrix again, locally or by HTTP ranges, exactly as
the fingerprint was read (same readers, same endpoint).
"""

from __future__ import annotations

from typing import Any

from hubscan.pipeline.comparison.permutation_test import PermutationTest, permutation_test, pick_layers
from hubscan.pipeline.config import Settings
from hubscan.pipeline.errors import NotComparable
from hubscan.pipeline.flagging.whole_matrices import layer_tensors, read_whole
from hubscan.pipeline.keys import ModelKey

# The matrix whose rows are neurons and columns hidden units; gate has the same layout.
ROLE = "mlp_up"


def run(con: Any, settings: Settings, ka: ModelKey, kb: ModelKey) -> PermutationTest:
    """Recover and test the hidden permutation between two stored models.

    Raises:
        NotComparable: the models lack same-shape MLP matrices.
        ResourceLimit: the matrices are too large to read whole.
        FetchError: a range could not be had.
    """
    tensors = {k: layer_tensors(con, k, ROLE) for k in (ka, kb)}
    layers = pick_layers(list(tensors[ka]), list(tensors[kb]))
    if not layers:
        raise NotComparable(ka[0], ka[1], None, f"no {ROLE} matrices to compare with {kb[0]}")
    mats = {
        k: read_whole(con, settings, k, [tensors[k][la if k == ka else lb] for la, lb in layers], ROLE)
        for k in (ka, kb)
    }
    try:
        return permutation_test(mats[ka], mats[kb], layers)
    except ValueError as exc:
        raise NotComparable(ka[0], ka[1], None, f"permutation test with {kb[0]}: {exc}") from None
