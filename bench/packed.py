"""What a GPTQ/AWQ copy costs to read and how close its fingerprint stays to the base's.

``python -m bench.packed`` builds all-MiniLM-L6-v2 and its GPTQ (4-bit g128, act-order) and
AWQ (4-bit g64) copies, serves them with FakeHub on loopback, fingerprints each through the
Hub path and prints bytes, requests and wall time as the server saw them, and the fidelity
of the quantised matrices against the base. A second table plans (without reading) what
cheaper schemes would cost, on MiniLM and on Llama-2-7B shapes: a row of W is spread over
every packed row (GPTQ) or every input row (AWQ), so sampled rows are not contiguous bytes.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np

from bench.results import recorded
from hubscan.pipeline.chain.model_task import fingerprint_model
from hubscan.pipeline.config import MERGE_GAP_BYTES, Settings
from hubscan.pipeline.fingerprints.tensor import _seeded_columns
from hubscan.pipeline.http import HubHttp
from hubscan.pipeline.readers import checkpoint
from hubscan.pipeline.readers.byte_source import LocalFile
from hubscan.pipeline.readers.ranges import Span, plan_requests
from hubscan.pipeline.readers.records import PackedLinear
from hubscan.pipeline.readers.sampling import plan_rows, row_indices
from hubscan.pipeline.roles import classify
from hubscan.pipeline.sources.hf import resolve
from hubscan.testbed.demohub.realmodels import REPO_BUILDERS, default_cache, fetch_real_model
from hubscan.testbed.demohub.testbed import MINILM, QUANT_VARIANTS, TESTBED_VERSION, _run_builder, build_once
from hubscan.testbed.fakehub import FakeHub

REPS = 3  # median wall of 3 runs: a run takes a fraction of a second and jitters
LLAMA7B = {  # one decoder layer of Llama-2-7B: [out, in] per Linear, 32 layers
    "q_proj": (4096, 4096),
    "k_proj": (4096, 4096),
    "v_proj": (4096, 4096),
    "o_proj": (4096, 4096),
    "gate_proj": (11008, 4096),
    "up_proj": (11008, 4096),
    "down_proj": (4096, 11008),
}


def build(root: Path) -> None:
    """MiniLM and its packed copies under ``root`` (skipped when already there)."""
    raw = fetch_real_model(default_cache(), "minilm-l6")
    build_once(root, MINILM, partial(_run_builder, REPO_BUILDERS["minilm-l6"], raw, {}))
    for repo_id, _, make in QUANT_VARIANTS:
        build_once(root, repo_id, partial(make, root / MINILM))


def measure(hub: FakeHub, repo_id: str) -> tuple[dict, float]:
    """(outcome of the last run, median wall seconds); bytes and requests from the server's log."""
    settings = Settings(endpoint=hub.url, reuse_known_files=False)
    walls, out = [], None
    for _ in range(REPS):
        http = HubHttp(settings)
        ref = resolve(http, repo_id)
        hub.reset()
        t = time.perf_counter()
        out = fingerprint_model(ref, settings, http)
        walls.append(time.perf_counter() - t)
        assert out.ok, out.errors
    assert out is not None
    served = [r for r in hub.log.snapshot() if r.filename and r.filename.endswith(".safetensors")]
    row = dict(out.model_row)
    row["served_bytes"], row["served_requests"] = sum(r.bytes_sent for r in served), len(served)
    row["tensor_rows"] = out.tensor_rows
    return row, statistics.median(walls)


def fidelity(rows: list[dict], base: list[dict]) -> tuple[float, float, float]:
    """(min, median sketch r, max |std ratio - 1|) over the packed matrices."""
    by_name = {r["name"]: r for r in base}
    rs, devs = [], []
    for r in rows:
        if r["dtype"].startswith(("GPTQ", "AWQ")):
            b = by_name[r["name"]]
            rs.append(float(np.corrcoef(r["sketch"], b["sketch"])[0, 1]))
            devs.append(abs(r["std"] / b["std"] - 1))
    return min(rs), statistics.median(rs), max(devs)


def scheme_spans(p: PackedLinear, scheme: str, settings: Settings) -> list[Span]:
    """Byte spans one packed Linear needs under a reading scheme (planned, not read)."""
    small = [Span(t.start, t.start + t.nbytes, t.name) for t in p.parts if t is not p.qweight]
    q = p.qweight
    if scheme == "whole":
        return [*small, Span(q.start, q.start + q.nbytes, q.name)]
    n_in = p.logical.shape[1]
    rows = row_indices(plan_rows(p.logical, classify(p.logical.name).role, settings))
    cols = _seeded_columns(n_in, settings.sketch_max_values // len(rows), settings.seed, p.logical.shape)
    row_bytes = q.shape[1] * 4
    if p.scheme == "GPTQ":  # packed row k holds inputs k*32/bits ..: one row per sketch column
        packed_rows = sorted({int(c) * p.bits // 32 for c in cols})
        words = sorted(set(rows.tolist()))
    else:  # AWQ: input row c holds every output of that input
        packed_rows = sorted(int(c) for c in cols)
        words = sorted({int(r) // 8 for r in rows})
    if scheme == "sketch rows":
        return small + [Span(q.start + k * row_bytes, q.start + (k + 1) * row_bytes, k) for k in packed_rows]
    return small + [
        Span(q.start + k * row_bytes + w * 4, q.start + k * row_bytes + w * 4 + 4, (k, w))
        for k in packed_rows
        for w in words
    ]


def plan_cost(packed: Sequence[PackedLinear], scheme: str, gap: int, settings: Settings) -> tuple[int, int]:
    """(bytes, requests) of one scheme over these Linears, spans merged as the reader merges them."""
    spans = [s for p in packed for s in scheme_spans(p, scheme, settings)]
    requests = plan_requests(spans, gap)
    return sum(r.end - r.begin for r in requests), len(requests)


def llama_layer(bits: int = 4, group: int = 128) -> list[PackedLinear]:
    """One Llama-2-7B layer as GPTQ parts laid out as a safetensors writer orders them."""
    from hubscan.pipeline.readers.packed_int import _infer
    from hubscan.pipeline.readers.records import TensorHeader

    headers: dict[str, TensorHeader] = {}
    offset = 0
    for name, (out, n_in) in LLAMA7B.items():
        for part, shape, item in (
            ("g_idx", (n_in,), 4),
            ("qweight", (n_in * bits // 32, out), 4),
            ("qzeros", (n_in // group, out * bits // 32), 4),
            ("scales", (n_in // group, out), 2),
        ):
            full = f"model.layers.0.mlp.{name}.{part}"
            nbytes = int(np.prod(shape)) * item
            dtype = "F16" if part == "scales" else "I32"
            headers[full] = TensorHeader(full, dtype, shape, "x", offset, nbytes, shape[-1] * item)
            offset += nbytes
    return [_infer(f"model.layers.0.mlp.{n}", headers, {}, ValueError) for n in LLAMA7B]


def main() -> int:
    """Print both tables."""
    root = Path(tempfile.gettempdir()) / f"hubscan-bench-packed-v{TESTBED_VERSION}"
    build(root)
    repos = [MINILM, *(r for r, _, _ in QUANT_VARIANTS)]
    with FakeHub(root) as hub:
        results = {r: measure(hub, r) for r in repos}
    base_rows = results[MINILM][0]["tensor_rows"]
    print("Reading MiniLM and its packed copies through the fake hub (loopback, median of 3)")
    print(f"{'model':32} {'dtype':16} {'file MB':>8} {'read MB':>8} {'requests':>8} {'wall s':>7}  fidelity")
    for repo, (row, wall) in results.items():
        fid = ""
        if repo != MINILM:
            lo, med, dev = fidelity(row["tensor_rows"], base_rows)
            fid = f"sketch r min {lo:.4f} median {med:.4f}, std within {dev:.2%}"
        print(
            f"{repo:32} {row['dtype']:16} {row['checkpoint_bytes'] / 1e6:8.1f} {row['served_bytes'] / 1e6:8.2f}"
            f" {row['served_requests']:8d} {wall:7.3f}  {fid}"
        )
    settings = Settings()
    print(
        f"\nPlanned cost of the quantised Linears under other schemes (merge gap {MERGE_GAP_BYTES // 1024} kB)"
    )
    print(f"{'checkpoint':32} {'scheme':14} {'gap':>6} {'MB':>9} {'requests':>9}")
    for repo, _, _ in QUANT_VARIANTS:
        with LocalFile(root / repo / "model.safetensors", repo) as src:
            packed = list(checkpoint.read_header(src, settings).packed.values())
        _scheme_rows(repo, packed, settings)
    _scheme_rows("Llama-2-7B GPTQ g128, 32 layers", llama_layer(), settings, layers=32)
    return 0


def _scheme_rows(what: str, packed: list[PackedLinear], settings: Settings, layers: int = 1) -> None:
    for scheme, gap in (("whole", MERGE_GAP_BYTES), ("sketch rows", MERGE_GAP_BYTES), ("sketch rows", 0),
                        ("sketch words", MERGE_GAP_BYTES), ("sketch words", 0)):  # fmt: skip
        nbytes, reqs = plan_cost(packed, scheme, gap, settings)
        print(f"{what:32} {scheme:14} {gap // 1024:5d}k {nbytes * layers / 1e6:9.2f} {reqs * layers:9d}")


if __name__ == "__main__":
    with recorded("GPTQ and AWQ: packed parts read whole"):
        sys.exit(main())
