"""Structural derivatives of real checkpoints: pruned, depth up-scaled, re-ordered, stacked, MoE-upcycled.

These are what the published cases did (all-MiniLM-L6 keeps every second layer of MiniLM-L12;
SOLAR-10.7B stacks Mistral-7B layers 0-23 and 8-31; upcycled MoEs start every expert from the
dense MLP, as copies or as fine-grained slices). Each builder reads a Hub-layout repo folder and
writes a new one whose card declares ``base_model`` or not, deterministic for a given seed.

The MoE builders start from SmolLM2-135M (a real Llama checkpoint shipped as GGUF Q4_1),
dequantised to HF Llama names and cut to its first ``SMOL_LAYERS`` blocks so the testbed stays
small enough for CI: 4 experts x 3 MLP matrices x 4 layers is 85 MB in BF16.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hubscan.testbed.demohub import cards
from hubscan.testbed.demohub.variants import SINGLE_FILE, derive_repo, load_repo_tensors, repo_metadata
from hubscan.testbed.writers.safetensors_write import write_safetensors

# Blocks of SmolLM2 kept in the dense base of the MoE variants (of 30): enough for a layer map.
SMOL_LAYERS = 4
SMOL_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Noise added to each upcycled expert, as a fraction of the tensor's std: what a short
# continued pre-training moves (the experts must differ, or routing learns nothing).
EXPERT_NOISE = 0.02
_LAYER = re.compile(r"^(.*?\b(?:layer|layers|h|blocks)\.)(\d+)(\..*)$")
# GGUF names of a llama block -> HF LlamaForCausalLM names.
_GGUF_TO_HF = {
    "attn_norm": "input_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_norm": "post_attention_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}


def layer_of(name: str) -> tuple[str, int, str] | None:
    """(prefix, block index, suffix) of a per-block tensor name, None for the rest."""
    m = _LAYER.match(name)
    return (m[1], int(m[2]), m[3]) if m else None


def relayer(
    src: Path,
    dst: Path,
    order: Sequence[int],
    body: str,
    base_model: str | None = None,
    dtype: str | None = None,
) -> Path:
    """New block j = source block ``order[j]``: pruning, duplication (up-scaling) or re-ordering."""
    tensors = load_repo_tensors(src)
    depth = 1 + max(p[1] for p in map(layer_of, tensors) if p)
    if not order or min(order) < 0 or max(order) >= depth:
        raise ValueError(f"layer order {list(order)} does not fit a {depth}-layer model")
    out: dict[str, np.ndarray] = {}
    for name, arr in tensors.items():
        parts = layer_of(name)
        if parts is None:
            out[name] = arr
    for j, i in enumerate(order):
        for name, arr in tensors.items():
            parts = layer_of(name)
            if parts is not None and parts[1] == i:
                out[f"{parts[0]}{j}{parts[2]}"] = arr.copy()
    derive_repo(src, dst, base_model, body, ["safetensors"])
    _set_config(dst, num_hidden_layers=len(order))
    write_safetensors(dst / SINGLE_FILE, out, dtype, repo_metadata(src))
    return dst


def stack(
    first: Path,
    second: Path,
    dst: Path,
    first_layers: Sequence[int],
    second_layers: Sequence[int],
    body: str,
    base_model: str | None = None,
) -> Path:
    """A frankenmerge: blocks ``first_layers`` of one model, then ``second_layers`` of another.

    Everything outside the blocks (embeddings, their norm, pooler, tokenizer, config) is the first
    parent's, as mergekit's passthrough stacks keep one parent's embeddings: two parents' blocks can
    only be stacked when their shapes agree, and the vocabularies need not.
    """
    a, b = load_repo_tensors(first), load_repo_tensors(second)
    out = {name: arr for name, arr in a.items() if layer_of(name) is None}
    for j, (tensors, i) in enumerate([(a, i) for i in first_layers] + [(b, i) for i in second_layers]):
        block = {
            f"{p[0]}{j}{p[2]}": arr.copy()
            for name, arr in tensors.items()
            if (p := layer_of(name)) and p[1] == i
        }
        if not block:
            raise ValueError(f"block {i} not found for layer {j} of the stack")
        out.update(block)
    shapes = {name: arr.shape for name, arr in out.items()}
    ref = {name: arr.shape for name, arr in a.items()}
    bad = [
        n for n, shape in shapes.items() if (p := layer_of(n)) and shape != ref.get(f"{p[0]}0{p[2]}", shape)
    ]
    if bad:
        raise ValueError(f"the two parents' blocks differ in shape: {bad[:3]}")
    derive_repo(first, dst, base_model, body, ["safetensors", "merge"])
    _set_config(dst, num_hidden_layers=len(first_layers) + len(second_layers))
    write_safetensors(dst / SINGLE_FILE, out, None, repo_metadata(first))
    return dst


def _set_config(dst: Path, **fields: object) -> None:
    import json

    path = dst / "config.json"
    cfg = json.loads(path.read_text()) if path.exists() else {}
    cfg.update(fields)
    cards.write_json(path, cfg)


def _unpermute_qk(w: np.ndarray, n_head: int) -> np.ndarray:
    """Undo llama.cpp's rotary row interleave of Q/K (its converter permutes HF rows per head)."""
    rows = w.shape[0]
    return w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def smollm_dense(raw: Path, dst: Path, layers: int = SMOL_LAYERS, base_model: str | None = None) -> Path:
    """SmolLM2-135M's first ``layers`` blocks as HF Llama BF16 safetensors, dequantised from GGUF Q4_1."""
    import gguf

    reader = gguf.GGUFReader(str(raw / SMOL_GGUF))
    meta = {k: f.parts[f.data[0]] for k, f in reader.fields.items() if f.data}
    heads, kv = int(meta["llama.attention.head_count"][0]), int(meta["llama.attention.head_count_kv"][0])
    out: dict[str, np.ndarray] = {}
    for t in reader.tensors:
        w = np.asarray(gguf.dequantize(t.data, t.tensor_type), dtype=np.float32).reshape(
            tuple(reversed([int(x) for x in t.shape]))
        )
        if t.name == "token_embd.weight":
            out["model.embed_tokens.weight"] = w
        elif t.name == "output_norm.weight":
            out["model.norm.weight"] = w
        elif t.name.startswith("blk."):
            _, idx, part, _ = t.name.split(".")
            if int(idx) >= layers:
                continue
            if part == "attn_q":
                w = _unpermute_qk(w, heads)
            elif part == "attn_k":
                w = _unpermute_qk(w, kv)
            out[f"model.layers.{idx}.{_GGUF_TO_HF[part]}.weight"] = w
    cfg = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 576,
        "intermediate_size": int(meta["llama.feed_forward_length"][0]), "num_hidden_layers": layers,
        "num_attention_heads": heads, "num_key_value_heads": kv, "vocab_size": 49152,
        "rms_norm_eps": float(meta["llama.attention.layer_norm_rms_epsilon"][0]),
        "rope_theta": float(meta["llama.rope.freq_base"][0]), "tie_word_embeddings": True,
        "max_position_embeddings": int(meta["llama.context_length"][0]), "torch_dtype": "bfloat16",
    }  # fmt: skip
    dst.mkdir(parents=True, exist_ok=True)
    cards.write_json(dst / "config.json", cfg)
    body = f"The first {layers} of 30 blocks of SmolLM2-135M-Instruct, dequantised from GGUF Q4_1 to BF16."
    cards.write_card(dst, dst.name, "apache-2.0", base_model, ["llama", "safetensors"], body)
    write_safetensors(dst / SINGLE_FILE, out, "BF16", {"format": "pt"})
    return dst


def _noisy(w: np.ndarray, rel: float, seed: int, tag: str) -> np.ndarray:
    rng = np.random.default_rng([seed, zlib.crc32(tag.encode())])
    return w + rng.standard_normal(w.shape, dtype=np.float32) * np.float32(rel * float(w.std()))


def _dense_mlps(tensors: dict[str, np.ndarray]) -> dict[int, dict[str, np.ndarray]]:
    mlps: dict[int, dict[str, np.ndarray]] = {}
    for name, arr in tensors.items():
        m = re.match(r"model\.layers\.(\d+)\.mlp\.(gate|up|down)_proj\.weight$", name)
        if m:
            mlps.setdefault(int(m[1]), {})[m[2]] = arr.astype(np.float32)
    return mlps


def moe_copies(
    src: Path,
    dst: Path,
    experts: int = 4,
    seed: int = 0,
    base_model: str | None = None,
    permutations: dict[int, list[int]] | None = None,
) -> Path:
    """Mixtral-style upcycling: every expert a copy of the dense MLP plus its own small noise.

    ``permutations`` (layer -> order) lists expert slots in another order: a MoE whose experts
    are those of another MoE permuted (the MoE-vs-MoE case), each with fresh noise.
    """
    tensors = load_repo_tensors(src)
    mlps = _dense_mlps(tensors)
    out = {n: a for n, a in tensors.items() if ".mlp." not in n}
    rng = np.random.default_rng(seed)
    for layer, mlp in mlps.items():
        order = (permutations or {}).get(layer, list(range(experts)))
        pre = f"model.layers.{layer}.block_sparse_moe"
        out[f"{pre}.gate.weight"] = (
            rng.standard_normal((experts, mlp["up"].shape[1]), dtype=np.float32) * 0.02
        )
        for slot, e in enumerate(order):
            for w_name, part in (("w1", "gate"), ("w3", "up"), ("w2", "down")):
                out[f"{pre}.experts.{slot}.{w_name}.weight"] = _noisy(
                    mlp[part], EXPERT_NOISE, seed, f"{layer}.{e}.{part}"
                )
    derive_repo(src, dst, base_model, f"Mixture of {experts} experts upcycled from a dense model.", ["moe"])
    _set_config(dst, architectures=["MixtralForCausalLM"], model_type="mixtral", num_local_experts=experts,
                num_experts_per_tok=2)  # fmt: skip
    write_safetensors(dst / SINGLE_FILE, out, "BF16", repo_metadata(src))
    return dst


def moe_slices(src: Path, dst: Path, experts: int = 4, seed: int = 0, base_model: str | None = None) -> Path:
    """Qwen-MoE-style fine-grained upcycling: expert e = rows e*n/k.. of gate/up, columns of down."""
    tensors = load_repo_tensors(src)
    mlps = _dense_mlps(tensors)
    out = {n: a for n, a in tensors.items() if ".mlp." not in n}
    rng = np.random.default_rng(seed)
    width = 0
    for layer, mlp in mlps.items():
        n = mlp["up"].shape[0]
        if n % experts:
            raise ValueError(f"MLP width {n} does not split into {experts} experts")
        width = n // experts
        pre = f"model.layers.{layer}.mlp"
        out[f"{pre}.gate.weight"] = (
            rng.standard_normal((experts, mlp["up"].shape[1]), dtype=np.float32) * 0.02
        )
        for e in range(experts):
            rows = slice(e * width, (e + 1) * width)
            parts = {"gate": mlp["gate"][rows], "up": mlp["up"][rows], "down": mlp["down"][:, rows]}
            for part, w in parts.items():
                tag = f"{layer}.{e}.{part}"
                out[f"{pre}.experts.{e}.{part}_proj.weight"] = _noisy(
                    np.ascontiguousarray(w), EXPERT_NOISE, seed, tag
                )
    derive_repo(
        src, dst, base_model, f"Fine-grained mixture of {experts} experts sliced from a dense MLP.", ["moe"]
    )
    _set_config(dst, architectures=["Qwen2MoeForCausalLM"], model_type="qwen2_moe", num_experts=experts,
                num_experts_per_tok=2, moe_intermediate_size=width)  # fmt: skip
    write_safetensors(dst / SINGLE_FILE, out, "BF16", repo_metadata(src))
    return dst


def permute_experts(
    src: Path, dst: Path, permutations: dict[int, list[int]], seed: int = 1, base_model: str | None = None
) -> Path:
    """A Mixtral-style MoE whose expert slots hold another MoE's experts in a new order, lightly moved.

    Slot s of layer l holds source expert ``permutations[l][s]`` plus noise of EXPERT_NOISE / 4 (a
    short fine-tune), so each expert matches its source expert more closely than its siblings.
    """
    tensors = load_repo_tensors(src)
    out: dict[str, np.ndarray] = {}
    for name, arr in tensors.items():
        m = re.match(r"(model\.layers\.(\d+)\.block_sparse_moe\.experts\.)(\d+)(\..*)$", name)
        if m is None:
            out[name] = arr
            continue
        order = permutations.get(int(m[2]))
        if order is not None and int(m[3]) not in order:
            raise ValueError(f"{name}: expert {m[3]} not in the permutation {order}")
        slot = order.index(int(m[3])) if order is not None else int(m[3])
        out[f"{m[1]}{slot}{m[4]}"] = _noisy(arr.astype(np.float32), EXPERT_NOISE / 4, seed, name)
    derive_repo(src, dst, base_model, "Experts re-ordered and fine-tuned.", ["moe"])
    write_safetensors(dst / SINGLE_FILE, out, "BF16", repo_metadata(src))
    return dst
