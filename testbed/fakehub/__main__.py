"""`python -m hubscan.testbed.fakehub ROOT [--port N]`: serve a folder of repos as a local Hub until Ctrl-C."""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
from pathlib import Path

from .server import FakeHub


def main(argv: list[str] | None = None) -> int:
    """Parse options, serve, print the URL to stdout; 0 on Ctrl-C, 2 on a bad root."""
    parser = argparse.ArgumentParser(prog="python -m hubscan.testbed.fakehub", description=__doc__)
    parser.add_argument("root", type=Path, help="folder holding <org>/<name>/ repos")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free port)")
    parser.add_argument("--page-size", type=int, default=100, help="entries per /api/models page")
    parser.add_argument("--synthetic", type=int, default=0, help="append N synthetic listing-only models")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every response")
    parser.add_argument(
        "--mirror", action="store_true", help="serve files at /resolve/ itself, no 302 to a CDN origin"
    )
    args = parser.parse_args(argv)
    try:
        hub = FakeHub(
            args.root,
            port=args.port,
            page_size=args.page_size,
            synthetic_models=args.synthetic,
            latency=args.latency,
            cdn=not args.mirror,
        )
    except NotADirectoryError as e:
        print(e, file=sys.stderr)
        return 2
    with hub:
        print(hub.url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
