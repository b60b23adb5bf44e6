"""The store's own files on a local disk: never reached through a link, and refused in one line.

A link in the store (``.sweep.lock`` pointing at a file elsewhere, a table folder pointing out of
the store) would make hubscan truncate, overwrite or read a file it never created. Links are not
followed anywhere below the store's root (the root itself may be a link: the user chose it).
"""

from __future__ import annotations

import errno
import json
import os
import stat
import uuid

from hubscan.pipeline.errors import StoreError

LINK_REASON = "is a link or not a plain file; hubscan does not follow links in its store: remove it"
# Small files only (marker, cursor, manifest): a bigger one is not one hubscan wrote.
MAX_OWN_BYTES = 64 * 1024 * 1024


def check_own_path(store: str, base: str, relative: str) -> str:
    """The absolute path of ``relative`` under ``base``, if no folder on the way is a link.

    Raises:
        StoreError: a folder between the root and the file is a link (or the path leaves the store).
    """
    path = os.path.join(base, relative)
    inside = os.path.normpath(os.path.join(os.path.realpath(base), os.path.dirname(relative)))
    if os.path.realpath(os.path.dirname(path)) != inside:
        raise StoreError(store, None, os.path.dirname(relative) or relative, LINK_REASON)
    return path


def open_own(store: str, base: str, relative: str, flags: int, mode: int = 0o644) -> int:
    """A descriptor of one of the store's own regular files, opened without following a link.

    Raises:
        StoreError: the file or a folder on its way is a link or not a regular file, or the
            store refused (read-only, no permission).
    """
    path = check_own_path(store, base, relative)
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StoreError(store, None, relative, LINK_REASON) from None
        if exc.errno == errno.ENOENT:
            raise
        doing = "written" if flags & (os.O_WRONLY | os.O_RDWR) else "read"
        raise StoreError(store, None, relative, f"the store cannot be {doing}: {exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise StoreError(store, None, relative, LINK_REASON)
    return fd


def read_own(store: str, base: str, relative: str) -> bytes | None:
    """A small own file's bytes (None when absent), read without following a link.

    Raises:
        StoreError: the file is a link, a folder, a device or a pipe, or too big to be hubscan's.
    """
    try:
        fd = open_own(store, base, relative, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        if os.fstat(fd).st_size > MAX_OWN_BYTES:
            raise StoreError(
                store, None, relative, f"larger than {MAX_OWN_BYTES} bytes: not a file hubscan wrote"
            )
        with os.fdopen(os.dup(fd), "rb") as fh:
            return fh.read()
    finally:
        os.close(fd)


def check_writable(store: str, base: str) -> None:
    """Raise at once when the store cannot be written, before any work is spent on it.

    Raises:
        StoreError: the store's folder refuses a new file (read-only mount, permissions).
    """
    probe = f".write-probe-{uuid.uuid4().hex}"
    try:
        fd = os.open(os.path.join(base, probe), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise StoreError(store, None, None, f"the store cannot be written: {exc.strerror}") from None
    os.close(fd)
    os.unlink(os.path.join(base, probe))


def marker_version(store: str, marker: str, data: bytes) -> int:
    """The schema version a store's marker names.

    Raises:
        StoreError: the marker is not what hubscan writes (not JSON, not an object, no integer version).
    """
    try:
        raw = json.loads(data)
    except ValueError:
        raise StoreError(store, None, marker, "not what hubscan writes (not JSON)") from None
    if not isinstance(raw, dict):
        kind = "an array" if isinstance(raw, list) else "a string" if isinstance(raw, str) else "a scalar"
        raise StoreError(store, None, marker, f"not what hubscan writes ({kind} of JSON, not an object)")
    found = raw.get("schema_version", 0)
    if isinstance(found, bool) or not isinstance(found, int):
        shown = json.dumps(found)[:40]
        raise StoreError(
            store, None, marker, f"not what hubscan writes (schema_version {shown} is not an integer)"
        )
    return found
