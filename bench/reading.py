"""What reading a checkpoint costs: range sampling vs exact range reads vs a full download, side by side.

``python -m bench.reading [--quick | --formats]`` serves the demo hub (real checkpoints) plus a synthetic
2.2 GB Llama-style checkpoint tiled from real MiniLM and e5 matrices on loopback with FakeHub,
and for each model prints wall time, bytes and requests as the server saw them, and how well
the sampled fingerprint tracks the exact one. Loopback hides network cost, so the latency
table repeats the sampled read with 50 ms added to every request. ``--formats`` prints instead what
one model costs in each quantised layout hubscan reads (copies of all-MiniLM-L6-v2).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np

from bench.results import recorded
from hubscan.pipeline.chain.model_task import ModelOutcome, fingerprint_model
from hubscan.pipeline.config import Settings
from hubscan.pipeline.http import HubHttp
from hubscan.pipeline.readers import checkpoint
from hubscan.pipeline.readers.byte_source import LocalFile
from hubscan.pipeline.sources.hf import resolve
from hubscan.pipeline.sources.local import local_model
from hubscan.pipeline.sources.weights import select_weight_files
from hubscan.testbed.demohub import quant_zoo
from hubscan.testbed.demohub.realmodels import default_cache
from hubscan.testbed.demohub.testbed import build_once, build_testbed
from hubscan.testbed.fakehub import FakeHub, RequestRecord
from hubscan.testbed.writers import scaled_quant
from hubscan.testbed.writers.safetensors_write import (
    read_safetensors_header,
    read_safetensors_np,
    write_safetensors,
)

# Its own folder: the quantised copies it adds would otherwise join the demo hub, and `hubscan demo` sweeps them.
HUB_ROOT = Path.home() / ".cache" / "hubscan" / "bench-hub"
FORMATS_ROOT = Path.home() / ".cache" / "hubscan" / "quant-zoo"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
REAL_MODELS = (
    MINILM,
    "sentence-transformers/paraphrase-MiniLM-L3-v2",
    "intfloat/multilingual-e5-small",
    "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF",
)
SYNTHETIC = "bench/llama-tiled-1b"
# all-MiniLM-L6-v2 in each compressed-tensors / block-FP8 layout (testbed/writers/scaled_quant.py)
SCALED = tuple(f"bench/all-MiniLM-L6-v2-{scheme}" for scheme in scaled_quant.SCHEMES)
# Sampled runs take a second or two and jitter by ~10 %: the median of 3 is stable enough.
SAMPLED_REPS = 3
DENSE = {"matrix_blocks": 32, "rows_per_block": 2}
LATENCY_S = 0.05
# Targets from the design brief; the byte target applies to checkpoints of at least 1 GB.
BYTES_TARGET_PCT, BIG_MODEL_BYTES = 0.2, 10**9
REQS_PER_LAYER_TARGET, SIGMA_R_TARGET, NAIVE_SPEEDUP_TARGET = 3.0, 0.999, 20.0
SIGMA_ROLES = frozenset({"attn_q", "attn_k", "attn_v", "attn_o"})
# Matrices whose columns are the hidden dimension: their column norms are per-dimension statistics.
INPUT_ROLES = frozenset({"attn_q", "attn_k", "attn_v", "attn_qkv", "mlp_up", "mlp_gate", "mlp_gate_up"})
# TinyLlama-1.1B's shape: 22 layers, 32 query and 4 KV heads of 64, BF16 -> 2.2 GB in two shards.
HIDDEN, LAYERS, INTERMEDIATE, VOCAB, HEADS, KV_HEADS = 2048, 22, 5632, 32000, 32, 4
KV_DIM = KV_HEADS * HIDDEN // HEADS
BF16 = np.dtype(ml_dtypes.bfloat16)
SHARDS = ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors")


# ---------------------------------------------------------------- synthetic checkpoint


def _layer_shapes(layer: int) -> dict[str, tuple[int, ...]]:
    p = f"model.layers.{layer}."
    return {
        p + "input_layernorm.weight": (HIDDEN,),
        p + "self_attn.q_proj.weight": (HIDDEN, HIDDEN),
        p + "self_attn.k_proj.weight": (KV_DIM, HIDDEN),
        p + "self_attn.v_proj.weight": (KV_DIM, HIDDEN),
        p + "self_attn.o_proj.weight": (HIDDEN, HIDDEN),
        p + "post_attention_layernorm.weight": (HIDDEN,),
        p + "mlp.gate_proj.weight": (INTERMEDIATE, HIDDEN),
        p + "mlp.up_proj.weight": (INTERMEDIATE, HIDDEN),
        p + "mlp.down_proj.weight": (HIDDEN, INTERMEDIATE),
    }


def synthetic_plan() -> dict[str, dict[str, tuple[int, ...]]]:
    """Shard file -> {tensor name: shape}: embeddings and the first half of the layers in shard 1."""
    half = LAYERS // 2
    first: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (VOCAB, HIDDEN)}
    second: dict[str, tuple[int, ...]] = {}
    for layer in range(LAYERS):
        (first if layer < half else second).update(_layer_shapes(layer))
    second.update({"model.norm.weight": (HIDDEN,), "lm_head.weight": (VOCAB, HIDDEN)})
    return {SHARDS[0]: first, SHARDS[1]: second}


def _real_layers(root: Path) -> tuple[list[dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """Every encoder layer of the three real BERTs (21 in all), and named whole-model tensors."""
    layers: list[dict[str, np.ndarray]] = []
    extra: dict[str, np.ndarray] = {}
    for repo, n in ((MINILM, 6), ("intfloat/multilingual-e5-small", 12), (REAL_MODELS[1], 3)):
        t = read_safetensors_np(root / repo / "model.safetensors")
        for i in range(n):
            p = f"encoder.layer.{i}."
            layers.append(
                {
                    "q": t[p + "attention.self.query.weight"],
                    "k": t[p + "attention.self.key.weight"],
                    "v": t[p + "attention.self.value.weight"],
                    "o": t[p + "attention.output.dense.weight"],
                    "up": t[p + "intermediate.dense.weight"],
                    "down": t[p + "output.dense.weight"],
                    "attn_ln": t[p + "attention.output.LayerNorm.weight"],
                    "mlp_ln": t[p + "output.LayerNorm.weight"],
                }
            )
        extra[repo] = t["embeddings.word_embeddings.weight"]
        extra[repo + ":norm"] = t["embeddings.LayerNorm.weight"]
    return layers, extra


def _tiled(src: np.ndarray, shape: tuple[int, ...], parity: int = 0, embedding: bool = False) -> np.ndarray:
    """``shape`` filled with blocks of a real matrix; every other block is reversed so rows are not periodic."""
    block = src.astype(BF16)
    # An embedding keeps each row one token's vector: only its columns are reversed.
    alt = block[:, ::-1] if embedding else block[::-1, ::-1]
    out = np.empty(shape, BF16)
    h, w = block.shape
    for i, r in enumerate(range(0, shape[0], h)):
        for j, c in enumerate(range(0, shape[1], w)):
            part = block if (i + j + parity) % 2 == 0 else alt
            out[r : r + h, c : c + w] = part[: shape[0] - r, : shape[1] - c]
    return out


def _layer_tensors(layer: int, src: dict[str, np.ndarray], parity: int) -> dict[str, np.ndarray]:
    shapes = _layer_shapes(layer)
    parts = {
        "input_layernorm": src["attn_ln"],
        "q_proj": src["q"],
        "k_proj": src["k"],
        "v_proj": src["v"],
        "o_proj": src["o"],
        "post_attention_layernorm": src["mlp_ln"],
        "gate_proj": src["down"].T,  # a real 1536x384 matrix that is not up_proj's
        "up_proj": src["up"],
        "down_proj": src["down"],
    }
    out: dict[str, np.ndarray] = {}
    for name, shape in shapes.items():
        real = parts[name.split(".")[-2]]
        out[name] = np.resize(real, shape).astype(BF16) if len(shape) == 1 else _tiled(real, shape, parity)
    return out


def _synthetic_complete(folder: Path) -> bool:
    """True when every shard holds exactly the planned tensors and is as long as its header says."""
    for shard, shapes in synthetic_plan().items():
        path = folder / shard
        if not path.is_file():
            return False
        entries, _, start = read_safetensors_header(path)
        if {n: tuple(e["shape"]) for n, e in entries.items()} != shapes:
            return False
        if path.stat().st_size != start + max(e["data_offsets"][1] for e in entries.values()):
            return False
    return (folder / "config.json").is_file()


def _write_synthetic(root: Path, dst: Path) -> None:
    layers, extra = _real_layers(root)
    weight_map: dict[str, str] = {}
    total = 0
    for shard, shapes in synthetic_plan().items():
        tensors: dict[str, np.ndarray] = {}
        for layer in sorted({int(n.split(".")[2]) for n in shapes if n.startswith("model.layers.")}):
            # 21 real layers for 22: the last reuses layer 0's matrices with the other block order.
            tensors.update(_layer_tensors(layer, layers[layer % len(layers)], layer // len(layers)))
        if "model.embed_tokens.weight" in shapes:
            e5 = extra["intfloat/multilingual-e5-small"][:VOCAB]
            tensors["model.embed_tokens.weight"] = _tiled(e5, (VOCAB, HIDDEN), embedding=True)
        if "lm_head.weight" in shapes:
            tensors["lm_head.weight"] = _tiled(extra[MINILM], (VOCAB, HIDDEN))
            norm = extra["intfloat/multilingual-e5-small:norm"]
            tensors["model.norm.weight"] = np.resize(norm, (HIDDEN,)).astype(BF16)
        total += write_safetensors(dst / shard, tensors, dtypes="BF16", metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(tensors, shard))
        del tensors  # one shard in memory at a time (~1.1 GB plus the writer's copies)
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    (dst / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": HIDDEN,
        "intermediate_size": INTERMEDIATE,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "vocab_size": VOCAB,
        "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-5,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
    }
    (dst / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (dst / "README.md").write_text(
        "---\nlicense: apache-2.0\ntags: [synthetic]\n---\n"
        "Synthetic TinyLlama-shaped checkpoint for bench/reading.py: every matrix is tiled from "
        "real all-MiniLM-L6-v2, multilingual-e5-small and paraphrase-MiniLM-L3-v2 blocks.\n"
    )


def prepare_models(quick: bool) -> list[str]:
    """Build the demo hub (and, unless quick, the 2.2 GB checkpoint) under HUB_ROOT; the repos to bench."""
    build_testbed(HUB_ROOT, default_cache())
    ensure_scaled(HUB_ROOT)
    if quick:
        return [MINILM, *SCALED]
    ensure_synthetic(HUB_ROOT)
    return [*REAL_MODELS, *SCALED, SYNTHETIC]


def ensure_scaled(root: Path) -> None:
    """Build the scaled-format copies of all-MiniLM-L6-v2 that are missing."""
    for repo_id, scheme in zip(SCALED, scaled_quant.SCHEMES, strict=True):
        build_once(root, repo_id, partial(_scaled_copy, root / MINILM, scheme=scheme))


def _scaled_copy(src: Path, dst: Path, scheme: str) -> Path:
    return scaled_quant.quantised_repo(src, dst, scheme, MINILM)


def ensure_synthetic(root: Path) -> Path:
    """Build ``root/bench/llama-tiled-1b`` unless a complete copy is there; returns its folder."""
    dst = root / SYNTHETIC
    if dst.is_dir() and not _synthetic_complete(dst):
        shutil.rmtree(dst)
    if build_once(root, SYNTHETIC, lambda tmp: _write_synthetic(root, tmp)):
        print(f"bench: built {SYNTHETIC}", file=sys.stderr)
    return dst


# ---------------------------------------------------------------- measurement


@dataclass
class Run:
    """One way of reading one model, as the server counted it."""

    mode: str
    seconds: float
    wire_bytes: int  # every body byte FakeHub sent for this model (model info, tokenizer, weights)
    weight_bytes: int  # bytes of the weight files alone
    requests: int  # model-info + every file request
    weight_requests: int
    header_requests: int
    outcome: ModelOutcome
    r: tuple[float, float, float] | None = None  # sigma profile, col norms, embedding dim std
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def row(self) -> dict[str, Any]:
        """The model row the fingerprint produced."""
        assert self.outcome.model_row is not None, self.outcome.errors
        return self.outcome.model_row


def data_starts(folder: Path, names: Sequence[str]) -> dict[str, int]:
    """Offset where tensor data begins in each weight file: a request starting before it reads the header."""
    out = {}
    for name in names:
        with LocalFile(folder / name, "local") as f:
            header = checkpoint.read_header(f, Settings())
        out[name] = min(t.start for t in header.tensors)
    return out


def _range_begin(record: RequestRecord) -> int:
    if not record.range:
        return 0
    return int(record.range.removeprefix("bytes=").split("-")[0])


def count(records: list[RequestRecord], starts: dict[str, int]) -> dict[str, int]:
    """Bytes and requests from FakeHub's log, split into weight files and header reads."""
    weights = [r for r in records if r.filename in starts]
    return {
        "wire_bytes": sum(r.bytes_sent for r in records),
        "weight_bytes": sum(r.bytes_sent for r in weights),
        "requests": len(records),
        "weight_requests": len(weights),
        "header_requests": sum(1 for r in weights if _range_begin(r) < starts[r.filename]),
    }


def _checked(outcome: ModelOutcome, what: str) -> ModelOutcome:
    if not outcome.ok:
        raise SystemExit(f"bench: {what} failed: {'; '.join(map(str, outcome.errors))}")
    return outcome


def measure_remote(
    hub: FakeHub, settings: Settings, repo_id: str, starts: dict[str, int], mode: str, reps: int
) -> Run:
    """resolve + fingerprint through the Hub path; median wall time of ``reps``, counts of the last."""
    http = HubHttp(settings)
    times, outcome = [], None
    for _ in range(reps):
        hub.log.clear()
        started = time.perf_counter()
        outcome = _checked(fingerprint_model(resolve(http, repo_id), settings, http), f"{repo_id} {mode}")
        times.append(time.perf_counter() - started)
    assert outcome is not None
    return Run(mode, statistics.median(times), outcome=outcome, **count(hub.log.snapshot(), starts))


def _download(url: str, dst: Path) -> None:
    # No proxy handler: a loopback GET must not detour through an http_proxy from the environment.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=60) as response, dst.open("wb") as f:
        shutil.copyfileobj(response, f, 1 << 20)


def measure_naive(hub: FakeHub, settings: Settings, repo_id: str, starts: dict[str, int]) -> Run:
    """Download each weight file with one plain GET, then fingerprint the local copy exactly."""
    http = HubHttp(settings)
    hub.log.clear()
    started = time.perf_counter()
    ref = resolve(http, repo_id)
    _, files = select_weight_files(ref)
    wanted = [f.name for f in files] + [n for n in ("config.json", "tokenizer.json") if ref.file(n)]
    with tempfile.TemporaryDirectory(prefix="hubscan-bench-") as tmp:
        folder = Path(tmp) / repo_id
        folder.mkdir(parents=True)
        for name in wanted:
            _download(http.resolve_url(ref.repo_id, ref.revision, name), folder / name)
        outcome = fingerprint_model(local_model(folder, repo_id), settings.with_(exact=True))
    seconds = time.perf_counter() - started
    return Run(
        "naive", seconds, outcome=_checked(outcome, f"{repo_id} naive"), **count(hub.log.snapshot(), starts)
    )


def pearson(a: Sequence[float], b: Sequence[float]) -> float:
    """Pearson r; NaN when either side is constant or shorter than 2."""
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if x.size < 2 or x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def fidelity(sampled: list[dict[str, Any]], exact: list[dict[str, Any]]) -> tuple[float, float, float]:
    """(σ-profile r, input-matrix column-norm r, word-embedding dim-std r), matched by tensor name."""
    ref = {r["name"]: r for r in exact}
    pairs = [(r, ref[r["name"]]) for r in sorted(sampled, key=lambda r: r["name"]) if r["name"] in ref]
    pairs = [(s, e) for s, e in pairs if s["kind"] == "weight"]
    sigma = [(s["std"], e["std"]) for s, e in pairs if s["role"] in SIGMA_ROLES]
    cols: tuple[list[float], list[float]] = ([], [])
    dims: tuple[list[float], list[float]] = ([], [])
    for s, e in pairs:
        if s["role"] in INPUT_ROLES and not s["transposed"] and len(s["col_norms"]) == len(e["col_norms"]):
            cols[0].extend(s["col_norms"])
            cols[1].extend(e["col_norms"])
        if s["role"] == "embed":
            dims[0].extend(s["dim_std"])
            dims[1].extend(e["dim_std"])
    return (pearson(*zip(*sigma, strict=True)) if sigma else float("nan"), pearson(*cols), pearson(*dims))


def bench_model(hub: FakeHub, repo_id: str) -> dict[str, Run]:
    """Every mode for one model; the first resolve also warms FakeHub's content-hash cache."""
    base = Settings(endpoint=hub.url)
    names = [f.name for f in select_weight_files(local_model(HUB_ROOT / repo_id, repo_id))[1]]
    starts = data_starts(HUB_ROOT / repo_id, names)
    resolve(HubHttp(base), repo_id)
    runs = {
        "sampled": measure_remote(hub, base, repo_id, starts, "sampled", SAMPLED_REPS),
        "dense": measure_remote(hub, base.with_(**DENSE), repo_id, starts, "dense", SAMPLED_REPS),
        "exact": measure_remote(hub, base.with_(exact=True), repo_id, starts, "exact", 1),
        "naive": measure_naive(hub, base, repo_id, starts),
    }
    exact_rows = runs["exact"].outcome.tensor_rows
    for mode in ("sampled", "dense"):
        runs[mode].r = fidelity(runs[mode].outcome.tensor_rows, exact_rows)
    for run in runs.values():
        run.extra["shards"] = len(names)
    return runs


def bench_latency(hub: FakeHub, repo_id: str) -> list[tuple[float, Run]]:
    """The sampled read with 0 ms and 50 ms added to every request by the server."""
    base = Settings(endpoint=hub.url)
    names = [f.name for f in select_weight_files(local_model(HUB_ROOT / repo_id, repo_id))[1]]
    starts = data_starts(HUB_ROOT / repo_id, names)
    out = []
    for latency in (0.0, LATENCY_S):
        hub.latency = latency
        out.append((latency, measure_remote(hub, base, repo_id, starts, "sampled", SAMPLED_REPS)))
    hub.latency = 0.0
    return out


# ---------------------------------------------------------------- report


def _mb(n: float) -> str:
    return f"{n / 1e6:,.2f}"


def _r(x: float) -> str:
    return "—" if np.isnan(x) else f"{x:.4f}"


def _table(header: Sequence[str], rows: list[Sequence[str]], left: int = 0) -> str:
    """Plain-text table: the first ``left`` columns are text (left-aligned), the rest numbers."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            str(c).ljust(w) if i < left else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *map(line, rows)])


def report(results: dict[str, dict[str, Run]]) -> list[str]:
    """The main table's rows: one per model and mode."""
    rows: list[Sequence[str]] = []
    for repo_id, runs in results.items():
        size = runs["exact"].row["checkpoint_bytes"]
        layers = runs["exact"].row["layers"] or 1
        shards = runs["exact"].extra["shards"]
        for mode, run in runs.items():
            body_reqs = run.weight_requests - run.header_requests
            r = run.r or (float("nan"),) * 3
            rows.append(
                (
                    repo_id if mode == "sampled" else "",
                    _mb(size) if mode == "sampled" else "",
                    mode,
                    f"{run.seconds:.2f}",
                    _mb(run.wire_bytes),
                    _mb(run.row["bytes_read"]),
                    f"{100 * run.wire_bytes / size:.3f}",
                    str(run.requests),
                    f"{run.header_requests / shards:.1f}",
                    f"{body_reqs / layers:.1f}",
                    *map(_r, r),
                    f"{runs['naive'].seconds / run.seconds:.1f}",
                    f"{runs['exact'].seconds / run.seconds:.1f}",
                )
            )
    header = (
        "model", "ckpt MB", "mode", "wall s", "wire MB", "row MB", "wire %", "reqs", "hdr/shard",
        "reqs/layer", "r σ", "r cols", "r dim", "naive÷t", "exact÷t",
    )  # fmt: skip
    return [_table(header, rows, left=3)]


def verdicts(results: dict[str, dict[str, Run]]) -> list[str]:
    """PASS/MISS against each target, with the number it was judged on."""
    out = []
    for repo_id, runs in results.items():
        s = runs["sampled"]
        size, layers = s.row["checkpoint_bytes"], s.row["layers"] or 1
        shards = s.extra["shards"]
        pct = 100 * s.wire_bytes / size
        checks: list[tuple[str, bool | None, str]] = [
            ("bytes ≤ 0.2 %", pct <= BYTES_TARGET_PCT if size >= BIG_MODEL_BYTES else None, f"{pct:.3f} %"),
            (
                "≤ 3 req/layer + 1/shard header",
                (s.weight_requests - s.header_requests) / layers <= REQS_PER_LAYER_TARGET
                and s.header_requests <= shards,
                f"{(s.weight_requests - s.header_requests) / layers:.1f}/layer, {s.header_requests} hdr for {shards} shard(s)",
            ),
            (
                "σ-profile r ≥ 0.999",
                s.r is not None and s.r[0] >= SIGMA_R_TARGET,
                _r(s.r[0] if s.r else np.nan),
            ),
            (
                "≥ 20× faster than naive",
                runs["naive"].seconds / s.seconds >= NAIVE_SPEEDUP_TARGET
                if size >= BIG_MODEL_BYTES
                else None,
                f"{runs['naive'].seconds / s.seconds:.1f}×",
            ),
        ]
        for what, ok, value in checks:
            mark = "n/a " if ok is None else ("PASS" if ok else "MISS")
            note = " (target is for ≥ 1 GB; shown for the curve)" if ok is None else ""
            out.append(f"  {mark}  {repo_id:45s} {what:32s} {value}{note}")
    return out


def latency_table(repo_id: str, runs: list[tuple[float, Run]]) -> str:
    """Wall time of the sampled read with and without injected per-request latency."""
    rows = [
        (
            f"{1000 * lat:.0f}",
            f"{run.seconds:.2f}",
            str(run.requests),
            f"{run.requests * lat:.2f}",
            f"{(run.requests * lat) / max(run.seconds, 1e-9):.1f}" if lat else "—",
        )
        for lat, run in runs
    ]
    header = ("latency ms", "wall s", "reqs", "serial wait s", "hidden ×")
    return f"sampled read of {repo_id}, median of {SAMPLED_REPS}\n" + _table(header, rows)


def bench_formats(root: Path = FORMATS_ROOT) -> str:
    """Bytes and requests of one model in every quantised layout, sampled and exact, as FakeHub counted them."""
    minilm = quant_zoo.minilm_repo(root, default_cache())
    repos = [MINILM] + [
        quant_zoo.quantised(root, minilm, layout).relative_to(root).as_posix() for layout in quant_zoo.LAYOUTS
    ]
    rows: list[Sequence[str]] = []
    with FakeHub(root) as hub:
        base = Settings(endpoint=hub.url)
        for repo_id in repos:
            print(f"bench: {repo_id}", file=sys.stderr)
            names = [f.name for f in select_weight_files(local_model(root / repo_id, repo_id))[1]]
            starts = data_starts(root / repo_id, names)
            resolve(HubHttp(base), repo_id)
            sampled = measure_remote(hub, base, repo_id, starts, "sampled", 1)
            exact = measure_remote(hub, base.with_(exact=True), repo_id, starts, "exact", 1)
            size = sampled.row["checkpoint_bytes"]
            rows.append(
                (
                    repo_id.removeprefix("demohub/all-MiniLM-L6-v2-") if repo_id != MINILM else "F32 (base)",
                    sampled.row["dtype"],
                    _mb(size),
                    _mb(sampled.row["bytes_read"]),
                    f"{100 * sampled.row['bytes_read'] / size:.1f}",
                    str(sampled.weight_requests),
                    str(sampled.header_requests),
                    _mb(exact.row["bytes_read"]),
                    str(exact.weight_requests),
                )
            )
    header = (
        "layout",
        "model dtype",
        "ckpt MB",
        "sampled MB",
        "sampled %",
        "reqs",
        "hdr reqs",
        "exact MB",
        "exact reqs",
    )
    return (
        "all-MiniLM-L6-v2 in each quantised layout (FakeHub on 127.0.0.1; reqs = weight-file requests,\n"
        "hdr reqs = those starting before the tensor data; a bitsandbytes 4-bit state whose shape the\n"
        "layer's role does not fix costs one more request with the header)\n" + _table(header, rows, left=2)
    )


def main(argv: list[str] | None = None) -> int:
    """Build what is missing, serve it, measure every model and print the tables."""
    parser = argparse.ArgumentParser(prog="python -m bench.reading", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="all-MiniLM-L6-v2 and its scaled copies only, no 1 GB checkpoint"
    )
    parser.add_argument(
        "--formats", action="store_true", help="one model in every quantised layout, nothing else"
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if args.formats:
        print(bench_formats())
        print(f"\ntotal bench time {time.perf_counter() - started:.0f} s")
        return 0
    models = prepare_models(args.quick)
    results: dict[str, dict[str, Run]] = {}
    with FakeHub(HUB_ROOT) as hub:
        for repo_id in models:
            print(f"bench: {repo_id}", file=sys.stderr)
            results[repo_id] = bench_model(hub, repo_id)
        latency_model = SYNTHETIC if SYNTHETIC in models else MINILM
        latency = bench_latency(hub, latency_model)
    print(
        "hubscan reading benchmark — FakeHub on 127.0.0.1 serving real checkpoints; "
        f"sampled/dense: median of {SAMPLED_REPS}, exact/naive: 1 run\n"
        "  sampled = default Settings; dense = matrix_blocks=32, rows_per_block=2; exact = Settings(exact=True);\n"
        "  naive = one GET per weight file (+config/tokenizer) to a temp folder, then exact local fingerprint.\n"
        "  wire = body bytes FakeHub sent (model info, tokenizer, weights); row = model_row bytes_read (weights);\n"
        "  wire % = wire / checkpoint; reqs = model info + every file request; hdr/shard = requests that touch\n"
        "  a weight file's header; reqs/layer = (weight-file requests - header requests) / layers;\n"
        "  r = Pearson vs exact: σ of attn q/k/v/o over layers, column norms of attn/mlp input matrices,\n"
        "  per-dimension std of the word embedding; naive÷t, exact÷t = that mode's time / this row's time.\n"
        f"  {SYNTHETIC}: TinyLlama-shaped ({LAYERS} layers, hidden {HIDDEN}, BF16, {len(SHARDS)} shards, "
        "no tokenizer), every matrix tiled from real MiniLM-L6 / e5-small / MiniLM-L3 layers.\n"
    )
    print("\n".join(report(results)))
    print("\ntargets (default sampled mode):")
    print("\n".join(verdicts(results)))
    print()
    print(latency_table(latency_model, latency))
    print(f"\ntotal bench time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    titles = {"--formats": "Reading: quantised layouts", "--quick": "Reading: MiniLM and its copies (quick)"}
    with recorded(
        next((t for o, t in titles.items() if o in sys.argv), "Reading: sampled, dense, exact, naive")
    ):
        raise SystemExit(main())
