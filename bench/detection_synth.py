"""Synthetic fingerprint tables of model families, to time `hubscan flag` at scale (used by bench.detection).

Each family is a base plus a random number of derivatives: BF16-like casts (0.2 % noise),
fine-tunes (5 % noise) and cousins (per-dimension statistics shared at r ~ 0.9, matrices
independent); most families are a single model. All models share one comparability block
(hidden 64, 4 layers), the worst case for candidate generation. Every run happens in its own
process so peak memory (max RSS) belongs to one alternative only.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from pipeline.storage.parquet import Store
from pipeline.storage.schema import MODELS, TENSORS

HIDDEN, LAYERS, SKETCH, TOKENS = 64, 4, 256, 32
MATRICES = ("attn_q", "attn_k", "attn_v", "attn_o", "mlp_up", "mlp_down")
INPUT_ROLES = ("attn_q", "attn_k", "attn_v", "mlp_up")
CHUNK = 1000  # models per Parquet file
# Share of models that start a family, and the derivative kinds with their weights.
FAMILY_START = 0.6
KINDS = (("cast", 0.3), ("fine-tune", 0.4), ("cousin", 0.3))


def _base(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "gain": 1 + 0.2 * rng.standard_normal(HIDDEN),
        "dim_std": np.exp(0.3 * rng.standard_normal(HIDDEN)),
        "cols": np.exp(0.3 * rng.standard_normal((LAYERS, len(INPUT_ROLES), HIDDEN))),
        "sketch": rng.standard_normal((LAYERS, len(MATRICES), SKETCH)),
        "std": 0.05 * np.exp(0.2 * rng.standard_normal((LAYERS, len(MATRICES)))),
        "tokens": rng.standard_normal((TOKENS, HIDDEN)),
        "norms": 1 + 0.1 * rng.standard_normal((LAYERS, HIDDEN)),
    }


def _derive(base: dict[str, np.ndarray], kind: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
    def noisy(x: np.ndarray, rel: float) -> np.ndarray:
        return x * (1 + rel * rng.standard_normal(x.shape))

    if kind == "cast":
        return {k: noisy(v, 0.002) for k, v in base.items()}
    if kind == "fine-tune":
        return {k: noisy(v, 0.05) for k, v in base.items()}
    fresh = _base(rng)  # cousin: shared per-dimension statistics, independent matrices
    return {
        **fresh,
        "gain": 1 + (base["gain"] - 1) * np.exp(0.15 * rng.standard_normal(HIDDEN)),
        "dim_std": noisy(base["dim_std"], 0.15),
        "cols": noisy(base["cols"], 0.15),
        "tokens": base["tokens"] + 0.55 * rng.standard_normal(base["tokens"].shape),
    }


def _rows(repo: str, fp: dict[str, np.ndarray], dtype: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    common = {"repo_id": repo, "revision": "r0", "file": "model.safetensors", "expert": None, "transposed": False,
              "dtype": dtype, "sampled": True}  # fmt: skip
    rows: list[dict[str, Any]] = [
        {**common, "name": "embed", "role": "embed", "layer": None, "kind": "weight", "shape": [1000, HIDDEN],
         "dim_std": fp["dim_std"].tolist(), "tokens": [f"tok{i}" for i in range(TOKENS)],
         "token_vectors": fp["tokens"].ravel().tolist(), "std": 1.0},
        {**common, "name": "embed_norm", "role": "embed_norm", "layer": None, "kind": "weight", "shape": [HIDDEN],
         "values": fp["gain"].tolist()},
    ]  # fmt: skip
    for layer in range(LAYERS):
        rows.append({**common, "name": f"l{layer}.norm", "role": "attn_norm", "layer": layer, "kind": "weight",
                     "shape": [HIDDEN], "values": fp["norms"][layer].tolist()})  # fmt: skip
        for j, role in enumerate(MATRICES):
            row = {**common, "name": f"l{layer}.{role}", "role": role, "layer": layer, "kind": "weight",
                   "shape": [HIDDEN, HIDDEN], "sketch": fp["sketch"][layer, j].tolist(),
                   "std": float(fp["std"][layer, j])}  # fmt: skip
            if role in INPUT_ROLES:
                row["col_norms"] = fp["cols"][layer, INPUT_ROLES.index(role)].tolist()
            rows.append(row)
    model = {"repo_id": repo, "revision": "r0", "architecture": "synthetic", "layers": LAYERS, "hidden": HIDDEN,
             "dtype": dtype, "base_models": []}  # fmt: skip
    return model, rows


def build_store(root: Path, n: int, seed: int = 0) -> set[frozenset[str]]:
    """Write ``n`` synthetic models into a store at ``root``; returns the truly related pairs."""
    store = Store(root).init()
    rng = np.random.default_rng(seed)
    families: list[list[str]] = []
    models: list[dict[str, Any]] = []
    tensors: list[dict[str, Any]] = []
    base: dict[str, np.ndarray] = {}
    for i in range(n):
        repo = f"syn/m{i:06d}"
        if not families or rng.random() < FAMILY_START:
            base, kind = _base(rng), "base"
            families.append([repo])
        else:
            kind = str(rng.choice([k for k, _ in KINDS], p=[w for _, w in KINDS]))
            families[-1].append(repo)
        fp = base if kind == "base" else _derive(base, kind, rng)
        model, rows = _rows(repo, fp, "BF16" if kind == "cast" else "F32")
        models.append(model)
        tensors.extend(rows)
        if len(models) == CHUNK or i == n - 1:
            name = f"chunk{i // CHUNK:05d}.parquet"
            store.write(f"tensors/{name}", pa.Table.from_pylist(tensors, TENSORS))
            store.write(f"models/{name}", pa.Table.from_pylist(models, MODELS))
            models, tensors = [], []
    return {frozenset((a, b)) for fam in families for i, a in enumerate(fam) for b in fam[i + 1 :]}


def _one(store: str, exhaustive_max: int) -> None:
    """Child process: flag the store, print seconds, peak RSS and the flagged pairs as JSON."""
    from jobs import flag
    from pipeline.config import Settings

    if exhaustive_max > 0:
        # the exhaustive baseline needs more than the production limit (500k pairs at 1000 models)
        flag.DUCKDB_MEMORY_LIMIT = "8GB"
    t0 = time.perf_counter()
    result = flag.run(Settings(store=store), exhaustive_max=exhaustive_max)
    seconds = time.perf_counter() - t0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    flagged = [[r["a_repo_id"], r["b_repo_id"]] for r in result.rows if r["flagged"]]
    print(
        json.dumps(
            {"seconds": seconds, "rss_mb": rss_mb, "candidates": result.candidates, "flagged": flagged}
        )
    )


def _run(store: Path, exhaustive_max: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.detection_synth", str(store), str(exhaustive_max)],
        capture_output=True, text=True,
    )  # fmt: skip
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": last[:100]}
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def scale_table(sizes: list[int], exhaustive_up_to: int = 1000) -> list[str]:
    """Exhaustive vs LSH candidates per store size: time, peak memory, candidates, recall."""
    lines = [
        "synthetic families in one block (hidden 64, 4 layers): exhaustive pairs vs LSH buckets",
        f"{'models':>7s} {'method':>10s} {'seconds':>8s} {'peak MB':>8s} {'candidates':>11s} "
        f"{'flagged':>8s} {'recall/exh':>10s} {'recall/true':>11s} {'true pairs':>10s}",
    ]
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            truth = build_store(Path(tmp) / "store", n)
            runs = {"lsh": _run(Path(tmp) / "store", 0)}
            if n <= exhaustive_up_to:
                runs["exhaustive"] = _run(Path(tmp) / "store", n)
        exh = runs.get("exhaustive", {})
        exhaustive = {frozenset(p) for p in exh["flagged"]} if "flagged" in exh else None
        for method, res in runs.items():
            if "error" in res:
                lines.append(f"{n:7d} {method:>10s} failed: {res['error']}")
                continue
            found = {frozenset(p) for p in res["flagged"]}
            rec_exh = (
                f"{len(found & exhaustive) / max(1, len(exhaustive)):.4f}" if exhaustive is not None else "-"
            )
            lines.append(
                f"{n:7d} {method:>10s} {res['seconds']:8.1f} {res['rss_mb']:8.0f} {res['candidates']:11d} "
                f"{len(found):8d} {rec_exh:>10s} {len(found & truth) / max(1, len(truth)):11.4f} {len(truth):10d}"
            )
    return lines


if __name__ == "__main__":
    _one(sys.argv[1], int(sys.argv[2]))
