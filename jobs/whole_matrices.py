"""Read whole matrices of a stored model again, locally or by HTTP ranges, as its fingerprint was read.

The fingerprints hold only sampled rows; the permutation test and the attention spectra need whole
matrices of a few layers, read through the same readers from the same endpoint, with a byte cap so
a request about two large models is refused rather than stalling a compare.
"""

from __future__ import annotations

from contextlib import closing
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.comparison.permutation_test import as_neurons_by_hidden
from pipeline.config import Settings
from pipeline.errors import QueryError
from pipeline.http import HubHttp
from pipeline.readers import checkpoint
from pipeline.readers.byte_source import ByteSource, LocalFile
from pipeline.readers.remote import RemoteFile

Key = tuple[str, str]
# Bytes of whole matrices read per model and test; beyond it the test is refused (three Llama-7B up
# matrices in BF16 are 270 MB, three layers of Llama-7B Q/K/V/O 400 MB).
MAX_READ_BYTES = 512 * 1024 * 1024


def layer_tensors(con: Any, key: Key, role: str) -> dict[int, dict[str, Any]]:
    """Layer -> (name, file, transposed, shape) of the model's dense (non-expert) matrices of one role."""
    rows = con.sql(
        "SELECT layer, name, file, transposed, shape FROM tensors WHERE repo_id = $r AND revision = $v "
        "AND role = $role AND kind = 'weight' AND expert IS NULL AND layer IS NOT NULL ORDER BY layer",
        params={"r": key[0], "v": key[1], "role": role},
    ).fetchall()
    return {int(r[0]): {"name": r[1], "file": r[2], "transposed": bool(r[3]), "shape": r[4]} for r in rows}


def read_whole(
    con: Any, settings: Settings, key: Key, wanted: list[dict[str, Any]], what: str
) -> list[np.ndarray]:
    """Whole matrices, in the order asked, as [out, in] float64 whatever their storage layout.

    Raises:
        QueryError: the matrices exceed MAX_READ_BYTES or are not in the files.
        FetchError: a range could not be had.
    """
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
                raise QueryError(key[0], key[1], file, f"{what} matrices exceed {MAX_READ_BYTES:,} bytes")
            for rows in checkpoint.read_rows(src, replace(header, tensors=picked), exact, lambda _: what):
                out[rows.header.name] = rows.values
    missing = [w["name"] for w in wanted if w["name"] not in out]
    if missing:
        raise QueryError(key[0], key[1], None, f"tensors not found for the {what} test: {missing[:3]}")
    return [as_neurons_by_hidden(out[w["name"]], w["transposed"]) for w in wanted]


def _open(kind: str, endpoint: str, settings: Settings, key: Key, file: str) -> ByteSource:
    """The stored model's file, where its fingerprint was read from."""
    if kind == "local":
        return LocalFile(Path(endpoint) / file, key[0], key[1], file)
    return RemoteFile(HubHttp(replace(settings, endpoint=endpoint)), key[0], key[1], file, None)
