"""Run the permutation-recovery test on a stored pair: read whole MLP up matrices through the readers.

The fingerprints hold only sampled rows, and a permuted copy's sampled rows are other neurons, so
the test reads each tested layer's whole up matrix again, locally or by HTTP ranges, exactly as
the fingerprint was read (same readers, same endpoint).
"""

from __future__ import annotations

from contextlib import closing
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.comparison.permutation_test import (
    PermutationTest,
    as_neurons_by_hidden,
    permutation_test,
    pick_layers,
)
from pipeline.config import Settings
from pipeline.errors import QueryError
from pipeline.http import HubHttp
from pipeline.readers import checkpoint
from pipeline.readers.byte_source import ByteSource, LocalFile
from pipeline.readers.remote import RemoteFile

Key = tuple[str, str]
# Bytes of whole matrices read per model; beyond it the test is refused rather than stalling a
# compare (three Llama-7B up matrices in BF16 are 270 MB).
MAX_READ_BYTES = 512 * 1024 * 1024
# The matrix whose rows are neurons and columns hidden units; gate has the same layout.
ROLE = "mlp_up"


def run(con: Any, settings: Settings, ka: Key, kb: Key) -> PermutationTest:
    """Recover and test the hidden permutation between two stored models.

    Raises:
        QueryError: the models lack same-shape MLP matrices, or they are too large to read whole.
        FetchError: a range could not be had.
    """
    tensors = {k: _up_tensors(con, k) for k in (ka, kb)}
    layers = pick_layers(list(tensors[ka]), list(tensors[kb]))
    if not layers:
        raise QueryError(ka[0], ka[1], None, f"no {ROLE} matrices to compare with {kb[0]}")
    mats = {
        k: _read(con, settings, k, [tensors[k][la if k == ka else lb] for la, lb in layers]) for k in (ka, kb)
    }
    try:
        return permutation_test(mats[ka], mats[kb], layers)
    except ValueError as exc:
        raise QueryError(ka[0], ka[1], None, f"permutation test with {kb[0]}: {exc}") from None


def _up_tensors(con: Any, key: Key) -> dict[int, dict[str, Any]]:
    """Layer -> (name, file, transposed, shape) of the model's dense MLP up matrices."""
    rows = con.sql(
        "SELECT layer, name, file, transposed, shape FROM tensors WHERE repo_id = $r AND revision = $v "
        "AND role = $role AND kind = 'weight' AND expert IS NULL AND layer IS NOT NULL ORDER BY layer",
        params={"r": key[0], "v": key[1], "role": ROLE},
    ).fetchall()
    return {int(r[0]): {"name": r[1], "file": r[2], "transposed": bool(r[3]), "shape": r[4]} for r in rows}


def _read(con: Any, settings: Settings, key: Key, wanted: list[dict[str, Any]]) -> list[np.ndarray]:
    """Whole matrices, in the order asked, as [neurons, hidden]."""
    source_kind, endpoint = con.sql(
        "SELECT source, endpoint FROM models WHERE repo_id = $r AND revision = $v",
        params={"r": key[0], "v": key[1]},
    ).fetchall()[0]
    exact = replace(settings, exact=True)
    out: dict[str, np.ndarray] = {}
    total = 0
    for file in dict.fromkeys(w["file"] for w in wanted):
        with closing(_open(source_kind, endpoint, settings, key, file)) as src:
            header = checkpoint.read_header(src, settings)
            names = {w["name"] for w in wanted if w["file"] == file}
            picked = tuple(t for t in header.tensors if t.name in names)
            total += sum(t.nbytes for t in picked)
            if total > MAX_READ_BYTES:
                raise QueryError(key[0], key[1], file, f"{ROLE} matrices exceed {MAX_READ_BYTES:,} bytes")
            for rows in checkpoint.read_rows(src, replace(header, tensors=picked), exact, lambda _: ROLE):
                out[rows.header.name] = rows.values
    missing = [w["name"] for w in wanted if w["name"] not in out]
    if missing:
        raise QueryError(key[0], key[1], None, f"tensors not found for the permutation test: {missing[:3]}")
    return [as_neurons_by_hidden(out[w["name"]], w["transposed"]) for w in wanted]


def _open(kind: str, endpoint: str, settings: Settings, key: Key, file: str) -> ByteSource:
    """The stored model's file, where its fingerprint was read from."""
    if kind == "local":
        return LocalFile(Path(endpoint) / file, key[0], key[1], file)
    return RemoteFile(HubHttp(replace(settings, endpoint=endpoint)), key[0], key[1], file, None)
