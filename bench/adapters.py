"""What a PEFT adapter costs to read through the Hub path, and what the low-rank delta step costs per pair.

``python -m bench.adapters`` trains the testbed's rank-8 LoRA on the real all-MiniLM-L6-v2
(testbed/demohub/lora.py), serves the base, the adapter and the merge with FakeHub on loopback,
fingerprints each through the Hub path and prints bytes and requests as the server saw them. A second
table times the delta step (pipeline/comparison/low_rank.py) on the merge's 36 same-index sketches
and on Llama-2-7B-sized ones (224 matrices of 16 x 128 sampled values).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.results import recorded
from hubscan.pipeline.chain.model_task import fingerprint_model
from hubscan.pipeline.comparison.low_rank import matrix_delta, pair_delta
from hubscan.pipeline.config import Settings
from hubscan.pipeline.http import HubHttp
from hubscan.pipeline.sources.hf import resolve
from hubscan.testbed.demohub.lora import MINILM, ORG, build_lora_repos
from hubscan.testbed.demohub.realmodels import default_cache, fetch_real_model
from hubscan.testbed.fakehub import FakeHub

REPS = 5  # median of 5: the delta step takes milliseconds and jitters
LLAMA_MATRICES = 224  # 32 layers x 7 Linears


def _delta_seconds(pairs: list[tuple[np.ndarray, np.ndarray]]) -> float:
    walls = []
    for _ in range(REPS):
        start = time.perf_counter()
        pair_delta(d for a, b in pairs if (d := matrix_delta("attn_q", a, b, 16)) is not None)
        walls.append(time.perf_counter() - start)
    return statistics.median(walls)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build_lora_repos(fetch_real_model(default_cache(), "minilm-l6"), root)
        with FakeHub(root) as hub:
            settings = Settings(endpoint=hub.url, store=root / "store")
            print(f"{'repo':36} {'file bytes':>12} {'bytes read':>12} {'requests':>9}")
            for repo in (MINILM, f"{ORG}/minilm-lora", f"{ORG}/minilm-lora-merged"):
                hub.reset()
                http = HubHttp(settings)
                out = fingerprint_model(resolve(http, repo), settings, http)
                assert out.model is not None, out.errors
                m = out.model
                print(f"{repo:36} {m.checkpoint_bytes:>12,} {m.bytes_read:>12,} {m.requests:>9}")
    rng = np.random.default_rng(0)
    print(f"\n{'delta step':36} {'matrices':>9} {'ms':>8}")
    for label, n in (("MiniLM (36 matrices)", 36), ("Llama-2-7B (224 matrices)", LLAMA_MATRICES)):
        base = [rng.standard_normal(2048).astype(np.float32) for _ in range(n)]
        pairs = [(b, b + np.outer(rng.standard_normal(16), rng.standard_normal(128)).ravel().astype(np.float32))
                 for b in base]  # fmt: skip
        print(f"{label:36} {n:>9} {1000 * _delta_seconds(pairs):>8.2f}")


if __name__ == "__main__":
    with recorded("PEFT adapters: reading cost and the low-rank delta step"):
        main()
