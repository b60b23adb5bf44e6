"""What a command-line target names: a local folder, a local file, or a Hub repo id."""

from __future__ import annotations

from pathlib import Path

from hubscan.pipeline.http import HubHttp
from hubscan.pipeline.sources import hf
from hubscan.pipeline.sources.local import local_file, local_model
from hubscan.pipeline.sources.refs import ModelRef


def resolve_target(target: str, http: HubHttp, revision: str) -> ModelRef:
    """A local folder or file when the path exists, else a Hub repo id pinned to a commit.

    An existing file is a one-file repo: `hubscan fingerprint ./model.gguf` must never be taken for
    a Hub id (which would be retried against DNS).

    Raises:
        SourceError: the Hub does not know the repo or revision.
    """
    path = Path(target)
    if path.is_dir():
        return local_model(path)
    if path.is_file():
        return local_file(path)
    return hf.resolve(http, target, revision)
