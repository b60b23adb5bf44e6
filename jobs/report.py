"""`hubscan report`: the static site of the last flag run (pipeline/outputs/report.py) written to a folder."""

from __future__ import annotations

from pathlib import Path

from hubscan.pipeline.config import Settings
from hubscan.pipeline.outputs.report import write_report


def run(settings: Settings, out_dir: Path) -> int:
    """Write the site into ``out_dir``; returns how many pair pages were written.

    Raises:
        StoreError: the store has no scored pairs (run `hubscan flag` first).
    """
    return write_report(settings.store, out_dir)
