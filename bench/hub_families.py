"""Hub-shaped synthetic blocks: Zipf family sizes, derivatives of derivatives, independents of one shape.

bench/detection_synth.py caps families at 32 members; the Hub does not (a popular base has thousands of
derivatives). Here every model of a block has one shape (Llama layout: no embedding LayerNorm, gated MLP,
RMS norms; hidden and depth given), and a family grows as a tree: each new member derives from the base
(``TO_BASE`` of them) or from an earlier member chosen at random, with a fine-tune's drift drawn
log-uniform in ``DRIFT`` per hop. A model's fingerprint is rebuilt from its family seed along its chain of
parents, so no fingerprint is held beyond its Parquet chunk.

`python -m bench.hub_families 101,401,10000` times `hubscan flag` per block (each run its own process, so
peak memory is one run's) and reports pairs per model and family-membership recall against the truth;
`python -m bench.hub_families --grow 10000,500` times `flag --incremental` after 500 models are added;
`python -m bench.hub_families --scale 10000,100000,300000` runs the sizes side by side and projects 1M.
"""

from __future__ import annotations

import json
import math
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from bench.detection_synth import _tensor_table
from bench.results import recorded
from hubscan.pipeline.storage.parquet import Store
from hubscan.pipeline.storage.schema import MODELS

SKETCH, TOKENS = 256, 32
LLAMA_MATRICES = ("attn_q", "attn_k", "attn_v", "attn_o", "mlp_gate", "mlp_up", "mlp_down")
INPUT_ROLES = ("attn_q", "attn_k", "attn_v", "mlp_gate", "mlp_up")
# Relative drift of one fine-tune hop, drawn log-uniform: 0.3 % (a short LoRA merge) to 8 % (a long run).
DRIFT = (0.003, 0.08)
# Share of a family's derivatives made from its base; the rest from an earlier member (chains).
TO_BASE = 0.6
CHUNK = 2000  # models per Parquet file


@dataclass(frozen=True)
class Planned:
    """One synthetic model: its family, its parent (index into the plan; None for a base) and its drift."""

    repo_id: str
    family: int
    parent: int | None
    drift: float


def plan_block(sizes: list[int], seed: int) -> list[Planned]:
    """Models of families of the given sizes (size 1: an independent model), members as trees."""
    rng = random.Random(seed)
    plan: list[Planned] = []
    for family, size in enumerate(sizes):
        members: list[int] = []
        for _ in range(size):
            parent = None
            if members:
                parent = members[0] if rng.random() < TO_BASE else rng.choice(members)
            drift = math.exp(rng.uniform(math.log(DRIFT[0]), math.log(DRIFT[1])))
            members.append(len(plan))
            plan.append(Planned(f"fam/m{len(plan):06d}", family, parent, drift))
    # interleaved, as a hub lists models, so no chunk or order holds one family
    order = list(range(len(plan)))
    rng.shuffle(order)
    new_index = {old: new for new, old in enumerate(order)}
    return [
        Planned(f"fam/m{new_index[i]:06d}", plan[i].family,
                None if plan[i].parent is None else new_index[plan[i].parent], plan[i].drift)
        for i in order
    ]  # fmt: skip


def zipf_sizes(n: int, largest_share: float, family_share: float = 0.6) -> list[int]:
    """Family sizes summing to ``n``: the largest ``largest_share`` of the block, the k-th largest 1/k of it
    (Zipf, exponent 1) while families hold at most ``family_share`` of the block, the rest independent
    models (most Hub repos derive from no other stored model)."""
    largest = max(1, round(n * largest_share))
    sizes: list[int] = []
    k = 1
    while sum(sizes) < n * family_share and (size := largest // k) > 1:
        sizes.append(min(size, n - sum(sizes)))
        k += 1
    return sizes + [1] * (n - sum(sizes))


def _fingerprint(plan: list[Planned], i: int, hidden: int, layers: int, seed: int) -> dict[str, np.ndarray]:
    chain = []
    while plan[i].parent is not None:
        chain.append(i)
        i = plan[i].parent  # type: ignore[assignment]
    rng = np.random.default_rng([seed, plan[i].family])
    fp = {
        "dim_std": np.exp(0.3 * rng.standard_normal(hidden)),
        "cols": np.exp(0.3 * rng.standard_normal((layers, len(INPUT_ROLES), hidden))),
        "sketch": rng.standard_normal((layers, len(LLAMA_MATRICES), SKETCH)),
        "std": 0.05 * np.exp(0.2 * rng.standard_normal((layers, len(LLAMA_MATRICES)))),
        "tokens": rng.standard_normal((TOKENS, hidden)),
        "norms": 1 + 0.1 * rng.standard_normal((2 * layers + 1, hidden)),
    }
    for j in reversed(chain):  # from the base down, one hop of drift each
        hop = np.random.default_rng([seed, plan[j].family, j + 1])
        fp = {k: v * (1 + plan[j].drift * hop.standard_normal(v.shape)) for k, v in fp.items()}
    return fp


def _rows(repo: str, fp: dict[str, np.ndarray], cols: dict[str, list[Any]]) -> None:
    """One Llama-layout model's tensor rows, appended to column lists."""
    hidden = fp["dim_std"].shape[0]
    layers = fp["sketch"].shape[0]

    def add(name: str, role: str, layer: int | None, shape: list[int], **vals: Any) -> None:
        row = {"repo_id": repo, "name": name, "role": role, "layer": layer, "shape": shape, "dtype": "BF16",
               "std": vals.pop("std", None), **vals}  # fmt: skip
        for c in cols:
            cols[c].append(row.get(c))

    add("model.embed_tokens.weight", "embed", None, [1000, hidden], dim_std=fp["dim_std"], std=0.02,
        token_vectors=fp["tokens"], tokens=[f"tok{i}" for i in range(TOKENS)])  # fmt: skip
    for layer in range(layers):
        pre = f"model.layers.{layer}."
        norms = fp["norms"][2 * layer : 2 * layer + 2]
        add(pre + "input_layernorm.weight", "attn_norm", layer, [hidden], values=norms[0])
        add(pre + "post_attention_layernorm.weight", "mlp_norm", layer, [hidden], values=norms[1])
        for j, role in enumerate(LLAMA_MATRICES):
            col = fp["cols"][layer, INPUT_ROLES.index(role)] if role in INPUT_ROLES else None
            add(f"{pre}{role}.weight", role, layer, [hidden, hidden], sketch=fp["sketch"][layer, j],
                std=float(fp["std"][layer, j]), col_norms=col)  # fmt: skip
    add("model.norm.weight", "final_norm", None, [hidden], values=fp["norms"][-1])


def build_block(
    root: Path,
    sizes: list[int],
    hidden: int = 128,
    layers: int = 4,
    seed: int = 0,
    models: slice = slice(None),
    revision: str = "r0",
) -> list[Planned]:
    """Write one block of families of ``sizes`` into a store at ``root`` (only the ``models`` slice of the
    plan: a later call with the next slice adds the rest, as a later sweep would; another ``revision``
    stores them again as new revisions); returns the whole plan."""
    store = Store(root).init()
    plan = plan_block(sizes, seed)
    names = ("repo_id", "name", "role", "layer", "shape", "dtype", "std", "tokens", "sketch", "col_norms",
             "dim_std", "values", "token_vectors")  # fmt: skip
    cols: dict[str, list[Any]] = {c: [] for c in names}
    rows: list[dict[str, Any]] = []
    todo = range(len(plan))[models]
    for i in todo:
        planned = plan[i]
        _rows(planned.repo_id, _fingerprint(plan, i, hidden, layers, seed), cols)
        rows.append({"repo_id": planned.repo_id, "revision": revision, "architecture": "LlamaForCausalLM",
                     "layers": layers, "hidden": hidden, "dtype": "BF16", "base_models": [],
                     "fingerprinted_at": datetime.now(UTC)})  # fmt: skip
        if len(rows) == CHUNK or i == todo[-1]:
            name = f"chunk-{revision}-{i + 1 - len(rows):07d}.parquet"  # by its first model: slices never collide
            tensors = _tensor_table(cols)
            column = tensors.schema.get_field_index("revision")
            tensors = tensors.set_column(column, "revision", pa.array([revision] * tensors.num_rows))
            store.write(f"tensors/{name}", tensors)
            store.write(f"models/{name}", pa.Table.from_pylist(rows, MODELS))
            rows, cols = [], {c: [] for c in names}
    return plan


def truth_of(plan: list[Planned]) -> dict[str, int]:
    """Each repo's true family."""
    return {p.repo_id: p.family for p in plan}


def membership_recall(truth: dict[str, int], flagged: list[tuple[str, str]]) -> tuple[float, int]:
    """Share of models of true families (size >= 2) that land in their family's largest flagged component,
    and the number of flagged pairs joining two different true families."""
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in flagged:
        parent[root(a)] = root(b)
    by_family: dict[int, list[str]] = {}
    for repo, family in truth.items():
        by_family.setdefault(family, []).append(repo)
    placed = total = 0
    for members in by_family.values():
        if len(members) < 2:
            continue
        comps: dict[str, int] = {}
        for m in members:
            comps[root(m)] = comps.get(root(m), 0) + 1
        placed += max(comps.values())
        total += len(members)
    wrong = sum(truth[a] != truth[b] for a, b in flagged)
    return placed / max(1, total), wrong


def _one(store: str, incremental: bool = False) -> None:
    """Child process: flag the store; print seconds, peak RSS, pairs and the flagged pairs as JSON."""
    from hubscan.pipeline.config import Settings
    from hubscan.pipeline.flagging import engine as flag

    t0 = time.perf_counter()
    result = flag.run(Settings(store=store), incremental=incremental)
    seconds = time.perf_counter() - t0
    use = resource.getrusage(resource.RUSAGE_SELF)
    flagged = result.pairs.filter(result.pairs["flagged"]).select(["a_repo_id", "b_repo_id"]).to_pylist()
    via = result.pairs.column("via").value_counts().to_pylist()
    print(json.dumps({
        "seconds": seconds, "cpu": use.ru_utime + use.ru_stime, "rss_mb": use.ru_maxrss / 1024,
        "pairs": result.candidates, "via": {v["values"]: v["counts"] for v in via},
        "flagged": [[r["a_repo_id"], r["b_repo_id"]] for r in flagged],
    }))  # fmt: skip


def _run(store: Path, incremental: bool = False) -> dict[str, Any]:
    mode = "--incremental" if incremental else "--one"
    out = subprocess.run([sys.executable, "-m", "bench.hub_families", mode, str(store)],
                         capture_output=True, text=True)  # fmt: skip
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["no output"])[-1][:120]}
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def block_sizes(n: int) -> list[int]:
    """The done-when shape (85 % one family, the rest independent) up to 401; Zipf above."""
    if n <= 401:
        return [round(n * 0.85)] + [1] * (n - round(n * 0.85))
    return zipf_sizes(n, 0.2)


def measure(n: int) -> dict[str, Any]:
    """Build a block of ``n`` models in a temporary folder and flag it in a child process: its figures, with
    family recall and cross-family flags against the generator's truth."""
    with tempfile.TemporaryDirectory() as tmp:
        fam_sizes = block_sizes(n)
        truth = truth_of(build_block(Path(tmp) / "store", fam_sizes))
        res = _run(Path(tmp) / "store")
    if "error" not in res:
        flagged = res.pop("flagged")
        res["recall"], res["cross"] = membership_recall(truth, [tuple(p) for p in flagged])
        res["flagged"] = len(flagged)
    return {"models": n, "largest": max(fam_sizes), **res}


def table(sizes: list[int]) -> Iterator[str]:
    """One line per block size: flag's time and peak memory, pairs per model, recall, cross-family flags."""
    yield (f"{'models':>7s} {'largest':>7s} {'seconds':>8s} {'cpu s':>7s} {'cpu ms/model':>12s} {'peak MB':>8s} "
           f"{'KB/model':>8s} {'pairs':>8s} {'pairs/model':>11s} {'lsh':>7s} {'bkgd':>6s} {'exh':>7s} "
           f"{'flagged':>8s} {'recall':>7s} {'cross':>5s}")  # fmt: skip
    for n in sizes:
        yield line(measure(n))


def line(res: dict[str, Any]) -> str:
    """One measured block as a table line."""
    n = res["models"]
    if "error" in res:
        return f"{n:7d} failed: {res['error']}"
    via = res["via"]
    return (f"{n:7d} {res['largest']:7d} {res['seconds']:8.1f} {res['cpu']:7.1f} {1000 * res['cpu'] / n:12.2f} "
            f"{res['rss_mb']:8.0f} {1024 * res['rss_mb'] / n:8.1f} {res['pairs']:8d} {res['pairs'] / n:11.2f} "
            f"{via.get('lsh', 0):7d} {via.get('background', 0):6d} {via.get('exhaustive', 0):7d} "
            f"{res['flagged']:8d} {res['recall']:7.4f} {res['cross']:5d}")  # fmt: skip


# The 1M-model targets of `hubscan flag` (issue 21): an hour, and 8 GiB per process.
TARGET_MODELS, TARGET_SECONDS, TARGET_MB = 1_000_000, 3600.0, 8 * 1024.0


def scale_table(sizes: list[int]) -> Iterator[str]:
    """The block sizes in one run, side by side; then per-model growth from the smallest to each larger
    size and the 1M projection, a straight line through the two largest points (cost per added model)."""
    yield from table([])
    done = []
    for n in sizes:
        res = measure(n)
        yield line(res)
        if "error" not in res:
            done.append(res)
    if len(done) < 2:
        return
    first = done[0]
    for res in done[1:]:
        cpu = (res["cpu"] / res["models"]) / (first["cpu"] / first["models"])
        mem = (res["rss_mb"] / res["models"]) / (first["rss_mb"] / first["models"])
        yield (f"{first['models']:,} -> {res['models']:,} models: CPU per model x{cpu:.2f}, peak memory per model "
               f"x{mem:.2f}, wall per model x{(res['seconds'] / res['models']) / (first['seconds'] / first['models']):.2f}")  # fmt: skip
    lo, hi = done[-2], done[-1]
    span = hi["models"] - lo["models"]

    def at_target(key: str) -> float:
        return float(hi[key] + (hi[key] - lo[key]) / span * (TARGET_MODELS - hi["models"]))

    wall, cpu, peak = at_target("seconds"), at_target("cpu"), at_target("rss_mb")
    yield (f"1M projection (through {lo['models']:,} and {hi['models']:,}): {wall / 60:.0f} min wall, "
           f"{cpu / 60:.0f} min CPU, {peak / 1024:.1f} GB peak; targets {TARGET_SECONDS / 60:.0f} min, "
           f"{TARGET_MB / 1024:.0f} GiB per process")  # fmt: skip


def incremental_table(n: int, added: int) -> Iterator[str]:
    """A block of ``n`` models flagged without its last ``added``, which a later sweep brings: flag
    --incremental against a full flag of the grown block (wall and CPU seconds, pairs scored, recall)."""
    yield f"{'run':>22s} {'seconds':>8s} {'cpu s':>7s} {'scored':>8s} {'recall':>7s} {'cross':>5s}"
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        sizes = block_sizes(n)
        truth = truth_of(build_block(store, sizes, models=slice(0, n - added)))
        runs = {f"full, {n - added} models": _run(store)}
        build_block(store, sizes, models=slice(n - added, None))
        runs[f"incremental, +{added}"] = _run(store, incremental=True)
        runs[f"full, {n} models"] = _run(store)
    for name, res in runs.items():
        if "error" in res:
            yield f"{name:>22s} failed: {res['error']}"
            continue
        recall, cross = membership_recall(truth, [tuple(p) for p in res["flagged"]])
        yield f"{name:>22s} {res['seconds']:8.1f} {res['cpu']:7.1f} {res['pairs']:8d} {recall:7.4f} {cross:5d}"


if __name__ == "__main__":
    if sys.argv[1] in ("--one", "--incremental"):
        _one(sys.argv[2], incremental=sys.argv[1] == "--incremental")
    elif sys.argv[1] == "--scale":  # python -m bench.hub_families --scale 10000,100000,300000
        with recorded("Families at the Hub's shape, side by side towards 1M models"):
            for text in scale_table([int(x) for x in sys.argv[2].split(",")]):
                print(text, flush=True)
    elif sys.argv[1] == "--grow":  # python -m bench.hub_families --grow 10000,500
        with recorded("Incremental flag after a sweep grows a block"):
            for line in incremental_table(*(int(x) for x in sys.argv[2].split(","))):
                print(line, flush=True)
    else:
        with recorded("Families at the Hub's shape"):
            for line in table([int(x) for x in sys.argv[1].split(",")]):
                print(line, flush=True)
