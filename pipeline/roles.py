"""Canonical tensor roles, so that checkpoints with different naming conventions compare layer by layer.

``classify(name)`` maps one tensor name to a ``TensorRole`` from the table in
``pipeline.roles_table``; ``classify_all(names, shapes)`` does the same for a whole checkpoint
and settles what a single name cannot (Gemma-2/3's post-attention norm, Conv1D vs Linear
layout, a fused gate/up stored under an "up" name). Pure python: importable by every stage.

Conventions:
- ``layer`` is the block index, None outside the blocks; ``expert`` is the routed-expert index.
- Shared experts (Qwen2-MoE ``shared_expert``, DeepSeek ``shared_experts``, GGUF ``*_shexp``)
  have roles ``shared_mlp_gate``/``shared_mlp_up``/``shared_mlp_down`` and expert None.
- Tensors that stack every expert ([n_experts, ...]: GGUF ``ffn_*_exps``, transformers-v5
  ``mlp.experts.gate_up_proj``) have the ``_exps`` role suffix and expert None.
- ``fused`` names the roles a fused tensor concatenates, in storage order.
- Names nothing in the table matches get role "other", with the layer (and expert) taken from
  the path, so they are still fingerprinted but never aligned with a named role.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

from hubscan.pipeline.roles_table import BLOCK_RULES, LAYER_CONTAINERS, PREFIXES, TOP_RULES, Rule

EMBED_ROLES = frozenset({"embed", "pos_embed", "type_embed", "rel_pos_embed"})
NORM_ROLES = frozenset(
    {
        "embed_norm",
        "attn_norm",
        "attn_q_norm",
        "attn_k_norm",
        "attn_q_a_norm",
        "attn_kv_a_norm",
        "post_attn_norm",
        "mlp_norm",
        "post_mlp_norm",
        "final_norm",
    }
)
ATTN_ROLES = frozenset(
    {
        "attn_q",
        "attn_k",
        "attn_v",
        "attn_o",
        "attn_qkv",
        "attn_q_a",
        "attn_q_b",
        "attn_kv_a",
        "attn_kv_b",
        "attn_k_b",
        "attn_v_b",
    }
)
EXPERT_STACK_ROLES = frozenset({"mlp_gate_exps", "mlp_up_exps", "mlp_down_exps", "mlp_gate_up_exps"})
MLP_ROLES = frozenset(
    {
        "mlp_gate",
        "mlp_up",
        "mlp_down",
        "mlp_gate_up",
        "router",
        "shared_router",
        "shared_mlp_gate",
        "shared_mlp_up",
        "shared_mlp_down",
    }
    | EXPERT_STACK_ROLES
)
# Roles whose weight is a matrix (or a stack of them): the ones row/column statistics apply to.
MATRIX_ROLES = EMBED_ROLES | ATTN_ROLES | MLP_ROLES | {"lm_head", "pooler"}
ROLES = frozenset(MATRIX_ROLES | NORM_ROLES | {"other"})

FUSED_PARTS: dict[str, tuple[str, ...]] = {
    "attn_qkv": ("attn_q", "attn_k", "attn_v"),
    "mlp_gate_up": ("mlp_gate", "mlp_up"),
    "mlp_gate_up_exps": ("mlp_gate_exps", "mlp_up_exps"),
}

# Roles whose input is the residual stream, and those whose output is: a [*, hidden] weight
# of the first kind is stored [out, in], of the second [in, out] would be transposed.
_READS_HIDDEN = frozenset(
    {"attn_q", "attn_k", "attn_v", "attn_qkv", "attn_q_a", "attn_kv_a", "mlp_gate", "mlp_up"}
    | {"mlp_gate_up", "router", "shared_mlp_gate", "shared_mlp_up"}
    | {"mlp_gate_exps", "mlp_up_exps", "mlp_gate_up_exps"}
)
_WRITES_HIDDEN = frozenset({"attn_o", "mlp_down", "shared_mlp_down", "mlp_down_exps"})
# The same sets for readers that place a packed Linear's hidden axis by its role (pipeline/readers/bnb.py).
READS_HIDDEN, WRITES_HIDDEN = _READS_HIDDEN, _WRITES_HIDDEN
# (up, gate, down, fused gate_up): an "up" twice as wide as down's input, with no gate
# beside it, is a fused GLU projection (Phi-3 in GGUF stores gate_up as ffn_up).
_GLU_SETS = (
    ("mlp_up", "mlp_gate", "mlp_down", "mlp_gate_up"),
    ("mlp_up_exps", "mlp_gate_exps", "mlp_down_exps", "mlp_gate_up_exps"),
)


@dataclass(frozen=True, slots=True)
class TensorRole:
    """What a tensor is in its architecture: role, block, expert, weight or bias, and layout."""

    role: str
    layer: int | None = None
    expert: int | None = None
    kind: str = (
        "weight"  # "weight" | "bias" | "quant" (a GPTQ/AWQ or scaled-Linear part) | an ADAPTER_KINDS part
    )
    fused: tuple[str, ...] = ()
    transposed: bool = False  # stored [in, out] instead of PyTorch Linear's [out, in]


def _compile(pattern: str) -> re.Pattern[str]:
    """A table pattern as a regex: "." is a literal dot, {e} captures the expert index."""
    return re.compile(pattern.replace(".", r"\.").replace("{e}", r"(?P<e>\d+)"))


_CONTAINERS = "|".join(LAYER_CONTAINERS)
_PREFIX_RE = re.compile(rf"(?:{'|'.join(PREFIXES)})\.")
_BLOCK_RE = re.compile(rf"(?P<c>{_CONTAINERS})\.(?P<n>\d+)\.(?P<rest>.+)")
_TOP: list[tuple[re.Pattern[str], Rule]] = [(_compile(r.pattern), r) for r in TOP_RULES]
_BLOCK: list[tuple[re.Pattern[str], Rule]] = [(_compile(r.pattern), r) for r in BLOCK_RULES]
_ANY_LAYER_RE = re.compile(rf"(?:^|\.)(?:{_CONTAINERS})\.(\d+)(?:\.|$)")
_ANY_EXPERT_RE = re.compile(r"(?:^|\.)experts\.(\d+)(?:\.|$)")
_POST_FF_RE = re.compile(r"(?:^|\.)post_feedforward_layernorm\.\w+$")
_POST_ATTN_RE = re.compile(r"(?:^|\.)post_attention_layernorm\.\w+$")


# GPTQ/AWQ store a quantised Linear as these parameters of the module; the reader rebuilds them
# into "<module>.weight", so a part seen on its own keeps its Linear's role under kind "quant".
QUANT_PARTS = frozenset({"qweight", "qzeros", "scales", "g_idx"})
# The same for compressed-tensors and block-FP8 Linears (pipeline/readers/scaled.py).
SCALED_PARTS = frozenset(
    {
        "weight_packed",
        "weight_scale",
        "weight_scale_inv",
        "weight_zero_point",
        "weight_global_scale",
        "weight_shape",
        "weight_g_idx",
    }
)
# PEFT stores an adapted Linear's parts under the module's path: "<module>.lora_A.weight" [r, in],
# "<module>.lora_B.weight" [out, r], DoRA's "<module>.lora_magnitude_vector" [out] and IA3's
# "<module>.ia3_l"; each keeps its Linear's role under a kind of its own. A LoRA on an embedding stores
# "lora_embedding_A" [r, vocab] and "lora_embedding_B" [dim, r].
ADAPTER_KINDS = {"lora_A": "lora_A", "lora_B": "lora_B", "lora_embedding_A": "lora_A", "lora_embedding_B": "lora_B",
                 "lora_magnitude_vector": "dora_m", "ia3_l": "ia3"}  # fmt: skip


def _split_param(name: str) -> tuple[str, str]:
    """(module path, kind): ".weight"/".bias", old LayerNorm ".gamma"/".beta", packed-int parts, or "_bias"."""
    head, _, last = name.rpartition(".")
    adapter = _adapter_part(head, last)
    if adapter is not None:
        return adapter
    if head and (last in QUANT_PARTS or last in SCALED_PARTS):
        return head, "quant"
    if head and last in ("weight", "gamma"):
        return head, "weight"
    if head and last in ("bias", "beta"):
        return head, "bias"
    # Bare parameters: DeepSeek-V3 e_score_correction_bias, GPT-OSS gate_up_proj_bias
    if last.endswith("_bias"):
        return name[: -len("_bias")], "bias"
    if last.endswith("_weight"):
        return name[: -len("_weight")], "weight"
    return name, "weight"


def _adapter_part(head: str, last: str) -> tuple[str, str] | None:
    """(module path, kind) of a PEFT adapter part, with or without a trailing ".weight"."""
    if last == "weight" and "." in head:
        head, _, last = head.rpartition(".")
    if head and last in ADAPTER_KINDS:
        return head, ADAPTER_KINDS[last]
    return None


def _strip_prefixes(path: str) -> str:
    """Drop wrapper prefixes ("model.", "model.language_model.", "bert.encoder.", …) until none is left."""
    while m := _PREFIX_RE.match(path):
        path = path[m.end() :]
    return path


def _role(rule: Rule, layer: int | None, expert: int | None, kind: str) -> TensorRole:
    # A bias is a vector: the table's layout flag only describes the weight.
    transposed = rule.transposed and kind == "weight"
    return TensorRole(rule.role, layer, expert, kind, FUSED_PARTS.get(rule.role, ()), transposed)


@lru_cache(maxsize=65536)
def classify(name: str) -> TensorRole:
    """The canonical role of one tensor name; role "other" (layer from the path) when the table has none."""
    path, kind = _split_param(name)
    path = _strip_prefixes(path)
    block = _BLOCK_RE.fullmatch(path)
    if block:
        container, rest = block["c"], block["rest"]
        for regex, rule in _BLOCK:
            if rule.containers and container not in rule.containers:
                continue
            m = regex.fullmatch(rest)
            if m:
                e = m.groupdict().get("e")
                return _role(rule, int(block["n"]), None if e is None else int(e), kind)
    else:
        for regex, rule in _TOP:
            if regex.fullmatch(path):
                return _role(rule, None, None, kind)
    layer = _ANY_LAYER_RE.search(path)
    expert = _ANY_EXPERT_RE.search(path)
    return TensorRole(
        "other",
        int(layer[1]) if layer else None,
        int(expert[1]) if expert else None,
        kind,
    )


def classify_all(
    names: Iterable[str], shapes: Mapping[str, Sequence[int]] | None = None
) -> dict[str, TensorRole]:
    """Roles for every tensor of one model, using the whole checkpoint (all shards) as context.

    Shapes (PyTorch order, as readers report them) let it correct the layout flag and spot
    fused gate/up tensors; without them only name context is used.
    """
    roles = {n: classify(n) for n in names}
    # Gemma-2/3 and OLMo-2 apply post_attention_layernorm to the attention output; their
    # post_feedforward_layernorm is what tells them apart from Llama, where it is the MLP norm.
    if any(_POST_FF_RE.search(n) for n in roles):
        for n, r in roles.items():
            if r.role == "mlp_norm" and _POST_ATTN_RE.search(n):
                roles[n] = replace(r, role="post_attn_norm")
    if shapes:
        hidden = _hidden_size(roles, shapes)
        if hidden:
            _fix_layout(roles, shapes, hidden)
        _fix_glu(roles, shapes)
    return roles


def _hidden_size(roles: Mapping[str, TensorRole], shapes: Mapping[str, Sequence[int]]) -> int | None:
    """Residual width: the token embedding's row length, else the final norm's size."""
    for want, ndim, axis in (("embed", 2, 1), ("final_norm", 1, 0)):
        for n, r in roles.items():
            shape = shapes.get(n)
            if r.role == want and r.kind == "weight" and shape is not None and len(shape) == ndim:
                return int(shape[axis])
    return None


def _fix_layout(roles: dict[str, TensorRole], shapes: Mapping[str, Sequence[int]], hidden: int) -> None:
    """Set ``transposed`` from where the hidden size sits; square matrices follow their model's other tensors."""
    square: list[str] = []
    # Per group (stacked experts or not): did the checkable tensors contradict the table?
    contradicted: dict[bool, set[bool]] = {}
    for n, r in roles.items():
        shape = shapes.get(n)
        if r.kind != "weight" or shape is None or len(shape) < 2:
            continue
        rows, cols = shape[-2], shape[-1]
        if r.role in _READS_HIDDEN:
            # Linear stores [out, in]: hidden is the last axis unless transposed.
            flip = rows == hidden
        elif r.role in _WRITES_HIDDEN:
            flip = cols == hidden
        else:
            continue
        if rows == cols:
            square.append(n)
        elif hidden in (rows, cols):
            contradicted.setdefault(r.role in EXPERT_STACK_ROLES, set()).add(flip != r.transposed)
            roles[n] = replace(r, transposed=flip)
    # GPT-BigCode and Qwen-1 reuse GPT-2's Conv1D names with nn.Linear, and GPT-OSS stacks
    # experts [E, in, out] under the name Qwen-MoE uses for [E, out, in]: when every checkable
    # tensor contradicts the table, the square ones (attn c_proj, GPT-OSS down_proj) do too.
    for n in square:
        r = roles[n]
        if contradicted.get(r.role in EXPERT_STACK_ROLES) == {True}:
            roles[n] = replace(r, transposed=not r.transposed)


def _fix_glu(roles: dict[str, TensorRole], shapes: Mapping[str, Sequence[int]]) -> None:
    """Re-label an "up" tensor that holds gate and up together (no gate beside it, twice down's input)."""
    for up_role, gate_role, down_role, fused_role in _GLU_SETS:
        slots: dict[tuple[int | None, int | None], dict[tuple[str, str], str]] = {}
        for n, r in roles.items():
            if r.role in (up_role, gate_role, down_role):
                slots.setdefault((r.layer, r.expert), {})[(r.role, r.kind)] = n
        for slot in slots.values():
            up, down = slot.get((up_role, "weight")), slot.get((down_role, "weight"))
            if (gate_role, "weight") in slot or up is None or down is None:
                continue
            up_shape, down_shape = shapes.get(up), shapes.get(down)
            if not up_shape or not down_shape or len(up_shape) < 2 or len(down_shape) < 2:
                continue
            up_out = up_shape[-1] if roles[up].transposed else up_shape[-2]
            down_in = down_shape[-2] if roles[down].transposed else down_shape[-1]
            if up_out == 2 * down_in:
                for (role, _kind), n in slot.items():
                    if role == up_role:
                        roles[n] = replace(roles[n], role=fused_role, fused=FUSED_PARTS[fused_role])
