"""One sweep per store at a time, and one compaction: advisory lock files (``flock``).

The sweep lock is held for the life of the sweep.

Two sweeps on one store would both list, both skip nothing, and fingerprint every model
twice (writes are idempotent, so nothing is corrupted, but the quota is spent twice). The
lock is ``flock`` on ``<store>/.sweep.lock``: the kernel releases it when the holder exits,
however it exits, so a killed driver never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hubscan.pipeline.errors import StoreLocked
from hubscan.pipeline.storage.own_files import open_own

LOCK_FILE = ".sweep.lock"
# Held while a compaction runs: two at once would each swap in a manifest naming only their own new
# parts, and each deletes the loose files it folded in, so the first one's models would be lost.
COMPACT_LOCK_FILE = ".compact.lock"


@contextmanager
def sweep_lock(root: Path, what: str) -> Iterator[None]:
    """Hold the store's sweep lock, or raise at once if another process holds it.

    Raises:
        StoreLocked: another sweep is running on this store.
        StoreError: the lock file is a link or not a plain file, or the store cannot be written.
    """
    fd = open_own(str(root), str(root), LOCK_FILE, os.O_RDWR | os.O_CREAT)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            raise StoreLocked(
                str(root),
                None,
                LOCK_FILE,
                f"another sweep is running on this store ({holder}); wait for it or use another store",
            ) from None
        # Who holds it, for the second sweep's message; a full disk only loses the note.
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()}, {what}".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


@contextmanager
def compaction_lock(root: Path) -> Iterator[None]:
    """Hold the store's compaction lock, waiting for a compaction that holds it to finish.

    Waiting, not failing: `hubscan compact` run by hand during a sweep's own compaction simply runs
    after it (and usually finds nothing left to do).

    Raises:
        StoreError: the lock file is a link or not a plain file, or the store cannot be written.
    """
    fd = open_own(str(root), str(root), COMPACT_LOCK_FILE, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
