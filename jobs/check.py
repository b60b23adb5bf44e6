"""`hubscan check`: list the store's unreadable Parquet files; with --repair move them aside."""

from __future__ import annotations

from hubscan.pipeline.config import Settings
from hubscan.pipeline.errors import StoreError
from hubscan.pipeline.storage.check import find_bad_files, quarantine
from hubscan.pipeline.storage.parquet import Store
from hubscan.pipeline.summary import RunSummary


def run(settings: Settings, repair: bool = False) -> RunSummary:
    """One line per bad file on stdout; exit 3 when any were found (and moved, with ``repair``).

    Raises:
        StoreError: the store is not a local folder, or no store exists there.
    """
    if "://" in str(settings.store):
        raise StoreError(str(settings.store), None, None, "check needs a local store folder")
    store = Store(settings.store).open_existing()
    root = (store.writable() if repair else store).root
    bad = find_bad_files(root)
    for item in bad:
        print(f"{item.path}: {item.reason}")
    moved = quarantine(root, bad) if repair else []
    for relative in moved:
        print(f"moved {relative} to quarantine/{relative}")
    return RunSummary(failed=len(bad), messages=[f"{b.path}: {b.reason}" for b in bad])
