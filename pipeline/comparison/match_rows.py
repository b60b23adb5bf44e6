"""The rows of a pair's stored maps: the `pairs` table's list-of-struct columns, as Python reads them."""

from __future__ import annotations

from typing import TypedDict


class LayerMatch(TypedDict):
    """One layer of the derived side matched to the other's (layer_map): their layers and similarity."""

    a_layer: int
    b_layer: int
    r: float


class RoleMatch(TypedDict):
    """One MLP role's column-norm window matched across the pair (col_norms_map)."""

    role: str
    a_layer: int
    b_layer: int
    r: float
