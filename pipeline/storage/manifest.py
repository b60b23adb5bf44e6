"""Which compacted Parquet files make up the store: one JSON manifest, replaced in a single atomic write.

Compacted files live under ``compacted/<table>/block-<hidden>/`` (one folder per comparability block);
a file not named by the manifest (written by a compaction that was killed) is never read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

COMPACTED = "compacted"
MANIFEST = f"{COMPACTED}/manifest.json"
# Why a manifest that does not parse as one is refused (hubscan check lists it; every other command stops).
MANIFEST_FOREIGN = "not what hubscan writes (a JSON object with an integer generation and lists of parts)"
# Tables merged by compaction. failures/ stays per model: a retry replaces a model's failures file.
COMPACT_TABLES = ("models", "tensors", "files")


@dataclass(frozen=True)
class Manifest:
    """Generation counter and the compacted files of each table, relative to the store."""

    generation: int = 0
    parts: dict[str, list[str]] = field(default_factory=dict)

    def files(self, table: str) -> list[str]:
        """Compacted files of one table (relative paths)."""
        return list(self.parts.get(table, []))

    def to_json(self) -> bytes:
        """The manifest as written to the store."""
        return json.dumps({"generation": self.generation, "parts": self.parts}, indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes | None) -> Manifest:
        """The manifest of a store (an empty one when the store was never compacted)."""
        if data is None:
            return cls()
        raw = json.loads(data)
        parts = {str(k): [_part(p) for p in v] for k, v in raw["parts"].items()}
        return cls(generation=int(raw["generation"]), parts=parts)


def _part(path: object) -> str:
    """A manifest entry, if it names a file under compacted/: '../../x' would be read outside the store.

    Raises:
        ValueError: anything else.
    """
    if not isinstance(path, str) or not path.startswith(f"{COMPACTED}/") or not path.endswith(".parquet"):
        raise ValueError(f"not a compacted part: {path!r:.80}")
    if any(seg in ("", ".", "..") for seg in path.split("/")):
        raise ValueError(f"not a compacted part: {path!r:.80}")
    return path
