"""A LoRA trained in numpy on the real all-MiniLM-L6-v2, and the repos built from it.

torch is not a dependency of jobs/, and a LoRA's update is two small matrices per Linear, so its
training is written out here: PEFT's initialisation (A uniform in +-1/sqrt(in), B zero), Adam, and
a layer-local distillation objective. Each adapted projection of a layer learns, on real inputs (the
model's own embedding output for seeded tokens), to answer as the same projection of the next layer
does. That is a real gradient-trained low-rank update of the real weights, stopped once the merged
change reaches a set share of each weight, as a short fine-tune would; it is not a language task.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hubscan.testbed.demohub import cards
from hubscan.testbed.demohub.realmodels import build_repo_minilm_l6
from hubscan.testbed.writers.peft_write import Lora, merge, write_adapter_repo
from hubscan.testbed.writers.safetensors_write import read_safetensors_np, write_safetensors

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
ORG = "loralab"
# PEFT's default targets for BERT, on every block: 12 of MiniLM's 36 block matrices.
TARGETS = ("query", "value")
RANK, ALPHA = 8, 16.0
# Frobenius norm of the merged change over the weight's: the "moved 4 %".
DRIFT = 0.04
TOKENS, FIRST_TOKEN = 512, 1000  # real word pieces (ids below ~1000 are [unused] and specials)
LEARNING_RATE, MAX_STEPS = 2e-3, 2000
BETAS, ADAM_EPS = (0.9, 0.999), 1e-8
LN_EPS = 1e-12  # BERT's LayerNorm epsilon


def embedding_inputs(state: dict[str, np.ndarray], seed: int) -> np.ndarray:
    """The embedding layer's output (word + position + type, LayerNorm) for seeded tokens: [TOKENS, hidden]."""
    rng = np.random.default_rng(seed)
    words = state["embeddings.word_embeddings.weight"]
    ids = rng.integers(FIRST_TOKEN, words.shape[0], TOKENS)
    pos = rng.integers(0, 128, TOKENS)
    x = (
        words[ids]
        + state["embeddings.position_embeddings.weight"][pos]
        + state["embeddings.token_type_embeddings.weight"][0]
    )
    x = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + LN_EPS)
    return (x * state["embeddings.LayerNorm.weight"] + state["embeddings.LayerNorm.bias"]).astype(np.float64)


def train_module(
    w: np.ndarray, teacher: np.ndarray, x: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(A, B) of one Linear, trained until ``scale * B @ A`` moves ``w`` by DRIFT (or MAX_STEPS)."""
    out_dim, in_dim = w.shape
    scale = ALPHA / RANK
    a = rng.uniform(-1, 1, (RANK, in_dim)) / np.sqrt(in_dim)
    b = np.zeros((out_dim, RANK))
    target = x @ teacher.T
    moments = [np.zeros_like(a), np.zeros_like(a), np.zeros_like(b), np.zeros_like(b)]
    size = np.linalg.norm(w)
    for step in range(1, MAX_STEPS + 1):
        err = x @ (w + scale * b @ a).T - target  # [tokens, out]
        grad = 2.0 / len(x) * err.T @ x  # d loss / d (scale B A)
        ga, gb = scale * b.T @ grad, scale * grad @ a.T
        for i, (p, g) in enumerate(((a, ga), (b, gb))):
            m, v = moments[2 * i], moments[2 * i + 1]
            m[:] = BETAS[0] * m + (1 - BETAS[0]) * g
            v[:] = BETAS[1] * v + (1 - BETAS[1]) * g * g
            p -= (
                LEARNING_RATE
                * (m / (1 - BETAS[0] ** step))
                / (np.sqrt(v / (1 - BETAS[1] ** step)) + ADAM_EPS)
            )
        if np.linalg.norm(scale * b @ a) >= DRIFT * size:
            break
    return a.astype(np.float32), b.astype(np.float32)


def train_lora(state: dict[str, np.ndarray], seed: int = 0, layers: int = 6, offset: int = 1) -> Lora:
    """A rank-RANK LoRA on TARGETS of every block, deterministic for its seed; each block's teacher is the
    block ``offset`` further on (another ``offset`` is another task)."""
    x = embedding_inputs(state, seed)
    rng = np.random.default_rng(seed)
    weights = {}
    for layer in range(layers):
        for target in TARGETS:
            module = f"encoder.layer.{layer}.attention.self.{target}"
            teacher = state[f"encoder.layer.{(layer + offset) % layers}.attention.self.{target}.weight"]
            w = state[f"{module}.weight"].astype(np.float64)
            weights[module] = train_module(w, teacher.astype(np.float64), x, rng)
    return Lora(MINILM, RANK, ALPHA, TARGETS, weights)


def wide_lora(hidden: int = 512, seed: int = 1) -> Lora:
    """An adapter of another width that declares MiniLM as its base: what the fit check must refuse."""
    rng = np.random.default_rng(seed)
    weights = {
        f"encoder.layer.{i}.attention.self.{t}": (
            rng.normal(0, 0.05, (RANK, hidden)).astype(np.float32),
            rng.normal(0, 0.01, (hidden, RANK)).astype(np.float32),
        )
        for i in range(6)
        for t in TARGETS
    }
    return Lora(MINILM, RANK, ALPHA, TARGETS, weights)


def dense_drift(state: dict[str, np.ndarray], modules: list[str], seed: int = 2) -> dict[str, np.ndarray]:
    """The same matrices moved by DRIFT in a full-rank direction: a partial full fine-tune, not a LoRA."""
    rng = np.random.default_rng(seed)
    out = dict(state)
    for module in modules:
        w = state[f"{module}.weight"]
        noise = rng.standard_normal(w.shape)
        out[f"{module}.weight"] = (w + DRIFT * np.linalg.norm(w) / np.linalg.norm(noise) * noise).astype(
            w.dtype
        )
    return out


def build_lora_repos(raw: Path, dst: Path) -> dict[str, Path]:
    """The base, a trained adapter, its F16 re-upload, a wider adapter, the merge and a dense-drift control."""
    base = build_repo_minilm_l6(raw, dst / MINILM)
    state = read_safetensors_np(base / "model.safetensors")
    lora = train_lora(state)
    repos = {"base": base}
    repos["adapter"] = write_adapter_repo(dst / ORG / "minilm-lora", lora)
    # PEFT draws A from the framework's RNG: two people who both seed 42 start from the same A
    other = train_lora(state, offset=3)
    repos["same_seed"] = write_adapter_repo(
        dst / ORG / "minilm-lora-other-task", other, title="LoRA, same seed, other task"
    )
    repos["copy"] = write_adapter_repo(
        dst / ORG / "minilm-lora-f16", lora, "F16", "LoRA adapter (F16 re-upload)"
    )
    repos["wide"] = write_adapter_repo(
        dst / ORG / "wide-lora", wide_lora(), title="LoRA adapter of a 512-wide model"
    )
    repos["merged"] = _full_repo(
        raw, dst / ORG / "minilm-lora-merged", merge(state, lora), "LoRA merged into its base"
    )
    repos["dense"] = _full_repo(
        raw,
        dst / ORG / "minilm-dense-drift",
        dense_drift(state, list(lora.weights)),
        "q and v fully fine-tuned",
    )
    return repos


def _full_repo(raw: Path, dst: Path, state: dict[str, np.ndarray], title: str) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    write_safetensors(dst / "model.safetensors", state, metadata={"format": "pt"})
    cards.copy_side_files(raw, dst)
    cards.write_card(dst, title, "apache-2.0", MINILM, ["sentence-transformers"])
    return dst
