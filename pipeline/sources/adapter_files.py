"""A PEFT adapter repo's adapter_config.json: its declared base, rank, alpha and targets.

Like config.json it is untrusted Hub data: a file that is too large or does not parse as a JSON
object gives an empty config (the adapter's tensors still say what it is), never an error.
"""

from __future__ import annotations

from typing import Any

from hubscan.pipeline.adapter_config import ADAPTER_CONFIG
from hubscan.pipeline.bounded_json import loads_bounded
from hubscan.pipeline.http import HubHttp, Where
from hubscan.pipeline.sources.refs import ModelRef

# PEFT writes a few hundred bytes; a megabyte leaves room for long target lists and nothing else.
MAX_ADAPTER_CONFIG_BYTES = 1024 * 1024


def is_adapter(ref: ModelRef) -> bool:
    """Whether the repo is a PEFT adapter: it ships adapter_config.json at its root."""
    return ref.file(ADAPTER_CONFIG) is not None


def fetch_adapter_config(ref: ModelRef, http: HubHttp) -> dict[str, Any]:
    """The repo's adapter_config.json as a dict; empty when absent, too large or not a JSON object."""
    listed = ref.file(ADAPTER_CONFIG)
    if listed is None or (listed.size or 0) > MAX_ADAPTER_CONFIG_BYTES:
        return {}
    if ref.local_dir is not None:
        raw = (ref.local_dir / listed.name).read_bytes()
    else:
        where = Where(ref.repo_id, ref.revision, listed.name)
        raw = http.get(http.resolve_url(ref.repo_id, ref.revision, listed.name), where).content
    try:
        doc = loads_bounded(raw, MAX_ADAPTER_CONFIG_BYTES)  # the size the listing declared may lie
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}
