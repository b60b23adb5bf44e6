"""What a job reports back to the CLI: counts and the exit code they imply."""

from __future__ import annotations

from dataclasses import dataclass, field

EXIT_OK = 0
EXIT_FATAL = 1
EXIT_USAGE = 2
EXIT_SOME_FAILED = 3


@dataclass
class RunSummary:
    """Counts of one run; ``exit_code`` follows the CLI contract (0 done, 3 done with failures)."""

    done: int = 0
    failed: int = 0
    skipped: int = 0
    bytes_read: int = 0
    requests: int = 0
    messages: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 when every model was fingerprinted or skipped, 3 when some failed."""
        return EXIT_SOME_FAILED if self.failed else EXIT_OK
