"""Build the demo hub's folder of repos: real checkpoints, derived variants and bad inputs.

``root/<org>/<name>/`` is repo ``org/name``, the layout ``testbed/fakehub`` serves. Each repo is built
in ``root/.building/`` and renamed into place when complete, so a repo folder that exists is whole
and a second run skips it (the fake hub ignores ``.building``: its name is not a valid org).
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

from hubscan.testbed.demohub import reparam, structural, variants
from hubscan.testbed.demohub.badrepos import BAD_REPOS, write_bad_repo
from hubscan.testbed.demohub.licence_variants import build_licence_variants
from hubscan.testbed.demohub.realmodels import REAL_MODELS, REPO_BUILDERS, fetch_real_models_report
from hubscan.testbed.demohub.unknown_arch import build_unknown_arch
from hubscan.testbed.writers import gptq_pack

# Bump when a builder's output changes, so a cached testbed from older code is not reused.
TESTBED_VERSION = 42
BUILDING = ".building"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
# (repo id, description, builder(src, dst)) for the variants of all-MiniLM-L6-v2.
MINILM_VARIANTS: list[tuple[str, str, Callable[[Path, Path], object]]] = [
    (
        "demohub/all-MiniLM-L6-v2-bf16",
        f"variant: BF16 cast of {MINILM}; card declares base_model",
        lambda s, d: variants.cast(s, d, "BF16", base_model=MINILM),
    ),
    (
        "demohub/all-MiniLM-L6-v2-f16",
        f"variant: F16 cast of {MINILM}; undeclared",
        lambda s, d: variants.cast(s, d, "F16"),
    ),
    (
        "demohub/all-MiniLM-L6-v2-sharded",
        f"variant: {MINILM} split into 3 safetensors shards; card declares base_model",
        lambda s, d: variants.shard(s, d, 3, base_model=MINILM),
    ),
    (
        "demohub/bert-minilm-l6",
        f"variant: {MINILM} renamed with a 'bert.' prefix; undeclared",
        lambda s, d: variants.rename(s, d, variants.add_prefix("bert.")),
    ),
    (
        "demohub/all-MiniLM-L6-v2-Q8_0-GGUF",
        f"variant: GGUF Q8_0 of {MINILM}; card declares base_model",
        lambda s, d: variants.to_gguf(s, d, "Q8_0", base_model=MINILM),
    ),
    (
        "demohub/minilm-embed-Q4_0-GGUF",
        f"variant: GGUF Q4_0 of {MINILM}; undeclared",
        lambda s, d: variants.to_gguf(s, d, "Q4_0"),
    ),
    (
        "demohub/minilm-reupload",
        f"variant: {MINILM} weights re-uploaded byte for byte; undeclared (an exact copy)",
        lambda s, d: variants.reupload(s, d),
    ),
    (
        "demohub/all-MiniLM-L6-v2-pytorch",
        f"variant: {MINILM} saved as pytorch_model.bin (torch zip); card declares base_model",
        lambda s, d: variants.to_pytorch(s, d, 1, base_model=MINILM),
    ),
    (
        "demohub/minilm-bin-sharded",
        f"variant: {MINILM} as 2 pytorch_model-*.bin shards with index; undeclared",
        lambda s, d: variants.to_pytorch(s, d, 2),
    ),
    (
        "demohub/minilm-l6-finetuned",
        f"variant: {MINILM} plus Gaussian drift of 1% of each tensor's std (seed 0); undeclared",
        lambda s, d: variants.finetune_like(s, d, 0.01, seed=0),
    ),
]
# Packed-int (GPTQ/AWQ) copies of all-MiniLM-L6-v2: the block Linears quantised, the rest F16.
QUANT_VARIANTS: list[tuple[str, str, Callable[[Path, Path], object]]] = [
    (
        "demohub/all-MiniLM-L6-v2-GPTQ",
        f"variant: GPTQ 4-bit g128 act-order (RTN, v1 zeros) of {MINILM}; card declares base_model",
        lambda s, d: gptq_pack.quantised_repo(s, d, "GPTQ", 4, 128, act_order=True, base_model=MINILM),
    ),
    (
        "demohub/minilm-awq",
        f"variant: AWQ 4-bit g64 GEMM (RTN) of {MINILM}, no quantization_config; undeclared",
        lambda s, d: gptq_pack.quantised_repo(s, d, "AWQ", 4, 64, declare_config=False),
    ),
]
# Function-preserving re-parameterisations of all-MiniLM-L6-v2 (testbed/demohub/reparam.py): what a
# copier does to defeat element-aligned and per-dimension comparisons.
REPARAM_VARIANTS: list[tuple[str, str, Callable[[Path, Path], object]]] = [
    (
        "demohub/minilm-permuted",
        f"variant: {MINILM} with hidden units, neurons and heads permuted (function unchanged); undeclared",
        lambda s, d: reparam.reparameterise(s, d, permute=True, rescale=False, seed=1),
    ),
    (
        "demohub/minilm-rescaled",
        f"variant: {MINILM} with Q*c, K/c, V*c', O/c' per layer (function unchanged); undeclared",
        lambda s, d: reparam.reparameterise(s, d, permute=False, rescale=True, seed=2),
    ),
    (
        "demohub/minilm-permuted-finetuned",
        f"variant: {MINILM} permuted as above, then Gaussian drift of 1% of each tensor's std; undeclared",
        lambda s, d: reparam.reparameterise(s, d, permute=True, rescale=False, seed=3, drift=0.01),
    ),
]
# Structural derivatives (layer surgery, MoE upcycling): (repo id, description, source repo or
# repos, builder(*srcs, dst)). Built after the real repos and in this order (the MoEs need the dense 4L).
E5 = "intfloat/multilingual-e5-small"
SMOL_GGUF_REPO = "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF"
SMOL_4L = "demohub/SmolLM2-135M-4L"
SMOL_MOE = "demohub/SmolLM2-4x135M-4L-MoE"
# Expert order per layer of the permuted MoE: slot s holds expert PERMUTED_EXPERTS[layer][s].
PERMUTED_EXPERTS = {0: [2, 0, 3, 1], 1: [1, 3, 0, 2], 2: [3, 2, 1, 0], 3: [0, 2, 1, 3]}
STACKED = "demohub/MiniLM-e5-stacked"
STRUCTURAL_VARIANTS: list[tuple[str, str, str | tuple[str, str], Callable[..., object]]] = [
    (
        "demohub/multilingual-e5-small-6L",
        f"structural: layers 0,2,4,6,8,10 of {E5} (pruned 12 -> 6), F16; card declares base_model",
        E5,
        lambda s, d: structural.relayer(s, d, range(0, 12, 2), "Every second layer kept.", E5, "F16"),
    ),
    (
        "demohub/MiniLM-L3-pruned",
        f"structural: layers 1,3,5 of {MINILM} (pruned 6 -> 3); undeclared",
        MINILM,
        lambda s, d: structural.relayer(s, d, [1, 3, 5], "A 3-layer sentence encoder."),
    ),
    (
        "demohub/MiniLM-8L-upscaled",
        f"structural: layers 0-3 + 2-5 of {MINILM} (SOLAR-style depth up-scale 6 -> 8); card declares base_model",
        MINILM,
        lambda s, d: structural.relayer(s, d, [0, 1, 2, 3, 2, 3, 4, 5], "Depth up-scaled.", MINILM),
    ),
    (
        "demohub/MiniLM-reordered",
        f"structural: layers 0,1,3,2,5,4 of {MINILM} (re-ordered); undeclared",
        MINILM,
        lambda s, d: structural.relayer(s, d, [0, 1, 3, 2, 5, 4], "A 6-layer sentence encoder."),
    ),
    (
        STACKED,
        f"structural: layers 0-3 of {MINILM} then layers 6-9 of {E5} (a two-parent frankenmerge, 8 layers), "
        f"embeddings and tokenizer of {MINILM}; undeclared",
        (MINILM, E5),
        lambda a, b, d: structural.stack(a, b, d, range(4), range(6, 10), "An 8-layer sentence encoder."),
    ),
    (
        SMOL_4L,
        f"structural: blocks 0-3 of {SMOL_GGUF_REPO} (truncated 30 -> 4), dequantised to BF16; "
        "card declares base_model HuggingFaceTB/SmolLM2-135M-Instruct",
        SMOL_GGUF_REPO,
        lambda s, d: structural.smollm_dense(s, d, base_model="HuggingFaceTB/SmolLM2-135M-Instruct"),
    ),
    (
        SMOL_MOE,
        f"structural: Mixtral-style 4-expert upcycle of {SMOL_4L} (copies + 2% noise); undeclared",
        SMOL_4L,
        lambda s, d: structural.moe_copies(s, d, 4, seed=0),
    ),
    (
        "demohub/SmolLM2-4L-fine-MoE",
        f"structural: Qwen-MoE-style fine-grained upcycle of {SMOL_4L} (4 slices of the MLP + 2% noise); "
        "card declares base_model",
        SMOL_4L,
        lambda s, d: structural.moe_slices(s, d, 4, seed=0, base_model=SMOL_4L),
    ),
    (
        "demohub/SmolLM2-4x135M-4L-MoE-permuted",
        f"structural: experts of {SMOL_MOE} permuted per layer and moved by 0.5% noise; undeclared",
        SMOL_MOE,
        lambda s, d: structural.permute_experts(s, d, PERMUTED_EXPERTS, seed=1),
    ),
]
_REAL_NOTES = {
    "minilm-l6": "real: F32 safetensors as shipped",
    "smollm2": "real: GGUF Q4_1 as shipped; unrelated to every BERT here",
    "minilm-int8": f"real: int8 ONNX copy of {MINILM}, dequantised to F32; undeclared",
    "paraphrase-l3": "real: F32 from ONNX; 3 layers of MiniLM-L12-H384, a cousin of all-MiniLM-L6-v2",
    "e5-small": "real: dequantised from Q4_0; unrelated to all-MiniLM-L6-v2 despite equal shapes",
    "e5-small-pruned": "real: vocabulary-pruned copy of intfloat/multilingual-e5-small "
    "(47284 rows, identical layers); undeclared",
}


def build_once(root: Path, repo_id: str, build: Callable[[Path], object]) -> bool:
    """Build ``root/repo_id`` unless present; True if built now. Partial builds never become visible."""
    dst = root / repo_id
    if dst.is_dir():
        return False
    tmp = root / BUILDING / repo_id  # same folder name, so cards and GGUF names use the real one
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        build(tmp)
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp.rename(dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return True


def _run_builder(builder: Callable[..., Path], raw: Path, kwargs: dict[str, Path], dst: Path) -> Path:
    """Call a realmodels builder with its raw folder first, as build_once passes only dst."""
    return builder(raw, dst, **kwargs)


def _bad(kind: str, dst: Path) -> Path:
    """write_bad_repo with the argument order partial() needs."""
    return write_bad_repo(dst, kind)


def build_real_repos(root: Path, cache: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Real checkpoints as repos: (repo id -> description, key -> reason it was skipped)."""
    raws, skipped = fetch_real_models_report(cache, list(REPO_BUILDERS))
    manifest: dict[str, str] = {}
    for key, raw in raws.items():
        spec = REAL_MODELS[key]
        assert spec.repo_id is not None
        kwargs: dict[str, Path] = {}
        if key in ("minilm-int8", "paraphrase-l3") and "minilm-l6" in raws:
            kwargs["tokenizer_src"] = raws["minilm-l6"]
        builder = REPO_BUILDERS[key]
        try:
            build_once(root, spec.repo_id, partial(_run_builder, builder, raw, kwargs))
        except (ValueError, OSError) as e:  # a conversion that fails must not take the rest down
            skipped[key] = f"building {spec.repo_id} failed: {e}"
            continue
        manifest[spec.repo_id] = f"{_REAL_NOTES[key]} (from {spec.dist}=={spec.version})"
    return manifest, skipped


def build_testbed(root: Path, cache: Path) -> dict[str, str]:
    """Build every repo under ``root``, write ``manifest.json``; returns {repo_id: description}."""
    root.mkdir(parents=True, exist_ok=True)
    manifest, skipped = build_real_repos(root, cache)
    src = root / MINILM
    for repo_id, description, make in [*MINILM_VARIANTS, *QUANT_VARIANTS, *REPARAM_VARIANTS]:
        if MINILM not in manifest:
            skipped[repo_id] = f"needs {MINILM}"
            continue
        try:
            build_once(root, repo_id, partial(make, src))
        except ImportError as e:  # testbed.writers.gguf_write not there yet
            skipped[repo_id] = f"GGUF writer unavailable: {e}"
            continue
        manifest[repo_id] = description
    build_structural(root, manifest, skipped)
    build_licence_variants(root, manifest, skipped, build_once)
    unknown, unknown_skipped = build_unknown_arch(root, cache, build_once)
    manifest.update(unknown)
    skipped.update(unknown_skipped)
    for kind, repo_id in BAD_REPOS.items():
        build_once(root, repo_id, partial(_bad, kind))
        manifest[repo_id] = f"bad input: {kind}"
    shutil.rmtree(root / BUILDING, ignore_errors=True)
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    (root / "skipped.json").write_text(json.dumps(skipped, indent=2, sort_keys=True) + "\n")
    for what, reason in skipped.items():
        print(f"hubscan demohub: skipped {what}: {reason}", file=sys.stderr)
    return manifest


def build_structural(root: Path, manifest: dict[str, str], skipped: dict[str, str]) -> None:
    """The STRUCTURAL_VARIANTS whose source repo is there (in order: later ones read earlier ones)."""
    for repo_id, description, source, make in STRUCTURAL_VARIANTS:
        sources = (source,) if isinstance(source, str) else source
        if any(s not in manifest for s in sources):
            skipped[repo_id] = f"needs {', '.join(sources)}"
            continue
        try:
            build_once(root, repo_id, partial(make, *(root / s for s in sources)))
        except (ValueError, OSError, ImportError) as e:
            skipped[repo_id] = f"building failed: {e}"
            continue
        manifest[repo_id] = description


def main(argv: list[str] | None = None) -> int:
    """``python -m hubscan.testbed.demohub.testbed ROOT [CACHE]``: build the demo hub folder."""
    from hubscan.testbed.demohub.realmodels import default_cache

    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m hubscan.testbed.demohub.testbed ROOT [CACHE]", file=sys.stderr)
        return 2
    cache = Path(args[1]) if len(args) > 1 else default_cache()
    manifest = build_testbed(Path(args[0]), cache)
    print(json.dumps(manifest, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
