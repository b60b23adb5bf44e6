"""Synthetic fingerprint tables of model families, to time `hubscan flag` at scale (used by bench.detection).

A hub is mostly unrelated models with a few large families. Each model lands in a comparability
block (hidden size and depth: several blocks of different sizes, or one block, the worst case for
candidate generation) and either starts a family (a base, ``FAMILY_START`` of models) or joins one
of its block, picked in proportion to family size (a Yule process, as popular bases collect
derivatives), up to ``FAMILY_CAP`` members. A derivative is made from its family's base: a cast
(0.2 % noise), a quantisation (1 %), a fine-tune (5 %) or a cousin (per-dimension statistics shared
at r ~ 0.9, matrices independent). Every run happens in its own process, so peak memory (max RSS)
belongs to one alternative only.
"""

from __future__ import annotations

import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from hubscan.pipeline.storage.parquet import Store
from hubscan.pipeline.storage.schema import MODELS, TENSORS

SKETCH, TOKENS = 256, 32
MATRICES = ("attn_q", "attn_k", "attn_v", "attn_o", "mlp_up", "mlp_down")
INPUT_ROLES = ("attn_q", "attn_k", "attn_v", "mlp_up")
# (hidden, layers, share of models): a few architectures hold most of a hub, with a long tail.
MIXED_BLOCKS = ((64, 4, 0.45), (96, 4, 0.25), (128, 6, 0.15), (48, 3, 0.10), (80, 2, 0.05))
ONE_BLOCK = ((64, 4, 1.0),)
LAYOUTS = {"mixed": MIXED_BLOCKS, "one": ONE_BLOCK}
CHUNK = 2000  # models per Parquet file
FAMILY_START = 0.6  # share of models that start a family (most stay singletons)
FAMILY_CAP = 32  # derivatives of one base per block, so family pairs stay ~linear in the hub
KINDS = (("cast", 0.25), ("quantised", 0.15), ("fine-tune", 0.35), ("cousin", 0.25))
NOISE = {"cast": 0.002, "quantised": 0.01, "fine-tune": 0.05}
Fingerprint = dict[str, np.ndarray]


def _base(rng: np.random.Generator, hidden: int, layers: int) -> Fingerprint:
    return {
        "gain": 1 + 0.2 * rng.standard_normal(hidden),
        "dim_std": np.exp(0.3 * rng.standard_normal(hidden)),
        "cols": np.exp(0.3 * rng.standard_normal((layers, len(INPUT_ROLES), hidden))),
        "sketch": rng.standard_normal((layers, len(MATRICES), SKETCH)),
        "std": 0.05 * np.exp(0.2 * rng.standard_normal((layers, len(MATRICES)))),
        "tokens": rng.standard_normal((TOKENS, hidden)),
        "norms": 1 + 0.1 * rng.standard_normal((layers, hidden)),
    }


def _derive(base: Fingerprint, kind: str, rng: np.random.Generator) -> Fingerprint:
    def noisy(x: np.ndarray, rel: float) -> np.ndarray:
        return x * (1 + rel * rng.standard_normal(x.shape))

    if kind in NOISE:
        return {k: noisy(v, NOISE[kind]) for k, v in base.items()}
    layers, hidden = base["norms"].shape
    fresh = _base(rng, hidden, layers)  # cousin: shared per-dimension statistics, independent matrices
    return {
        **fresh,
        "gain": 1 + (base["gain"] - 1) * np.exp(0.15 * rng.standard_normal(hidden)),
        "dim_std": noisy(base["dim_std"], 0.15),
        "cols": noisy(base["cols"], 0.15),
        "tokens": base["tokens"] + 0.55 * rng.standard_normal(base["tokens"].shape),
    }


def assign(n: int, blocks: tuple[tuple[int, int, float], ...], seed: int) -> list[tuple[int, int, str]]:
    """(block, family, kind) of each model; kind 'base' starts the family."""
    rng = random.Random(seed)
    shares = [s for _, _, s in blocks]
    weights = [w for _, w in KINDS]
    members: list[list[int]] = [[] for _ in blocks]  # family of each model so far, per block
    sizes: list[int] = []
    out = []
    for _ in range(n):
        b = rng.choices(range(len(blocks)), shares)[0]
        family = rng.choice(members[b]) if members[b] and rng.random() > FAMILY_START else -1
        if family < 0 or sizes[family] >= FAMILY_CAP:
            family, kind = len(sizes), "base"
            sizes.append(0)
        else:
            kind = rng.choices([k for k, _ in KINDS], weights)[0]
        sizes[family] += 1
        members[b].append(family)
        out.append((b, family, kind))
    return out


def _list_column(items: list[np.ndarray | None]) -> pa.Array:
    """A list<float> column from numpy vectors (None = null) without going through Python floats."""
    lengths = np.array([0 if x is None else x.size for x in items], dtype=np.int32)
    offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int32)])
    flat = [x.ravel() for x in items if x is not None]
    values = np.concatenate(flat).astype(np.float32) if flat else np.zeros(0, np.float32)
    mask = pa.array([x is None for x in items])
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, pa.float32()), mask=mask)


def _tensor_rows(repo: str, fp: Fingerprint, dtype: str, cols: dict[str, list[Any]]) -> None:
    """Append one model's tensor rows to column lists (the layout the readers write)."""
    layers, hidden = fp["norms"].shape

    def add(name: str, role: str, layer: int | None, shape: list[int], **vals: Any) -> None:
        row = {"repo_id": repo, "name": name, "role": role, "layer": layer, "shape": shape, "dtype": dtype,
               "std": vals.pop("std", None), **vals}  # fmt: skip
        for c in cols:
            cols[c].append(row.get(c))

    add("embed", "embed", None, [1000, hidden], dim_std=fp["dim_std"], token_vectors=fp["tokens"], std=1.0,
        tokens=[f"tok{i}" for i in range(TOKENS)])  # fmt: skip
    add("embed_norm", "embed_norm", None, [hidden], values=fp["gain"])
    for layer in range(layers):
        add(f"l{layer}.norm", "attn_norm", layer, [hidden], values=fp["norms"][layer])
        for j, role in enumerate(MATRICES):
            col = fp["cols"][layer, INPUT_ROLES.index(role)] if role in INPUT_ROLES else None
            add(f"l{layer}.{role}", role, layer, [hidden, hidden], sketch=fp["sketch"][layer, j],
                std=float(fp["std"][layer, j]), col_norms=col)  # fmt: skip


def _tensor_table(cols: dict[str, list[Any]]) -> pa.Table:
    n = len(cols["repo_id"])
    arrays = {
        "repo_id": pa.array(cols["repo_id"]),
        "revision": pa.array(["r0"] * n),
        "file": pa.array(["model.safetensors"] * n),
        "name": pa.array(cols["name"]),
        "role": pa.array(cols["role"]),
        "layer": pa.array(cols["layer"], pa.int64()),
        "kind": pa.array(["weight"] * n),
        "transposed": pa.array([False] * n),
        "dtype": pa.array(cols["dtype"]),
        "shape": pa.array(cols["shape"], pa.list_(pa.int64())),
        "sampled": pa.array([True] * n),
        "std": pa.array(cols["std"], pa.float64()),
        "tokens": pa.array(cols["tokens"], pa.list_(pa.string())),
        **{c: _list_column(cols[c]) for c in ("sketch", "col_norms", "dim_std", "values", "token_vectors")},
    }
    return pa.table([arrays.get(f.name, pa.nulls(n, f.type)) for f in TENSORS], schema=TENSORS)


def build_store(root: Path, n: int, layout: str = "mixed", seed: int = 0) -> dict[frozenset[str], str]:
    """Write ``n`` synthetic models into a store at ``root``; returns the truly related pairs and their kind.

    A pair's kind is the derivative's kind when the other model is the base, else 'siblings'.
    """
    blocks = LAYOUTS[layout]
    store = Store(root).init()
    plan = assign(n, blocks, seed)
    family_members: dict[int, list[tuple[str, str]]] = {}
    models: list[dict[str, Any]] = []
    cols: dict[str, list[Any]] = {c: [] for c in ("repo_id", "name", "role", "layer", "shape", "dtype", "std",
                                                  "tokens", "sketch", "col_norms", "dim_std", "values",
                                                  "token_vectors")}  # fmt: skip
    for i, (b, family, kind) in enumerate(plan):
        hidden, layers, _ = blocks[b]
        repo = f"syn/m{i:06d}"
        # a family's base is regenerated from its seed, so no fingerprint is held beyond its chunk
        fp = _base(np.random.default_rng([seed, family]), hidden, layers)
        if kind != "base":
            fp = _derive(fp, kind, np.random.default_rng([seed, family, i]))
        dtype = {"cast": "BF16", "quantised": "Q8_0"}.get(kind, "F32")
        _tensor_rows(repo, fp, dtype, cols)
        models.append({"repo_id": repo, "revision": "r0", "architecture": f"synthetic-{hidden}", "layers": layers,
                       "hidden": hidden, "dtype": dtype, "base_models": []})  # fmt: skip
        family_members.setdefault(family, []).append((repo, kind))
        if len(models) == CHUNK or i == n - 1:
            name = f"chunk{i // CHUNK:05d}.parquet"
            store.write(f"tensors/{name}", _tensor_table(cols))
            store.write(f"models/{name}", pa.Table.from_pylist(models, MODELS))
            models = []
            cols = {c: [] for c in cols}
    truth: dict[frozenset[str], str] = {}
    for fam in family_members.values():
        for j, (a, ka) in enumerate(fam):
            for bb, kb in fam[j + 1 :]:
                truth[frozenset((a, bb))] = kb if ka == "base" else "siblings"
    return truth


def _one(store: str, mode: str, extra_path: str) -> None:
    """Child process: flag the store, print seconds, peak RSS, candidates and the flagged pairs as JSON.

    mode 'lsh' is `hubscan flag`; 'exhaustive' scores every pair; 'strata' scores the LSH candidates
    plus the pairs in ``extra_path`` (every family pair and a random sample of the rest), with the
    same backgrounds and test count as the LSH run.
    """
    from hubscan.pipeline.config import Settings
    from hubscan.pipeline.flagging import engine as flag
    from hubscan.pipeline.flagging import signal_sql

    t0 = time.perf_counter()
    if mode == "exhaustive":
        # the exhaustive baseline needs more than the production limit (500k pairs at 1000 models)
        signal_sql.DUCKDB_MEMORY_LIMIT = "8GB"
        rows = flag.run(Settings(store=store), exhaustive_max=10**9).rows
    elif mode == "strata":
        extra = [tuple(k) for k in json.loads(Path(extra_path).read_text())]
        st = Store(Path(store)).init()
        rows, _ = flag.all_units(
            flag.score_units(
                flag.flag_connection(st), st, flag.Scope(exhaustive_max=0, focus=flag.Focus(tuple(extra)))
            )
        )
    else:
        rows = flag.run(Settings(store=store), exhaustive_max=0).rows
    seconds = time.perf_counter() - t0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {
        "seconds": seconds,
        "rss_mb": rss_mb,
        "candidates": len(rows),
        "via": Counter(r.get("via") for r in rows),
        "flagged": [[r["a_repo_id"], r["b_repo_id"]] for r in rows if r["flagged"]],
        "scored": [[r["a_repo_id"], r["b_repo_id"]] for r in rows] if mode == "strata" else [],
    }
    print(json.dumps(out))


def _run(store: Path, mode: str, extra: Path | None = None) -> dict[str, Any]:
    out = subprocess.run(
        ["nice", "-n", "5", sys.executable, "-m", "bench.detection_synth", str(store), mode, str(extra or "")],
        capture_output=True, text=True,
    )  # fmt: skip
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": last[:100]}
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _strata_pairs(truth: dict[frozenset[str], str], n: int, sample: int, seed: int) -> list[list[str]]:
    """Every family pair and ``sample`` random model pairs, as (a, rev, b, rev) in pair order."""
    rng = random.Random(seed)
    pairs = {tuple(sorted(p)) for p in truth}
    while len(pairs) < len(truth) + sample:
        i, j = rng.sample(range(n), 2)
        pairs.add(tuple(sorted((f"syn/m{i:06d}", f"syn/m{j:06d}"))))
    return [[a, "r0", b, "r0"] for a, b in sorted(pairs)]


def scale_table(
    sizes: list[int], layouts: tuple[str, ...] = ("mixed", "one"), exhaustive_up_to: int = 1000,
    strata_up_to: int = 10000, strata_sample: int = 100_000,
) -> Iterator[str]:  # fmt: skip
    """LSH candidates vs exhaustive (or stratified) scoring per store size: time, memory, candidates, recall.

    Lines are yielded as each size finishes (100k models take minutes).
    """
    yield from [
        "synthetic hubs: 'mixed' = 5 blocks (hidden 64/96/128/48/80, 45/25/15/10/5 %), 'one' = a single block",
        f"{'models':>7s} {'layout':>6s} {'method':>10s} {'seconds':>8s} {'peak MB':>8s} {'candidates':>10s} "
        f"{'flagged':>8s} {'recall/exh':>10s} {'recall/true':>11s} {'true pairs':>10s}  true-pair recall by kind",
    ]
    for n in sizes:
        for layout in layouts:
            with tempfile.TemporaryDirectory() as tmp:
                store = Path(tmp) / "store"
                truth = build_store(store, n, layout)
                runs = {"lsh": _run(store, "lsh")}
                if n <= exhaustive_up_to:
                    runs["exhaustive"] = _run(store, "exhaustive")
                elif n <= strata_up_to:
                    extra = Path(tmp) / "extra.json"
                    extra.write_text(json.dumps(_strata_pairs(truth, n, strata_sample, n)))
                    runs["strata"] = _run(store, "strata", extra)
            yield from _rows(n, layout, runs, truth)


def _rows(
    n: int, layout: str, runs: dict[str, dict[str, Any]], truth: dict[frozenset[str], str]
) -> list[str]:
    ref_run = runs.get("exhaustive") or runs.get("strata") or {}
    ref = {frozenset(p) for p in ref_run["flagged"]} if "flagged" in ref_run else None
    lines = []
    for method, res in runs.items():
        if "error" in res:
            lines.append(f"{n:7d} {layout:>6s} {method:>10s} failed: {res['error']}")
            continue
        found = {frozenset(p) for p in res["flagged"]}
        rec_ref = f"{len(found & ref) / max(1, len(ref)):.4f}" if ref is not None else "-"
        by_kind: dict[str, list[int]] = {}
        for pair, kind in truth.items():
            by_kind.setdefault(kind, [0, 0])[0] += pair in found
            by_kind[kind][1] += 1
        kinds = " ".join(f"{k} {h / t:.3f}" for k, (h, t) in sorted(by_kind.items()))
        lines.append(
            f"{n:7d} {layout:>6s} {method:>10s} {res['seconds']:8.1f} {res['rss_mb']:8.0f} {res['candidates']:10d} "
            f"{len(found):8d} {rec_ref:>10s} {len(found & truth.keys()) / max(1, len(truth)):11.4f} "
            f"{len(truth):10d}  {kinds}"
        )
    return lines


if __name__ == "__main__":
    _one(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "")
