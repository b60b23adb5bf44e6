"""The naming table behind ``pipeline.roles``: which tensor names mean which canonical role.

Patterns are regular expressions over a tensor name with its known prefixes ("model.",
"transformer.", "bert.", …) and its parameter suffix (".weight", ".bias") already removed.
In a pattern a "." is a literal dot, and ``{e}`` captures the expert index. Block rules are
matched after ``<container>.<layer>.``; top rules against the whole remaining name. The first
rule that matches wins, so a rule that must beat a more general one comes first.

Coverage was checked against gguf-py's ``TensorNameMap`` (gguf 0.19.0), which lists the Hugging
Face names llama.cpp converts for each architecture; the table is ours, gguf is not imported.
"""

from __future__ import annotations

from typing import NamedTuple


class Rule(NamedTuple):
    """One table row: a name pattern, its canonical role, and layout facts the name implies."""

    pattern: str
    role: str
    # True where the checkpoint stores [in, out] (GPT-2's Conv1D, Llama-4 stacked experts).
    transposed: bool = False
    # Block containers the rule applies under; empty means any of LAYER_CONTAINERS.
    containers: tuple[str, ...] = ()


# Leading path components that only say which wrapper class saved the weights. They are
# stripped repeatedly, so "model.language_model.", "language_model.model." and PEFT's
# "base_model.model.model." all reduce to the bare decoder names. Vision and audio towers
# ("vision_tower.", "visual.") are deliberately not here: their layers must not collide
# with the text layers, so they fall back to role "other".
PREFIXES = (
    "model",
    "transformer",
    "language_model",
    "text_model",
    "base_model",
    "module",
    "backbone",
    "bert",
    "roberta",
    "xlm_roberta",
    "mpnet",
    "distilbert",
    "gpt_neox",
    "encoder",
)

# Path components that hold the numbered transformer blocks.
LAYER_CONTAINERS = ("layers", "layer", "h", "blocks", "blk", "block")

# Tensors outside the blocks.
TOP_RULES = [
    # HF decoders, GPT-2, GPT-NeoX, BERT family, Falcon/Bloom, Llama-pth, Phi-2, Mamba, GGUF
    Rule(
        "embed_tokens|wte|embd.wte|tok_embeddings|embed_in|word_embeddings|embeddings.word_embeddings"
        "|embeddings.tok_embeddings|embedding.word_embeddings|token_embeddings|embedding|embeddings|token_embd",
        "embed",
    ),
    Rule("wpe|embed_positions|embeddings.position_embeddings|position_embd", "pos_embed"),
    Rule("embeddings.token_type_embeddings|token_types", "type_embed"),
    Rule(
        "embeddings.LayerNorm|embeddings.norm|word_embeddings_layernorm|emb_ln|embedding_norm|token_embd_norm",
        "embed_norm",
    ),
    # MPNet: one [buckets, heads] table shared by every layer
    Rule("relative_attention_bias", "rel_pos_embed"),
    Rule("norm|ln_f|norm_f|final_layer_norm|final_layernorm|final_norm|output_norm", "final_norm"),
    # GPT-NeoX calls it embed_out; Llama-pth and GGUF call it output
    Rule("lm_head|lm_head.linear|embed_out|output|output_layer", "lm_head"),
    Rule("pooler.dense", "pooler"),
]

# GPT-2 family: Conv1D stores [in, out]. Only under "h", where GPT-2 keeps its blocks;
# GPT-BigCode and Qwen-1 reuse these names with nn.Linear, which classify_all() corrects
# from shapes.
GPT2_RULES = [
    Rule("attn.c_attn", "attn_qkv", True, ("h",)),
    Rule("attn.c_proj", "attn_o", True, ("h",)),
    Rule("mlp.c_fc", "mlp_up", True, ("h",)),
    Rule("mlp.c_proj", "mlp_down", True, ("h",)),
    Rule("ln_1", "attn_norm"),
    Rule("ln_2", "mlp_norm"),
    # Qwen-1 (also under "h"): w2 is the activated half, so w2=gate, w1=up
    Rule("mlp.w1", "mlp_up", containers=("h",)),
    Rule("mlp.w2", "mlp_gate", containers=("h",)),
]

# Llama, Mistral, Qwen2/3, Gemma 1-3, Phi-3, OLMo, Cohere, Granite, StarCoder2, GPT-J, Phi-2,
# Llama-4 dense layers: the HF Llama-style names. post_attention_layernorm is the pre-MLP norm here; Gemma-2/3
# and OLMo-2 use it after attention, which classify_all() detects from the checkpoint.
LLAMA_RULES = [
    Rule("(self_attn|attn).q_proj", "attn_q"),
    Rule("(self_attn|attn).k_proj", "attn_k"),
    Rule("(self_attn|attn).v_proj", "attn_v"),
    Rule("(self_attn|attn).(o_proj|out_proj|dense)", "attn_o"),
    Rule("self_attn.qkv_proj", "attn_qkv"),
    Rule("(self_attn|attention).(q_norm|q_layernorm|query_layernorm)", "attn_q_norm"),
    Rule("(self_attn|attention).(k_norm|k_layernorm|key_layernorm)", "attn_k_norm"),
    Rule("input_layernorm|pre_attention_layernorm|attention_layernorm|ln1", "attn_norm"),
    Rule("post_attention_layernorm|pre_feedforward_layernorm", "mlp_norm"),
    Rule("pre_ff_layernorm|pre_mlp_layernorm|pre_moe_layernorm|feedforward_layernorm|ln2", "mlp_norm"),
    Rule("post_self_attn_layernorm", "post_attn_norm"),
    Rule("post_feedforward_layernorm|post_mlp_layernorm", "post_mlp_norm"),
    Rule("(mlp|feed_forward).gate_proj", "mlp_gate"),
    Rule("(mlp|feed_forward).up_proj|mlp.(fc1|fc_in|c_fc)", "mlp_up"),
    Rule("(mlp|feed_forward).down_proj|mlp.(fc2|fc_out|c_proj)", "mlp_down"),
    Rule("mlp.gate_up_proj", "mlp_gate_up"),
]

# MPT, MosaicBERT, nomic-bert, old Phi-1.5/2, ModernBERT: Wqkv-style fused attention.
# ModernBERT's Wi is chunked into (activated, linear) halves: gate then up.
WQKV_RULES = [
    Rule("(attn|mixer).Wqkv", "attn_qkv"),
    Rule("attn.Wo", "attn_o"),
    Rule("mlp.Wi", "mlp_gate_up"),
    Rule("mlp.Wo", "mlp_down"),
    Rule("mlp_norm", "mlp_norm"),
    Rule("norm_1|norm1", "attn_norm"),
    Rule("norm_2|norm2", "mlp_norm"),
    Rule("ffn.up_proj|mlp.fc11", "mlp_up"),
    Rule("mlp.fc12", "mlp_gate"),
    Rule("ffn.down_proj", "mlp_down"),
]

# DeepSeek-V2/V3 multi-head latent attention (V2-Lite has a plain q_proj instead of q_a/q_b)
MLA_RULES = [
    Rule("self_attn.q_a_proj", "attn_q_a"),
    Rule("self_attn.q_b_proj", "attn_q_b"),
    Rule("self_attn.kv_a_proj_with_mqa", "attn_kv_a"),
    Rule("self_attn.kv_b_proj", "attn_kv_b"),
    Rule("self_attn.q_a_layernorm", "attn_q_a_norm"),
    Rule("self_attn.kv_a_layernorm", "attn_kv_a_norm"),
    # kv_b split into its key and value halves (also what newer GGUF conversions store)
    Rule("self_attn.k_b_proj", "attn_k_b"),
    Rule("self_attn.v_b_proj", "attn_v_b"),
]

# Mixture of experts. Qwen2-MoE, Qwen3-MoE, OLMoE, DeepSeek-V2/V3: mlp.gate router and
# mlp.experts.N; Mixtral: block_sparse_moe with w1=gate, w3=up, w2=down; Llama-4 and
# GPT-OSS: feed_forward/mlp.router. Shared experts get shared_mlp_* roles, expert=None.
MOE_RULES = [
    Rule("(mlp|block_sparse_moe).gate|(mlp|feed_forward|block_sparse_moe).router(.layer)?", "router"),
    # Routing biases: DeepSeek-V3 mlp.gate.e_score_correction_bias, others' expert_bias (kind "bias")
    Rule("(mlp|block_sparse_moe)(.gate)?.e_score_correction|(mlp|feed_forward)(.gate)?.expert", "router"),
    Rule("(mlp|feed_forward).experts.{e}.gate_proj", "mlp_gate"),
    Rule("(mlp|feed_forward).experts.{e}.up_proj", "mlp_up"),
    Rule("(mlp|feed_forward).experts.{e}.down_proj", "mlp_down"),
    Rule("block_sparse_moe.experts.{e}.w1", "mlp_gate"),
    Rule("block_sparse_moe.experts.{e}.w3", "mlp_up"),
    Rule("block_sparse_moe.experts.{e}.w2", "mlp_down"),
    Rule("((mlp|feed_forward|block_sparse_moe).)?(shared_experts?|shared_mlp).gate_proj", "shared_mlp_gate"),
    Rule("((mlp|feed_forward|block_sparse_moe).)?(shared_experts?|shared_mlp).up_proj", "shared_mlp_up"),
    Rule("((mlp|feed_forward|block_sparse_moe).)?(shared_experts?|shared_mlp).down_proj", "shared_mlp_down"),
    # Qwen2-MoE: a [1, hidden] gate on the shared expert's output
    Rule("mlp.shared_expert_gate", "shared_router"),
    # Stacked [n_experts, ...] tensors. Llama-4 stores [E, in, out]; the transformers-v5
    # mlp.experts layout differs between GPT-OSS ([E, in, out]) and Qwen-MoE ([E, out, in]),
    # so classify_all() settles it from shapes.
    Rule("feed_forward.experts.gate_up_proj", "mlp_gate_up_exps", True),
    Rule("feed_forward.experts.down_proj", "mlp_down_exps", True),
    Rule("(mlp.)?experts.gate_up_proj", "mlp_gate_up_exps"),
    Rule("(mlp.)?experts.gate_proj", "mlp_gate_exps"),
    Rule("(mlp.)?experts.up_proj", "mlp_up_exps"),
    Rule("(mlp.)?experts.down_proj", "mlp_down_exps"),
    # GraniteMoE: input_linear is gate and up stacked over experts
    Rule("block_sparse_moe.input_linear", "mlp_gate_up_exps"),
    Rule("block_sparse_moe.output_linear", "mlp_down_exps"),
]

# Meta consolidated .pth / mistral-inference (Mistral-Large-3 with MLA) / InternLM2:
# w1=gate, w3=up, w2=down
META_RULES = [
    Rule("attention.wq", "attn_q"),
    Rule("attention.wk", "attn_k"),
    Rule("attention.wv", "attn_v"),
    Rule("attention.wo", "attn_o"),
    Rule("attention.wqkv", "attn_qkv"),
    Rule("attention_norm", "attn_norm"),
    Rule("ffn_norm", "mlp_norm"),
    Rule("feed_forward.w1", "mlp_gate"),
    Rule("feed_forward.w3", "mlp_up"),
    Rule("feed_forward.w2", "mlp_down"),
    Rule("feed_forward.gate", "router"),
    Rule("feed_forward.experts.{e}.w1", "mlp_gate"),
    Rule("feed_forward.experts.{e}.w3", "mlp_up"),
    Rule("feed_forward.experts.{e}.w2", "mlp_down"),
    Rule("gate", "router"),
    Rule("shared_experts.w1", "shared_mlp_gate"),
    Rule("shared_experts.w3", "shared_mlp_up"),
    Rule("shared_experts.w2", "shared_mlp_down"),
    Rule("attention.wq_a", "attn_q_a"),
    Rule("attention.wq_b", "attn_q_b"),
    Rule("attention.wkv_a_with_mqa", "attn_kv_a"),
    Rule("attention.q_a_norm", "attn_q_a_norm"),
    Rule("attention.kv_a_norm", "attn_kv_a_norm"),
    Rule("attention.k_b_proj", "attn_k_b"),
    Rule("attention.v_b_proj", "attn_v_b"),
]

# GPT-NeoX/Pythia, Falcon, Bloom, ChatGLM: fused query_key_value (GPT-NeoX interleaves it per head)
NEOX_RULES = [
    Rule("(attention|self_attention).query_key_value", "attn_qkv"),
    Rule("(attention|self_attention).dense", "attn_o"),
    Rule("mlp.dense_h_to_4h", "mlp_up"),
    Rule("mlp.dense_4h_to_h", "mlp_down"),
    # Falcon-40B's two parallel-block norms
    Rule("ln_attn", "attn_norm"),
    Rule("ln_mlp", "mlp_norm"),
]

# BERT, RoBERTa, MiniLM, E5 (post-LN: attention.output.LayerNorm follows attention), MPNet,
# DistilBERT
ENCODER_RULES = [
    Rule("attention.self.query", "attn_q"),
    Rule("attention.self.key", "attn_k"),
    Rule("attention.self.value", "attn_v"),
    Rule("attention.output.dense", "attn_o"),
    Rule("attention.output.LayerNorm", "attn_norm"),
    Rule("intermediate.dense", "mlp_up"),
    Rule("output.dense", "mlp_down"),
    Rule("output.LayerNorm", "mlp_norm"),
    Rule("attention.attn.q", "attn_q"),
    Rule("attention.attn.k", "attn_k"),
    Rule("attention.attn.v", "attn_v"),
    Rule("attention.attn.o", "attn_o"),
    Rule("attention.LayerNorm", "attn_norm"),
    Rule("attention.q_lin", "attn_q"),
    Rule("attention.k_lin", "attn_k"),
    Rule("attention.v_lin", "attn_v"),
    Rule("attention.out_lin", "attn_o"),
    Rule("sa_layer_norm", "attn_norm"),
    Rule("ffn.lin1", "mlp_up"),
    Rule("ffn.lin2", "mlp_down"),
    Rule("output_layer_norm", "mlp_norm"),
]

# GGUF (llama.cpp) block names. ffn_norm is the pre-MLP norm in every architecture, Gemma
# included; BERT's post-LN norms are attn_output_norm and layer_output_norm.
GGUF_RULES = [
    Rule("attn_q", "attn_q"),
    Rule("attn_k", "attn_k"),
    Rule("attn_v", "attn_v"),
    Rule("attn_output", "attn_o"),
    Rule("attn_qkv", "attn_qkv"),
    Rule("attn_norm|attn_output_norm", "attn_norm"),
    Rule("attn_q_norm", "attn_q_norm"),
    Rule("attn_k_norm", "attn_k_norm"),
    Rule("post_attention_norm", "post_attn_norm"),
    Rule("ffn_norm|layer_output_norm", "mlp_norm"),
    Rule("post_ffw_norm", "post_mlp_norm"),
    Rule("ffn_gate", "mlp_gate"),
    Rule("ffn_up", "mlp_up"),
    Rule("ffn_down", "mlp_down"),
    # GGUF files converted before 2024 kept one tensor per expert: ffn_gate.N
    Rule("ffn_gate.{e}", "mlp_gate"),
    Rule("ffn_up.{e}", "mlp_up"),
    Rule("ffn_down.{e}", "mlp_down"),
    Rule("ffn_gate_inp|exp_probs_b", "router"),
    Rule("ffn_gate_inp_shexp", "shared_router"),
    Rule("ffn_gate_exps", "mlp_gate_exps"),
    Rule("ffn_up_exps", "mlp_up_exps"),
    Rule("ffn_down_exps", "mlp_down_exps"),
    Rule("ffn_gate_up_exps", "mlp_gate_up_exps"),
    Rule("ffn_gate_shexp", "shared_mlp_gate"),
    Rule("ffn_up_shexp", "shared_mlp_up"),
    Rule("ffn_down_shexp", "shared_mlp_down"),
    Rule("attn_q_a", "attn_q_a"),
    Rule("attn_q_b", "attn_q_b"),
    Rule("attn_kv_a_mqa", "attn_kv_a"),
    Rule("attn_kv_b", "attn_kv_b"),
    # newer conversions split DeepSeek's kv_b into its key and value halves
    Rule("attn_k_b", "attn_k_b"),
    Rule("attn_v_b", "attn_v_b"),
    Rule("attn_q_a_norm", "attn_q_a_norm"),
    Rule("attn_kv_a_norm", "attn_kv_a_norm"),
]

BLOCK_RULES = (
    GPT2_RULES
    + LLAMA_RULES
    + WQKV_RULES
    + MLA_RULES
    + MOE_RULES
    + META_RULES
    + NEOX_RULES
    + ENCODER_RULES
    + GGUF_RULES
)
