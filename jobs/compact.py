"""`hubscan compact`: fold committed per-model files into per-block compacted files."""

from __future__ import annotations

from hubscan.pipeline.config import Settings
from hubscan.pipeline.storage.compact import CompactResult, compact
from hubscan.pipeline.storage.parquet import Store


def run(settings: Settings) -> CompactResult:
    """Compact the store once (a no-op when no loose model is committed).

    Raises:
        StoreError: the store cannot be opened or written.
    """
    return compact(Store(settings.store).init())
