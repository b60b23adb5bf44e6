"""Detection quality on the unknown-architecture families of the testbed (testbed/demohub/unknown_arch.py).

Per family (the real akiki CNN+GRU, the 2-D CNN): each derivation kind against the pairs that involve
an independently trained model of the same layout, with AUROC and TPR at FPR <= 1 % of the combined
score and of the roles-free signals, the verdicts, and the false positives at the flag threshold.
Printed by ``python -m bench.detection`` under the transformer table, from the same flag run.
"""

from __future__ import annotations

from typing import Any

from bench.metrics import auroc, score_of, tpr_at_fpr
from hubscan.testbed.demohub.unknown_arch import AKIKI, CNN, NEGATIVE_SEEDS

FAMILIES = {
    "akiki CNN+GRU (real)": (AKIKI, {f"indep/vad-seed{s}" for s in NEGATIVE_SEEDS}),
    "2-D CNN (trained here)": (CNN, {f"vision-lab/tiny-cnn-s{s}" for s in NEGATIVE_SEEDS}),
}
# Derivative suffix -> kind, and the verdict its construction implies against the base.
KINDS = {
    "reupload": ("re-upload (byte-identical)", "exact copy"),
    "pt": ("other format (.pt / .bin)", "exact copy"),
    "renamed": ("renamed copy", "exact copy"),
    "f16": ("cast F16 / BF16", "cast/quantised copy"),
    "bf16": ("cast F16 / BF16", "cast/quantised copy"),
    "finetuned": ("fine-tune (1 % drift)", "fine-tune"),
}
METHODS = ("score", "sketch", "sorted")


def _kind(base: str, negatives: set[str], a: str, b: str) -> str | None:
    """The pair's kind within one family: a derivation, 'sibling', 'unrelated', or None (not this family)."""
    stem = "demohub/" + base.split("/")[1] + "-"
    family = {base, *(stem + k for k in KINDS)}
    pair = {a, b}
    if pair & negatives and pair <= family | negatives:
        return "unrelated"
    if not pair <= family:
        return None
    if base in pair:
        return KINDS[(pair - {base}).pop().removeprefix(stem)][0]
    return "sibling derivatives"


def unknown_arch_table(rows: list[dict[str, Any]]) -> list[str]:
    """Per family and kind: pairs, AUROC (TPR at FPR 1 %) per method, flagged, verdicts; false positives."""
    lines = [
        "Unknown architectures: AUROC (TPR at FPR <= 1 %) against pairs with an independently trained model"
    ]
    lines.append(f"{'family':23s} {'kind':27s} {'pairs':>5s} " + " ".join(f"{m:>11s}" for m in METHODS)
                 + "  flagged  verdicts (expected)")  # fmt: skip
    for family, (base, negatives) in FAMILIES.items():
        labelled = [(_kind(base, negatives, r["a_repo_id"], r["b_repo_id"]), r) for r in rows]
        neg = [r for k, r in labelled if k == "unrelated"]
        kinds = sorted({k for k, _ in labelled if k not in (None, "unrelated")})
        for kind in [*kinds, "all related", "unrelated"]:
            pos = [
                r
                for k, r in labelled
                if k == kind or (kind == "all related" and k not in (None, "unrelated"))
            ]
            cells = []
            for m in METHODS:
                p, n = [score_of(r, m) for r in pos], [score_of(r, m) for r in neg]
                cells.append("" if kind == "unrelated" else f"{auroc(p, n):.3f}({tpr_at_fpr(p, n):.2f})")
            verdicts: dict[str, int] = {}
            for r in pos:
                verdicts[r["verdict"]] = verdicts.get(r["verdict"], 0) + 1
            expected = next((v for k, v in KINDS.values() if k == kind), "")
            shown = ", ".join(f"{v} {n}" for v, n in sorted(verdicts.items(), key=lambda x: -x[1]))
            lines.append(f"{family:23s} {kind:27s} {len(pos):5d} " + " ".join(f"{c:>11s}" for c in cells)
                         + f"  {sum(r['flagged'] for r in pos):3d}/{len(pos):<3d}  {shown}"
                         + (f" ({expected})" if expected else ""))  # fmt: skip
        fp = sum(r["flagged"] for r in neg)
        lines.append(f"{family}: {fp} of {len(neg)} pairs with an independently trained model flagged")
    return lines
