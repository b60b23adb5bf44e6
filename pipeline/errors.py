"""One rooted error hierarchy; every error is one line naming model, revision and file.

Ray ships exceptions between processes by pickling them, so every class keeps its
constructor arguments in ``args`` order and round-trips through ``pickle``.
"""

from __future__ import annotations


class HubscanError(Exception):
    """Base of every error hubscan records as data instead of crashing on."""

    def __init__(self, repo_id: str, revision: str | None, filename: str | None, reason: str) -> None:
        super().__init__(repo_id, revision, filename, reason)
        self.repo_id = repo_id
        self.revision = revision
        self.filename = filename
        self.reason = " ".join(str(reason).split())  # one line, always

    def __reduce__(self) -> tuple[type, tuple[object, ...]]:
        return (type(self), (self.repo_id, self.revision, self.filename, self.reason))

    @property
    def category(self) -> str:
        """The class name, stored as the failure category."""
        return type(self).__name__

    def __str__(self) -> str:
        where = self.repo_id
        if self.revision:
            where += f"@{self.revision[:7]}"
        if self.filename:
            where += f":{self.filename}"
        return f"{where}: {self.reason}"


class SourceError(HubscanError):
    """Repo listing or model card could not be had."""


class RepoMissing(SourceError):
    """The repo or revision does not exist (or is private)."""


class RevisionMissing(RepoMissing):
    """The pinned revision is gone (the repo moved on between listing and fetching)."""


class RepoGated(SourceError):
    """The repo needs accepted terms or a token we do not have."""


class NoWeights(SourceError):
    """The repo has no weight file hubscan can read (e.g. only pickled .bin files)."""


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
    """The bytes are not what the format promises."""


class MalformedHeader(FormatError):
    """A header that cannot be trusted: too long, bad JSON, offsets outside the file."""


class UnsupportedDtype(FormatError):
    """A dtype or quantisation type hubscan cannot decode."""


class UnsafeContent(FormatError):
    """A pickle that asks for anything but tensor rebuilds: refused, never executed."""


class FingerprintError(HubscanError):
    """Values a fingerprint cannot use (NaN/inf rows, unusable shapes)."""


class QueryError(HubscanError):
    """A queries/*.sql file is missing parameters or fails."""
