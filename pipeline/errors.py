"""One rooted error hierarchy; every error is one line naming model, revision and file.

Ray ships exceptions between processes by pickling them, so every class keeps its
constructor arguments in ``args`` order and round-trips through ``pickle``. Every error class of
hubscan lives here. ``permanent`` marks failures the same bytes always reproduce: a sweep does not
fetch such a revision again.
"""

from __future__ import annotations

import errno

# A failure reason is one line of a table, never a dump: a 40 MB dtype string or tensor name from a
# hostile header is cut, with the length it had, so no failures row or stderr line grows with it.
MAX_REASON_BYTES = 1000
# Repo ids (at most 193 characters on the Hub) and file paths (at most 1,024 bytes) are shown in
# full up to here; only a name already refused as invalid is ever cut.
MAX_NAME_BYTES = 400


def clip(text: str, limit: int) -> str:
    """``text`` within ``limit`` UTF-8 bytes, its cut tail replaced by the length it had.

    Clipping a clipped text changes nothing, so an error survives pickling unchanged.
    """
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return text
    note = f"… (cut from {len(data)} bytes)"
    return data[: limit - len(note.encode())].decode("utf-8", "ignore") + note


def one_line(message: object, limit: int = MAX_REASON_BYTES) -> str:
    """Any message (an exception, a DuckDB or cloud SDK error spanning lines) as one line of at most
    ``limit`` UTF-8 bytes: the one way every error text reaches a table, a failures row or stderr."""
    return clip(" ".join(str(message).split()), limit)


class HubscanError(Exception):
    """Base of every error hubscan records as data instead of crashing on.

    ``repo_id`` is None where no model is involved (a store, a query file); ``filename`` then names
    the store or file instead.
    """

    # True when the same bytes always fail the same way (the sweep skips the revision from then on)
    permanent = False

    def __init__(self, repo_id: str | None, revision: str | None, filename: str | None, reason: str) -> None:
        repo_id = None if repo_id is None else clip(str(repo_id), MAX_NAME_BYTES)
        revision = None if revision is None else clip(str(revision), MAX_NAME_BYTES)
        filename = None if filename is None else clip(str(filename), MAX_NAME_BYTES)
        reason = one_line(reason)  # one line, always, and bounded
        super().__init__(repo_id, revision, filename, reason)
        self.repo_id = repo_id
        self.revision = revision
        self.filename = filename
        self.reason = reason

    def __reduce__(self) -> tuple[type, tuple[object, ...]]:
        return (type(self), (self.repo_id, self.revision, self.filename, self.reason))

    @property
    def category(self) -> str:
        """The class name, stored as the failure category."""
        return type(self).__name__

    def __str__(self) -> str:
        where = self.repo_id or ""
        if self.revision:
            where += f"@{self.revision[:7]}"
        if self.filename:
            where += f":{self.filename}" if where else self.filename
        return f"{where}: {self.reason}" if where else self.reason


class SourceError(HubscanError):
    """Repo listing or model card could not be had."""


class RepoMissing(SourceError):
    """The repo or revision does not exist (or is private)."""


class RevisionMissing(RepoMissing):
    """The pinned revision is gone (the repo moved on between listing and fetching)."""


class BadListing(SourceError):
    """A listing or model-info answer that breaks the Hub's shape: an entry without an id, a sha
    that is not a commit, a file name outside the repo, a next-page link that loops or leaves the
    endpoint. The same answer always fails the same way."""

    permanent = True


class RepoGated(SourceError):
    """The repo needs accepted terms or a token we do not have."""


class NoWeights(SourceError):
    """The repo has no weight file hubscan can read (e.g. only pickled .bin files)."""

    permanent = True


class FetchError(HubscanError):
    """HTTP failed after retries."""

    def __init__(
        self,
        repo_id: str,
        revision: str | None,
        filename: str | None,
        reason: str,
        status: int | None = None,
        byte_range: tuple[int, int] | None = None,
    ) -> None:
        super().__init__(repo_id, revision, filename, reason)
        self.status = status
        self.byte_range = byte_range

    def __reduce__(self) -> tuple[type, tuple[object, ...]]:
        return (
            type(self),
            (self.repo_id, self.revision, self.filename, self.reason, self.status, self.byte_range),
        )


class RateLimited(FetchError):
    """429 answers outlasted the retry budget."""


class FormatError(HubscanError):
    """The bytes are not what the format promises (every subclass is permanent too)."""

    permanent = True


class MalformedHeader(FormatError):
    """A header that cannot be trusted: too long, bad JSON, offsets outside the file."""


class UnsupportedDtype(FormatError):
    """A dtype or quantisation type hubscan cannot decode."""


class UnsupportedFormat(FormatError):
    """A weight layout hubscan recognises but does not decode (EXL2/EXL3): refused, named, counted."""


class UnsafeContent(FormatError):
    """A pickle that asks for anything but tensor rebuilds: refused, never executed."""


class FingerprintError(HubscanError):
    """Values a fingerprint cannot use (NaN/inf rows, unusable shapes)."""

    permanent = True


class QueryError(HubscanError):
    """A queries/*.sql file is missing parameters or fails."""


class NotComparable(HubscanError):
    """Two models a command was asked to compare cannot be (the same model, not stored, no shared
    architecture or layout, no matrices the test needs)."""


class StoreError(HubscanError):
    """The store cannot be used (missing, newer schema, unreachable location, storage refused)."""


class StoreLocked(StoreError):
    """Another sweep holds the store."""


class ResourceLimit(HubscanError):
    """A model exceeded its time or memory budget and was stopped; retried by a later sweep."""


class InternalError(HubscanError):
    """An exception hubscan did not expect (a bug): recorded as category ``internal``, never raised."""

    @property
    def category(self) -> str:
        """Stored as ``internal`` so bugs are counted apart from bad input."""
        return "internal"


def permanent_categories() -> frozenset[str]:
    """Failure categories (class names) a sweep never retries: every permanent class."""
    found: set[str] = set()
    todo: list[type[HubscanError]] = [HubscanError]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.permanent:
            found.add(cls.__name__)
    return frozenset(found)


# Exceptions that hostile or corrupt bytes raise inside a decoder (the json, struct, zlib and
# codec modules): the file is at fault, not hubscan.
_DECODER_ERRORS: tuple[type[BaseException], ...] = (
    RecursionError,
    OverflowError,
    UnicodeError,
    EOFError,
)
_DECODER_MODULES = frozenset({"struct", "zlib", "json.decoder", "zipfile", "binascii"})
# Longest message kept from an unexpected exception: one line in a table, not a dump.
MAX_REASON_CHARS = 300


def from_exception(
    exc: BaseException, repo_id: str, revision: str | None, filename: str | None
) -> HubscanError:
    """Any exception raised while reading one model, as a one-line HubscanError naming model and file."""
    if isinstance(exc, HubscanError):
        if exc.repo_id and exc.revision and (exc.filename or not filename):
            return exc
        return _relabel(exc, repo_id, revision, filename)
    detail = _described(exc)
    # A thread that cannot get its stack is the same cap reached (pthread_create fails with EAGAIN).
    if isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and "new thread" in str(exc)):
        return ResourceLimit(repo_id, revision, filename, f"out of memory under the per-model cap ({detail})")
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return ResourceLimit(
            repo_id, revision, filename, f"store disk full, retried by the next sweep ({detail})"
        )
    if isinstance(exc, _DECODER_ERRORS) or _module(exc) in _DECODER_MODULES:
        return FormatError(repo_id, revision, filename, f"could not be decoded: {detail}")
    if isinstance(exc, FloatingPointError) or _module(exc).startswith("numpy"):
        return FingerprintError(repo_id, revision, filename, f"numeric error: {detail}")
    return InternalError(repo_id, revision, filename, detail)


def _relabel(exc: HubscanError, repo_id: str, revision: str | None, filename: str | None) -> HubscanError:
    """The same error with the model and file a deep stage did not know filled in."""
    clone = exc.__reduce__()[1]
    fields = (exc.repo_id or repo_id, exc.revision or revision, exc.filename or filename, *clone[3:])
    return type(exc)(*fields)  # type: ignore[arg-type]


def _described(exc: BaseException) -> str:
    """An unexpected exception's type and message, short enough for a table cell."""
    return one_line(" ".join(f"{type(exc).__name__}: {exc}".split()).rstrip(":"), MAX_REASON_CHARS)


def _module(exc: BaseException) -> str:
    return type(exc).__module__ or ""
