"""Random access to a weight file, local or remote, with every request and byte counted."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass
class ReadStats:
    """Requests and bytes one file cost; a sweep is bounded by requests, not only bytes."""

    requests: int = 0
    bytes: int = 0

    def add(self, nbytes: int) -> None:
        """Count one request of nbytes."""
        self.requests += 1
        self.bytes += nbytes


class ByteSource(Protocol):
    """What a format reader needs from a file: its size and byte ranges."""

    repo_id: str
    revision: str | None
    name: str
    size: int
    stats: ReadStats

    def read(self, begin: int, end: int) -> bytes:
        """Bytes [begin, end), one request.

        Raises:
            FetchError: the range could not be had.
        """
        ...

    def close(self) -> None:
        """Release what the source holds (a file descriptor)."""
        ...


class LocalFile:
    """A file on disk; pread keeps concurrent reads from racing on one file offset."""

    def __init__(
        self, path: Path, repo_id: str, revision: str | None = None, name: str | None = None
    ) -> None:
        self.path = Path(path)
        self.repo_id = repo_id
        self.revision = revision
        self.name = name or self.path.name
        self.size = self.path.stat().st_size
        self.stats = ReadStats()
        self._lock = threading.Lock()
        self._fd = os.open(self.path, os.O_RDONLY)

    def read(self, begin: int, end: int) -> bytes:
        """Bytes [begin, end), clipped to the file (a short read means a truncated file)."""
        data = os.pread(self._fd, max(0, end - begin), begin)
        with self._lock:
            self.stats.add(len(data))
        return data

    def close(self) -> None:
        """Release the descriptor."""
        os.close(self._fd)

    def __enter__(self) -> LocalFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
