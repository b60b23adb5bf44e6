"""Content hashes of local weight files, so a byte-identical re-upload is recognised wherever it sits.

The Hub hands out each LFS file's sha256 and a Hugging Face cache names its blobs by it; a plain
folder of repos (or a cache without symlinks) has neither, so the hash is computed here, streamed.
It is the same sha256 the Hub reports, so local and remote copies of one file meet in the store.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

from hubscan.pipeline.sources.refs import FileRef, ModelRef

# Read size while hashing: large enough that a 2 GB shard costs ~2000 reads, small enough to keep
# a worker's memory flat whatever the file size.
HASH_CHUNK_BYTES = 1 << 20


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in chunks (never the whole file in memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def with_content_hashes(ref: ModelRef, files: tuple[FileRef, ...]) -> tuple[FileRef, ...]:
    """``files`` of a local model with their sha256 filled in where the source gave none.

    Only the weight files about to be read are hashed: listing a folder stays cheap, and a revision
    already in the store is skipped before this is reached.
    """
    if ref.local_dir is None:
        return files
    root = ref.local_dir
    return tuple(f if f.sha256 else replace(f, sha256=file_sha256(root / f.name)) for f in files)
