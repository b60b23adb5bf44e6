"""`python -m hubscan.jobs.sweep ...` runs `hubscan sweep ...`: the entry point of Ray jobs (infra/); the sweep
itself is pipeline/runtime/sweep.py."""

from __future__ import annotations

import sys

from hubscan.jobs.cli import app

if __name__ == "__main__":
    app(["sweep", *sys.argv[1:]])
