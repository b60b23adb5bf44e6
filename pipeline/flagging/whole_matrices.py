"""Read whole matrices of a stored model again, locally or by HTTP ranges, as its fingerprint was read.

A model whose files are on this machine (a local source, or the demo hub's folder, recorded in
models.local_dir) is read from disk, so no server has to be running. The folder is read under the
local source's rule: a file that is now a link out of it, a pipe or a device is refused, never opened.

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

from hubscan.pipeline.comparison.permutation_test import as_neurons_by_hidden
from hubscan.pipeline.config import Settings
from hubscan.pipeline.errors import FormatError, NotComparable, RepoMissing, ResourceLimit
from hubscan.pipeline.http import HubHttp
from hubscan.pipeline.keys import ModelKey
from hubscan.pipeline.readers import checkpoint
from hubscan.pipeline.readers.byte_source import ByteSource, LocalFile
from hubscan.pipeline.readers.remote import RemoteFile
from hubscan.pipeline.sources.local import confined_file
from hubscan.pipeline.storage.duckdb import StoredMatrix, model_row, role_matrices

# Bytes of whole matrices read per model and test; beyond it the test is refused (three Llama-7B up
# matrices in BF16 are 270 MB, three layers of Llama-7B Q/K/V/O 400 MB).
MAX_READ_BYTES = 512 * 1024 * 1024
# Sources whose models.endpoint is the repo's folder (stores written before models.local_dir).
LOCAL_SOURCES = ("local", "hf-cache")


def layer_tensors(con: Any, key: ModelKey, role: str) -> dict[int, StoredMatrix]:
    """Layer -> where it lies, of the model's dense (non-expert) matrices of one role."""
    return {m.layer: m for m in role_matrices(con, key, role)}


def read_whole(
    con: Any, settings: Settings, key: ModelKey, wanted: list[StoredMatrix], what: str
) -> list[np.ndarray]:
    """Whole matrices, in the order asked, as [out, in] float64 whatever their storage layout.

    Raises:
        NotComparable: the model is not stored.
        ResourceLimit: the matrices exceed MAX_READ_BYTES.
        FormatError: the matrices are not in the files.
        RepoMissing: the model's recorded folder no longer holds its files.
        SourceError: a file of the recorded folder is a link out of it, a pipe or a device.
        FetchError: a range could not be had.
    """
    origin = model_row(con, key)
    if origin is None:
        raise NotComparable(key[0], key[1], None, "not in the store")
    exact = replace(settings, exact=True)
    out: dict[str, np.ndarray] = {}
    total = 0
    folder = origin.get("local_dir") or (origin["endpoint"] if origin["source"] in LOCAL_SOURCES else None)
    for file in dict.fromkeys(w.file for w in wanted):
        with closing(_open(origin["source"], origin["endpoint"], folder, settings, key, file)) as src:
            header = checkpoint.read_header(src, settings)
            names = {w.name for w in wanted if w.file == file}
            picked = tuple(t for t in header.tensors if t.name in names)
            total += sum(t.nbytes for t in picked)
            if total > MAX_READ_BYTES:
                raise ResourceLimit(key[0], key[1], file, f"{what} matrices exceed {MAX_READ_BYTES:,} bytes")
            for rows in checkpoint.read_rows(src, replace(header, tensors=picked), exact, lambda _: what):
                out[rows.header.name] = rows.values
    missing = [w.name for w in wanted if w.name not in out]
    if missing:
        raise FormatError(key[0], key[1], None, f"tensors not found for the {what} test: {missing[:3]}")
    return [as_neurons_by_hidden(out[w.name], w.transposed) for w in wanted]


def _open(
    kind: str, endpoint: str, folder: str | None, settings: Settings, key: ModelKey, file: str
) -> ByteSource:
    """The stored model's file: from its folder on this machine when one was recorded (``folder``), else by
    HTTP from its ``endpoint``; ``kind`` is its models.source.

    A recorded folder is never bypassed for the endpoint: the demo hub's server is gone once the
    demo exits, and asking a dead server costs retries before the same error.

    Raises:
        RepoMissing: the recorded folder no longer holds the file.
        SourceError: the file is a link out of the folder, a pipe or a device (as a local source).
    """
    if folder is None:
        return RemoteFile(HubHttp(replace(settings, endpoint=endpoint)), key[0], key[1], file, None)
    path = confined_file(Path(folder), file, key[0], key[1])
    if path is None:
        raise RepoMissing(key[0], key[1], file, _gone(kind, endpoint, folder))
    return LocalFile(path, key[0], key[1], file)


def _gone(kind: str, endpoint: str, folder: str) -> str:
    """Which source is gone and how to bring it back, in one line."""
    if kind in LOCAL_SOURCES:
        return (
            f"the {kind} folder {folder} no longer has it: restore the folder, "
            "or fingerprint the model again from where it is now (hubscan fingerprint FOLDER)"
        )
    return (
        f"it was read from {endpoint}, served from {folder}, which no longer has it: "
        "rebuild that folder (hubscan demo rebuilds the demo hub) and run the command again"
    )
