"""Names the store's own files take from outside: a user-given sweep id must stay one plain file name.

A sweep id becomes ``sweeps/<id>.cursor.json`` and ``sweeps/<id>-<time>.parquet``: ``../../x`` wrote
both outside the store, and ``_x`` or ``.x`` would be skipped as hidden by every reader.
"""

from __future__ import annotations

import re

from hubscan.pipeline.errors import StoreError

# A file name is at most 255 bytes on every common file system (ext4, XFS, APFS).
MAX_NAME_BYTES = 255
# What a sweep id may be: it leaves room for the run stamp "-20261207T130000123456.parquet" (30 bytes).
SWEEP_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# How much of a refused id goes into the message (it may be megabytes).
_SHOWN = 60


def check_sweep_id(store: str, sweep_id: str) -> str:
    """The sweep id, if it is a plain name (letters, digits, '.', '_', '-'; a letter or digit first; <= 128).

    Raises:
        StoreError: the id could name a path, a hidden file or an over-long file name.
    """
    if SWEEP_ID.fullmatch(sweep_id) and ".." not in sweep_id:
        return sweep_id
    shown = repr(sweep_id[:_SHOWN]) + (
        f" (cut, {len(sweep_id)} characters)" if len(sweep_id) > _SHOWN else ""
    )
    raise StoreError(
        store,
        None,
        None,
        f"sweep id {shown} is not a plain name: use letters, digits, '.', '_' and '-', "
        "starting with a letter or digit, at most 128",
    )
