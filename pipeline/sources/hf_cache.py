"""A local Hugging Face cache as a source: ``models--org--name/snapshots/<sha>/``.

Cached LFS files are symlinks to ``blobs/<sha256>``, so the content hash comes free and
byte-identical files are recognised without reading them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from hubscan.pipeline.sources.local import local_model
from hubscan.pipeline.sources.refs import FileRef, ModelRef

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def cached_models(cache_dir: Path) -> Iterator[ModelRef]:
    """Every snapshot of every cached model repo, pinned to its commit sha."""
    for repo_dir in sorted(Path(cache_dir).glob("models--*")):
        repo_id = repo_dir.name.removeprefix("models--").replace("--", "/")
        for snapshot in sorted(p for p in (repo_dir / "snapshots").glob("*") if p.is_dir()):
            ref = local_model(snapshot, repo_id, root=Path(cache_dir))  # links reach blobs/, never out
            files = tuple(_with_hash(snapshot, f) for f in ref.files)
            yield replace(ref, revision=snapshot.name, files=files, source="hf-cache")


def _with_hash(snapshot: Path, f: FileRef) -> FileRef:
    path = snapshot / f.name
    if path.is_symlink():
        target = path.resolve().name
        if _SHA256.match(target):
            return replace(f, sha256=target)
    return f
