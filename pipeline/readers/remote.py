"""A file on the Hub read by HTTP range requests, pinned to a commit."""

from __future__ import annotations

import threading

from pipeline.errors import FetchError
from pipeline.http import HubHttp, Where
from pipeline.readers.byte_source import ReadStats


class RemoteFile:
    """Ranged reads of ``{endpoint}/{repo}/resolve/{sha}/{file}``; every request counted."""

    def __init__(self, http: HubHttp, repo_id: str, revision: str, name: str, size: int | None) -> None:
        self.http = http
        self.repo_id = repo_id
        self.revision: str | None = revision
        self.name = name
        self.url = http.resolve_url(repo_id, revision, name)
        self.stats = ReadStats()
        self._lock = threading.Lock()
        self._where = Where(repo_id, revision, name)
        self.size = size if size is not None else self._probe_size()

    def read(self, begin: int, end: int) -> bytes:
        """Bytes [begin, end) clipped to the file.

        Raises:
            FetchError: after retries.
        """
        end = min(end, self.size)
        data = self.http.get_range(self.url, begin, end, self._where)
        with self._lock:  # ranges are fetched from several threads at once
            self.stats.add(len(data))
        return data

    def close(self) -> None:
        """Nothing to release: the HTTP session is shared."""

    def _probe_size(self) -> int:
        """File size from a one-byte range request, for listings that did not give it."""
        response = self.http.get(self.url, self._where, headers={"Range": "bytes=0-0"})
        self.stats.add(len(response.content))
        total = response.headers.get("Content-Range", "").rpartition("/")[2]
        if total.isdigit():
            return int(total)
        raise FetchError(self.repo_id, self.revision, self.name, "server did not report the file size")
