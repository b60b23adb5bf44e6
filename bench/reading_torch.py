"""What a PyTorch ``.bin`` costs next to safetensors: the same MiniLM weights read both ways.

``python -m bench.reading_torch`` builds all-MiniLM-L6-v2 (real, safetensors) and its
``pytorch_model.bin`` / 2-shard ``.bin`` variants, serves them on loopback with FakeHub, fingerprints
each through the real Hub path, and prints the requests and bytes the server saw for weight
files, and whether every tensor's fingerprint equals the safetensors one.
"""

from __future__ import annotations

import sys
import tempfile
import time
from functools import partial
from pathlib import Path

from bench.results import recorded
from hubscan.pipeline.chain.model_task import fingerprint_model
from hubscan.pipeline.config import Settings
from hubscan.pipeline.http import HubHttp
from hubscan.pipeline.sources.hf import resolve
from hubscan.testbed.demohub import variants
from hubscan.testbed.demohub.realmodels import REAL_MODELS, REPO_BUILDERS, default_cache, fetch_real_model
from hubscan.testbed.demohub.testbed import MINILM, build_once
from hubscan.testbed.fakehub import FakeHub

BIN = "demohub/all-MiniLM-L6-v2-pytorch"
BIN_SHARDED = "demohub/minilm-bin-sharded"
WEIGHT_SUFFIXES = (".safetensors", ".bin")


def _build(root: Path) -> None:
    raw = fetch_real_model(default_cache(), "minilm-l6")
    assert REAL_MODELS["minilm-l6"].repo_id == MINILM
    build_once(root, MINILM, partial(REPO_BUILDERS["minilm-l6"], raw))
    build_once(root, BIN, partial(variants.to_pytorch, root / MINILM, n_shards=1))
    build_once(root, BIN_SHARDED, partial(variants.to_pytorch, root / MINILM, n_shards=2))


def main() -> int:
    """Print one table: model, format, file size, weight requests, weight bytes, % read, seconds, equal."""
    with tempfile.TemporaryDirectory(prefix="hubscan-bench-torch-") as tmp:
        root = Path(tmp)
        _build(root)
        with FakeHub(root) as hub:
            settings = Settings(endpoint=hub.url, store=root / "store", reuse_known_files=False)
            http = HubHttp(settings)
            base: dict[str, tuple[float, list[float]]] = {}
            print(
                f"{'model':40} {'format':12} {'size MB':>8} {'requests':>8} {'read MB':>8} {'read %':>7} {'s':>5}  same"
            )
            for repo in (MINILM, BIN, BIN_SHARDED):
                hub.reset()
                started = time.monotonic()
                out = fingerprint_model(resolve(http, repo), settings, http)
                seconds = time.monotonic() - started
                assert out.model_row is not None, out.errors
                served = [
                    r for r in hub.log.snapshot() if r.filename and r.filename.endswith(WEIGHT_SUFFIXES)
                ]
                size = sum((root / repo / f).stat().st_size for f in out.model_row["files"])
                read = sum(r.bytes_sent for r in served)
                rows = {str(r["name"]): (r["std"], r["sketch"]) for r in out.tensor_rows}
                if not base:
                    base = rows
                same = rows == base
                print(
                    f"{repo:40} {out.model_row['format']:12} {size / 1e6:8.1f} {len(served):8d} "
                    f"{read / 1e6:8.2f} {100 * read / size:7.2f} {seconds:5.2f}  {same}"
                )
    return 0


if __name__ == "__main__":
    with recorded("Reading PyTorch zip checkpoints"):
        sys.exit(main())
