"""Model shape facts (layers, widths, experts) from config.json or, failing that, from tensor shapes.

config.json is untrusted data from the Hub: values of the wrong type are ignored, never raised
on. Every field is optional; ``merge`` fills one source's gaps from another.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from hubscan.pipeline.roles import TensorRole, classify_all

# Multimodal wrappers keep the language model's sizes in one of these sub-configs.
TEXT_CONFIG_KEYS = ("text_config", "llm_config", "language_config")

# Aliases per field, first present wins; names from Llama/Mistral/Qwen (HF standard), GPT-2,
# GPT-J, Falcon, MPT/T5 (d_model, n_layers), ChatGLM, Llama-pth params.json (dim, n_heads).
_ALIASES: dict[str, tuple[str, ...]] = {
    "n_layers": ("num_hidden_layers", "n_layer", "num_layers", "n_layers"),
    "hidden": ("hidden_size", "n_embd", "d_model", "dim"),
    "n_heads": ("num_attention_heads", "n_head", "n_heads"),
    "n_kv_heads": ("num_key_value_heads", "num_kv_heads", "n_kv_heads", "multi_query_group_num"),
    "head_dim": ("head_dim",),
    "intermediate": ("intermediate_size", "n_inner", "ffn_dim", "ffn_hidden_size", "hidden_dim"),
    "moe_intermediate": ("moe_intermediate_size",),
    "n_experts": ("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts"),
    "n_experts_per_tok": ("num_experts_per_tok", "moe_top_k", "num_selected_experts"),
    "vocab": ("vocab_size", "n_vocab", "padded_vocab_size"),
    "max_positions": ("max_position_embeddings", "n_positions", "n_ctx", "max_seq_len", "seq_length"),
}


@dataclass(frozen=True)
class ModelConfig:
    """Architecture facts of one model; None where unknown."""

    architecture: str | None = None
    model_type: str | None = None
    n_layers: int | None = None
    hidden: int | None = None
    n_heads: int | None = None
    n_kv_heads: int | None = None
    head_dim: int | None = None
    intermediate: int | None = None  # dense MLP width (per expert for Mixtral, which has no dense MLP)
    moe_intermediate: int | None = None  # routed-expert MLP width where it differs from the dense one
    n_experts: int | None = None  # routed experts; shared experts are not counted
    n_experts_per_tok: int | None = None
    vocab: int | None = None
    max_positions: int | None = None
    tie_word_embeddings: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for the models table."""
        return asdict(self)


# Sizes are stored as int64 columns: a config's 2**70 is no size, and writing it failed the whole
# model with an OverflowError traceback from pyarrow.
_MAX_SIZE = 2**63 - 1


def _int(value: object) -> int | None:
    """A positive int that an int64 column holds, or None (bools, strings, floats, zero and
    numbers past int64 are not sizes)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= _MAX_SIZE:
        return None
    return value


def _first_int(cfg: Mapping[str, Any], keys: Sequence[str]) -> int | None:
    for key in keys:
        found = _int(cfg.get(key))
        if found is not None:
            return found
    return None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def from_hf_config(cfg: Mapping[str, Any]) -> ModelConfig:
    """A ModelConfig from a parsed config.json; sizes come from ``text_config`` when the model nests one."""
    if not isinstance(cfg, Mapping):
        return ModelConfig()
    archs = cfg.get("architectures")
    architecture = _str(archs[0]) if isinstance(archs, list) and archs else None
    model_type = _str(cfg.get("model_type"))
    text: Mapping[str, Any] = cfg
    for key in TEXT_CONFIG_KEYS:
        sub = cfg.get(key)
        if isinstance(sub, Mapping):
            text = sub
            break
    # Sizes from the text sub-config first, then the top level (some wrappers keep vocab_size there).
    values = {f: _first_int(text, keys) or _first_int(cfg, keys) for f, keys in _ALIASES.items()}
    hidden, n_heads = values["hidden"], values["n_heads"]
    if values["n_kv_heads"] is None and text.get("multi_query") is True:
        values["n_kv_heads"] = 1  # Falcon-7B, GPT-BigCode
    elif values["n_kv_heads"] is None and n_heads is not None and not _declares_gqa(text):
        # No KV-head key at all means plain multi-head attention (GPT-2, BERT, Llama-1).
        values["n_kv_heads"] = n_heads
    if values["head_dim"] is None:
        values["head_dim"] = _head_dim(text, hidden, n_heads)
    if values["intermediate"] is None and "n_inner" in text and hidden is not None:
        # GPT-2 and GPT-J write n_inner: null and mean 4 * n_embd.
        values["intermediate"] = 4 * hidden
    tie = text.get("tie_word_embeddings", cfg.get("tie_word_embeddings"))
    return ModelConfig(
        architecture=architecture,
        model_type=model_type or _str(text.get("model_type")),
        tie_word_embeddings=tie if isinstance(tie, bool) else None,
        **values,
    )


def _declares_gqa(cfg: Mapping[str, Any]) -> bool:
    """True when the config has a KV-head key whose value we could not read."""
    return any(k in cfg for k in _ALIASES["n_kv_heads"])


def _head_dim(cfg: Mapping[str, Any], hidden: int | None, n_heads: int | None) -> int | None:
    """Query/key head width: DeepSeek MLA splits it into a no-RoPE and a RoPE part."""
    nope, rope = _int(cfg.get("qk_nope_head_dim")), _int(cfg.get("qk_rope_head_dim"))
    if nope is not None and rope is not None:
        return nope + rope
    if hidden is not None and n_heads is not None and hidden % n_heads == 0:
        return hidden // n_heads
    return None


def infer_from_tensors(names_and_shapes: Iterable[tuple[str, Sequence[int]]]) -> ModelConfig:
    """What the tensor names and shapes (PyTorch order) reveal, for models without a config.json.

    The layer count includes any extra block a checkpoint carries (DeepSeek-V3's MTP layer).
    """
    shapes = {name: tuple(shape) for name, shape in names_and_shapes}
    roles = classify_all(shapes, shapes)

    def first(role: str, ndim: int) -> tuple[int, ...] | None:
        for n, r in roles.items():
            if r.role == role and r.kind == "weight" and len(shapes[n]) == ndim:
                return shapes[n]
        return None

    layers = [r.layer for r in roles.values() if r.layer is not None]
    experts = [r.expert for r in roles.values() if r.expert is not None]
    n_experts = max(experts) + 1 if experts else None
    # A router is [n_experts, hidden], a stacked expert tensor [n_experts, ...].
    router, stacked = first("router", 2), first("mlp_down_exps", 3)
    if router is not None:
        n_experts = router[0]
    elif stacked is not None:
        n_experts = stacked[0]
    embed, pos = first("embed", 2), first("pos_embed", 2)
    norm = first("final_norm", 1)
    hidden = embed[1] if embed else (norm[0] if norm else None)
    # Qwen3/Gemma-3 normalise q per head, so q_norm's size is the head width; OLMo-2
    # normalises the whole q projection, which says nothing about heads.
    q_norm = first("attn_q_norm", 1)
    q, k = _out_dim(roles, shapes, "attn_q"), _out_dim(roles, shapes, "attn_k")
    head_dim = n_heads = n_kv = None
    if q_norm and q and q_norm[0] < q and q % q_norm[0] == 0:
        head_dim = q_norm[0]
        n_heads = q // head_dim
        n_kv = k // head_dim if k and k % head_dim == 0 else None
    has_lm_head = any(r.role == "lm_head" and r.kind == "weight" for r in roles.values())
    return ModelConfig(
        n_layers=max(layers) + 1 if layers else None,
        hidden=hidden,
        n_heads=n_heads,
        n_kv_heads=n_kv,
        head_dim=head_dim,
        intermediate=_mlp_width(roles, shapes, expert=False),
        moe_intermediate=_mlp_width(roles, shapes, expert=True),
        n_experts=n_experts,
        vocab=embed[0] if embed else None,
        max_positions=pos[0] if pos else None,
        # Decoders without an lm_head tensor tie it to the embedding; encoders (no final
        # norm) have no head to tie, so they stay unknown.
        tie_word_embeddings=(not has_lm_head) if embed and (norm or has_lm_head) else None,
    )


def _out_dim(roles: Mapping[str, TensorRole], shapes: Mapping[str, tuple[int, ...]], role: str) -> int | None:
    """Output width of the first 2-D weight with this role."""
    for n, r in roles.items():
        shape = shapes[n]
        if r.role == role and r.kind == "weight" and len(shape) == 2:
            return shape[1] if r.transposed else shape[0]
    return None


_DENSE_UP = frozenset({"mlp_up", "mlp_gate_up"})
_EXPERT_UP = frozenset({"mlp_up_exps", "mlp_gate_up_exps"})


def _mlp_width(
    roles: Mapping[str, TensorRole], shapes: Mapping[str, tuple[int, ...]], expert: bool
) -> int | None:
    """Inner MLP width from an up (or fused gate_up, halved) projection of a dense or routed MLP."""
    for n, r in roles.items():
        shape = shapes[n]
        if r.kind != "weight" or len(shape) < 2:
            continue
        routed = r.role in _DENSE_UP and r.expert is not None
        if (r.role in _DENSE_UP and not routed and not expert) or (
            expert and (routed or r.role in _EXPERT_UP)
        ):
            width = shape[-1] if r.transposed else shape[-2]
            return width // 2 if r.fused else width
    return None


def merge(primary: ModelConfig, fallback: ModelConfig) -> ModelConfig:
    """``primary`` with its None fields taken from ``fallback``."""
    filled = {f.name: getattr(fallback, f.name) for f in fields(primary) if getattr(primary, f.name) is None}
    return replace(primary, **filled)
