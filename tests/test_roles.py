"""Tensor-name roles and model configs: real names per architecture family → exact roles."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import astuple

import pytest

from hubscan.pipeline.model_config import ModelConfig, from_hf_config, infer_from_tensors, merge
from hubscan.pipeline.roles import (
    FUSED_PARTS,
    MATRIX_ROLES,
    NORM_ROLES,
    ROLES,
    TensorRole,
    classify,
    classify_all,
)
from hubscan.pipeline.roles_table import BLOCK_RULES, TOP_RULES

QKV = ("attn_q", "attn_k", "attn_v")
GU = ("mlp_gate", "mlp_up")
GU_EXPS = ("mlp_gate_exps", "mlp_up_exps")
W, B = "weight", "bias"


def r(
    role: str,
    layer: int | None = None,
    expert: int | None = None,
    kind: str = W,
    fused: tuple[str, ...] = (),
    transposed: bool = False,
) -> tuple[object, ...]:
    return (role, layer, expert, kind, fused, transposed)


CASES = [
    # Llama-3 / Mistral
    ("model.embed_tokens.weight", r("embed")),
    ("model.layers.0.self_attn.q_proj.weight", r("attn_q", 0)),
    ("model.layers.31.self_attn.k_proj.weight", r("attn_k", 31)),
    ("model.layers.5.self_attn.v_proj.weight", r("attn_v", 5)),
    ("model.layers.5.self_attn.o_proj.weight", r("attn_o", 5)),
    ("model.layers.5.mlp.gate_proj.weight", r("mlp_gate", 5)),
    ("model.layers.5.mlp.up_proj.weight", r("mlp_up", 5)),
    ("model.layers.5.mlp.down_proj.weight", r("mlp_down", 5)),
    ("model.layers.5.input_layernorm.weight", r("attn_norm", 5)),
    ("model.layers.5.post_attention_layernorm.weight", r("mlp_norm", 5)),
    ("model.norm.weight", r("final_norm")),
    ("lm_head.weight", r("lm_head")),
    ("model.layers.0.self_attn.rotary_emb.inv_freq", r("other", 0)),
    # Qwen2 (qkv biases), Qwen3 (per-head q/k norms)
    ("model.layers.3.self_attn.q_proj.bias", r("attn_q", 3, kind=B)),
    ("model.layers.3.self_attn.v_proj.bias", r("attn_v", 3, kind=B)),
    ("model.layers.7.self_attn.q_norm.weight", r("attn_q_norm", 7)),
    ("model.layers.7.self_attn.k_norm.weight", r("attn_k_norm", 7)),
    # Qwen2-MoE / Qwen3-MoE
    ("model.layers.2.mlp.gate.weight", r("router", 2)),
    ("model.layers.2.mlp.experts.59.gate_proj.weight", r("mlp_gate", 2, 59)),
    ("model.layers.2.mlp.experts.0.up_proj.weight", r("mlp_up", 2, 0)),
    ("model.layers.47.mlp.experts.127.down_proj.weight", r("mlp_down", 47, 127)),
    ("model.layers.2.mlp.shared_expert.gate_proj.weight", r("shared_mlp_gate", 2)),
    ("model.layers.2.mlp.shared_expert.up_proj.weight", r("shared_mlp_up", 2)),
    ("model.layers.2.mlp.shared_expert.down_proj.weight", r("shared_mlp_down", 2)),
    ("model.layers.2.mlp.shared_expert_gate.weight", r("shared_router", 2)),
    # Mixtral: w1=gate, w3=up, w2=down
    ("model.layers.1.block_sparse_moe.gate.weight", r("router", 1)),
    ("model.layers.1.block_sparse_moe.experts.7.w1.weight", r("mlp_gate", 1, 7)),
    ("model.layers.1.block_sparse_moe.experts.7.w3.weight", r("mlp_up", 1, 7)),
    ("model.layers.1.block_sparse_moe.experts.7.w2.weight", r("mlp_down", 1, 7)),
    # DeepSeek-V2/V3: MLA, dense first layers, routing bias, shared experts, FP8 scales, MTP layer
    ("model.layers.0.self_attn.q_a_proj.weight", r("attn_q_a", 0)),
    ("model.layers.0.self_attn.q_a_layernorm.weight", r("attn_q_a_norm", 0)),
    ("model.layers.0.self_attn.q_b_proj.weight", r("attn_q_b", 0)),
    ("model.layers.0.self_attn.kv_a_proj_with_mqa.weight", r("attn_kv_a", 0)),
    ("model.layers.0.self_attn.kv_a_layernorm.weight", r("attn_kv_a_norm", 0)),
    ("model.layers.0.self_attn.kv_b_proj.weight", r("attn_kv_b", 0)),
    ("model.layers.0.mlp.gate_proj.weight", r("mlp_gate", 0)),
    ("model.layers.3.mlp.gate.weight", r("router", 3)),
    ("model.layers.3.mlp.gate.e_score_correction_bias", r("router", 3, kind=B)),
    ("model.layers.3.mlp.experts.255.up_proj.weight", r("mlp_up", 3, 255)),
    ("model.layers.3.mlp.shared_experts.down_proj.weight", r("shared_mlp_down", 3)),
    # a block-FP8 scale seen on its own keeps its Linear's role, as a quantiser part (never a weight)
    ("model.layers.3.self_attn.q_a_proj.weight_scale_inv", r("attn_q_a", 3, kind="quant")),
    ("model.layers.3.mlp.experts.9.up_proj.weight_scale_inv", r("mlp_up", 3, 9, kind="quant")),
    ("model.layers.61.eh_proj.weight", r("other", 61)),
    ("model.layers.1.self_attn.q_proj.weight", r("attn_q", 1)),  # V2-Lite: no q LoRA
    # Gemma-2/3 (alone; classify_all settles post_attention_layernorm) and Gemma-3 multimodal
    ("model.layers.4.pre_feedforward_layernorm.weight", r("mlp_norm", 4)),
    ("model.layers.4.post_feedforward_layernorm.weight", r("post_mlp_norm", 4)),
    ("language_model.model.layers.4.self_attn.q_norm.weight", r("attn_q_norm", 4)),
    ("model.language_model.layers.4.mlp.down_proj.weight", r("mlp_down", 4)),
    ("model.language_model.embed_tokens.weight", r("embed")),
    ("language_model.lm_head.weight", r("lm_head")),
    ("model.vision_tower.vision_model.encoder.layers.4.self_attn.q_proj.weight", r("other", 4)),
    ("model.multi_modal_projector.mm_input_projection_weight", r("other")),
    # Phi-3: fused qkv and gate_up
    ("model.layers.0.self_attn.qkv_proj.weight", r("attn_qkv", 0, fused=QKV)),
    ("model.layers.0.mlp.gate_up_proj.weight", r("mlp_gate_up", 0, fused=GU)),
    # GPT-2: Conv1D [in, out]
    ("wte.weight", r("embed")),
    ("transformer.wte.weight", r("embed")),
    ("wpe.weight", r("pos_embed")),
    ("h.0.attn.c_attn.weight", r("attn_qkv", 0, fused=QKV, transposed=True)),
    ("h.0.attn.c_attn.bias", r("attn_qkv", 0, kind=B, fused=QKV)),
    ("transformer.h.11.attn.c_proj.weight", r("attn_o", 11, transposed=True)),
    ("h.11.ln_1.weight", r("attn_norm", 11)),
    ("h.11.ln_1.bias", r("attn_norm", 11, kind=B)),
    ("h.11.ln_2.weight", r("mlp_norm", 11)),
    ("h.11.mlp.c_fc.weight", r("mlp_up", 11, transposed=True)),
    ("h.11.mlp.c_proj.weight", r("mlp_down", 11, transposed=True)),
    ("ln_f.weight", r("final_norm")),
    ("h.0.attn.bias", r("other", 0, kind=B)),  # the causal-mask buffer of old checkpoints
    # GPT-NeoX / Pythia
    ("gpt_neox.embed_in.weight", r("embed")),
    ("gpt_neox.layers.3.attention.query_key_value.weight", r("attn_qkv", 3, fused=QKV)),
    ("gpt_neox.layers.3.attention.dense.weight", r("attn_o", 3)),
    ("gpt_neox.layers.3.input_layernorm.weight", r("attn_norm", 3)),
    ("gpt_neox.layers.3.post_attention_layernorm.weight", r("mlp_norm", 3)),
    ("gpt_neox.layers.3.mlp.dense_h_to_4h.weight", r("mlp_up", 3)),
    ("gpt_neox.layers.3.mlp.dense_4h_to_h.bias", r("mlp_down", 3, kind=B)),
    ("gpt_neox.final_layer_norm.weight", r("final_norm")),
    ("embed_out.weight", r("lm_head")),
    # BERT / RoBERTa / MiniLM (post-LN)
    ("bert.embeddings.word_embeddings.weight", r("embed")),
    ("embeddings.position_embeddings.weight", r("pos_embed")),
    ("bert.embeddings.token_type_embeddings.weight", r("type_embed")),
    ("bert.embeddings.LayerNorm.bias", r("embed_norm", kind=B)),
    ("bert.encoder.layer.5.attention.self.query.weight", r("attn_q", 5)),
    ("encoder.layer.5.attention.self.key.weight", r("attn_k", 5)),
    ("encoder.layer.5.attention.self.value.bias", r("attn_v", 5, kind=B)),
    ("encoder.layer.5.attention.output.dense.weight", r("attn_o", 5)),
    ("encoder.layer.5.attention.output.LayerNorm.weight", r("attn_norm", 5)),
    ("encoder.layer.5.intermediate.dense.weight", r("mlp_up", 5)),
    ("encoder.layer.5.output.dense.weight", r("mlp_down", 5)),
    ("encoder.layer.5.output.LayerNorm.bias", r("mlp_norm", 5, kind=B)),
    ("bert.pooler.dense.weight", r("pooler")),
    ("roberta.encoder.layer.0.attention.self.query.weight", r("attn_q", 0)),
    ("bert.encoder.layer.0.attention.output.LayerNorm.gamma", r("attn_norm", 0)),
    ("bert.encoder.layer.0.attention.output.LayerNorm.beta", r("attn_norm", 0, kind=B)),
    ("embeddings.position_ids", r("other")),
    ("cls.predictions.transform.dense.weight", r("other")),
    # MPNet
    ("mpnet.embeddings.word_embeddings.weight", r("embed")),
    ("mpnet.encoder.layer.11.attention.attn.q.weight", r("attn_q", 11)),
    ("mpnet.encoder.layer.11.attention.attn.k.weight", r("attn_k", 11)),
    ("mpnet.encoder.layer.11.attention.attn.v.bias", r("attn_v", 11, kind=B)),
    ("mpnet.encoder.layer.11.attention.attn.o.weight", r("attn_o", 11)),
    ("mpnet.encoder.layer.11.attention.LayerNorm.weight", r("attn_norm", 11)),
    ("mpnet.encoder.layer.11.intermediate.dense.weight", r("mlp_up", 11)),
    ("mpnet.encoder.layer.11.output.dense.weight", r("mlp_down", 11)),
    ("mpnet.encoder.layer.11.output.LayerNorm.weight", r("mlp_norm", 11)),
    ("mpnet.encoder.relative_attention_bias.weight", r("rel_pos_embed")),
    ("pooler.dense.bias", r("pooler", kind=B)),
    # GGUF
    ("token_embd.weight", r("embed")),
    ("position_embd.weight", r("pos_embed")),
    ("token_types.weight", r("type_embed")),
    ("token_embd_norm.weight", r("embed_norm")),
    ("blk.0.attn_q.weight", r("attn_q", 0)),
    ("blk.0.attn_k.bias", r("attn_k", 0, kind=B)),
    ("blk.0.attn_v.weight", r("attn_v", 0)),
    ("blk.0.attn_output.weight", r("attn_o", 0)),
    ("blk.0.attn_qkv.weight", r("attn_qkv", 0, fused=QKV)),
    ("blk.0.attn_norm.weight", r("attn_norm", 0)),
    ("blk.0.attn_output_norm.weight", r("attn_norm", 0)),
    ("blk.0.attn_q_norm.weight", r("attn_q_norm", 0)),
    ("blk.0.attn_k_norm.weight", r("attn_k_norm", 0)),
    ("blk.0.post_attention_norm.weight", r("post_attn_norm", 0)),
    ("blk.0.ffn_norm.weight", r("mlp_norm", 0)),
    ("blk.0.layer_output_norm.weight", r("mlp_norm", 0)),
    ("blk.0.post_ffw_norm.weight", r("post_mlp_norm", 0)),
    ("blk.0.ffn_gate.weight", r("mlp_gate", 0)),
    ("blk.0.ffn_up.weight", r("mlp_up", 0)),
    ("blk.0.ffn_down.weight", r("mlp_down", 0)),
    ("blk.3.ffn_gate_inp.weight", r("router", 3)),
    ("blk.3.exp_probs_b.bias", r("router", 3, kind=B)),
    ("blk.3.ffn_gate_inp_shexp.weight", r("shared_router", 3)),
    ("blk.3.ffn_gate_exps.weight", r("mlp_gate_exps", 3)),
    ("blk.3.ffn_up_exps.weight", r("mlp_up_exps", 3)),
    ("blk.3.ffn_down_exps.weight", r("mlp_down_exps", 3)),
    ("blk.3.ffn_gate_up_exps.weight", r("mlp_gate_up_exps", 3, fused=GU_EXPS)),
    ("blk.3.ffn_gate_shexp.weight", r("shared_mlp_gate", 3)),
    ("blk.3.ffn_up_shexp.weight", r("shared_mlp_up", 3)),
    ("blk.3.ffn_down_shexp.weight", r("shared_mlp_down", 3)),
    ("blk.3.ffn_gate.5.weight", r("mlp_gate", 3, 5)),  # pre-2024 per-expert tensors
    ("blk.3.attn_q_a.weight", r("attn_q_a", 3)),
    ("blk.3.attn_q_b.weight", r("attn_q_b", 3)),
    ("blk.3.attn_kv_a_mqa.weight", r("attn_kv_a", 3)),
    ("blk.3.attn_kv_b.weight", r("attn_kv_b", 3)),
    ("blk.3.attn_k_b.weight", r("attn_k_b", 3)),
    ("blk.3.attn_v_b.weight", r("attn_v_b", 3)),
    ("blk.3.attn_q_a_norm.weight", r("attn_q_a_norm", 3)),
    ("blk.3.attn_kv_a_norm.weight", r("attn_kv_a_norm", 3)),
    ("output_norm.weight", r("final_norm")),
    ("output.weight", r("lm_head")),
    ("rope_freqs.weight", r("other")),
    # Llama-4 (stacked experts stored [E, in, out]) and GPT-OSS
    (
        "language_model.model.layers.1.feed_forward.experts.gate_up_proj",
        r("mlp_gate_up_exps", 1, fused=GU_EXPS, transposed=True),
    ),
    ("language_model.model.layers.1.feed_forward.experts.down_proj", r("mlp_down_exps", 1, transposed=True)),
    ("language_model.model.layers.1.feed_forward.router.weight", r("router", 1)),
    ("language_model.model.layers.1.feed_forward.shared_expert.up_proj.weight", r("shared_mlp_up", 1)),
    ("language_model.model.layers.0.feed_forward.gate_proj.weight", r("mlp_gate", 0)),
    ("model.layers.0.mlp.router.bias", r("router", 0, kind=B)),
    ("model.layers.0.mlp.experts.gate_up_proj_bias", r("mlp_gate_up_exps", 0, kind=B, fused=GU_EXPS)),
    ("model.layers.0.mlp.experts.down_proj", r("mlp_down_exps", 0)),
    ("model.layers.0.self_attn.sinks", r("other", 0)),
    # StarCoder2 (nn.Linear c_fc under "layers"), Qwen-1 (w2=gate, w1=up), GPT-J
    ("model.layers.0.mlp.c_fc.weight", r("mlp_up", 0)),
    ("transformer.h.0.mlp.w2.weight", r("mlp_gate", 0)),
    ("transformer.h.0.mlp.w1.weight", r("mlp_up", 0)),
    ("transformer.h.2.attn.out_proj.weight", r("attn_o", 2)),
    ("transformer.h.2.mlp.fc_in.weight", r("mlp_up", 2)),
    # Meta consolidated .pth
    ("tok_embeddings.weight", r("embed")),
    ("layers.0.attention.wq.weight", r("attn_q", 0)),
    ("layers.0.attention.wo.weight", r("attn_o", 0)),
    ("layers.0.attention_norm.weight", r("attn_norm", 0)),
    ("layers.0.feed_forward.w1.weight", r("mlp_gate", 0)),
    ("layers.0.feed_forward.w3.weight", r("mlp_up", 0)),
    ("layers.0.feed_forward.w2.weight", r("mlp_down", 0)),
    ("norm.weight", r("final_norm")),
    # ModernBERT, DistilBERT, PEFT wrapper
    ("model.embeddings.tok_embeddings.weight", r("embed")),
    ("model.layers.0.attn.Wqkv.weight", r("attn_qkv", 0, fused=QKV)),
    ("model.layers.0.mlp.Wi.weight", r("mlp_gate_up", 0, fused=GU)),
    ("distilbert.transformer.layer.0.attention.q_lin.weight", r("attn_q", 0)),
    ("distilbert.transformer.layer.0.output_layer_norm.weight", r("mlp_norm", 0)),
    # a PEFT adapter part keeps its Linear's role under a kind of its own (issue 23; before: "other")
    ("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", r("attn_q", 0, kind="lora_A")),
    ("base_model.model.model.layers.0.self_attn.q_proj.weight", r("attn_q", 0)),
    # Unknown names: layer from the first integer after a known container
    ("some.random.tensor", r("other")),
    ("backbone.layers.12.mixer.in_proj.weight", r("other", 12)),
    ("backbone.layers.12.mixer.A_log", r("other", 12)),
    ("visual.blocks.7.attn.proj.bias", r("other", 7, kind=B)),
    ("transformer.blocks.3.ffn.experts.mlp.w1", r("other", 3)),
    ("decoder.block.2.layer.1.EncDecAttention.q.weight", r("other", 2)),
    ("onnx::MatMul_1234", r("other")),
]


@pytest.mark.parametrize(("name", "expected"), CASES, ids=[c[0] for c in CASES])
def test_classify(name: str, expected: tuple[object, ...]) -> None:
    assert astuple(classify(name)) == expected


def test_table_names_only_known_roles() -> None:
    table_roles = {rule.role for rule in TOP_RULES + BLOCK_RULES}
    assert table_roles <= ROLES
    assert set(FUSED_PARTS) <= MATRIX_ROLES
    assert not MATRIX_ROLES & NORM_ROLES


def test_role_is_frozen_and_hashable() -> None:
    role = classify("model.layers.0.self_attn.q_proj.weight")
    assert role == TensorRole("attn_q", 0)
    assert {role: 1}[TensorRole("attn_q", 0)] == 1
    with pytest.raises(AttributeError):
        role.layer = 1  # type: ignore[misc]


GEMMA2_LAYER = [
    "model.layers.0.input_layernorm.weight",
    "model.layers.0.post_attention_layernorm.weight",
    "model.layers.0.pre_feedforward_layernorm.weight",
    "model.layers.0.post_feedforward_layernorm.weight",
]


def test_gemma2_post_attention_norm_follows_attention() -> None:
    roles = classify_all(GEMMA2_LAYER)
    assert [roles[n].role for n in GEMMA2_LAYER] == [
        "attn_norm",
        "post_attn_norm",
        "mlp_norm",
        "post_mlp_norm",
    ]


def test_llama_post_attention_norm_is_the_mlp_norm() -> None:
    names = GEMMA2_LAYER[:2]
    assert [classify_all(names)[n].role for n in names] == ["attn_norm", "mlp_norm"]


def _layouts(shapes: Mapping[str, tuple[int, ...]]) -> dict[str, tuple[str, bool]]:
    return {n: (t.role, t.transposed) for n, t in classify_all(shapes, shapes).items()}


def test_gpt2_conv1d_stays_transposed() -> None:
    shapes = {
        "wte.weight": (50257, 768),
        "h.0.attn.c_attn.weight": (768, 2304),
        "h.0.attn.c_proj.weight": (768, 768),
        "h.0.mlp.c_fc.weight": (768, 3072),
        "h.0.mlp.c_proj.weight": (3072, 768),
    }
    assert [t for _, t in _layouts(shapes).values()] == [False, True, True, True, True]


def test_gpt_bigcode_linear_under_gpt2_names() -> None:
    shapes = {
        "transformer.wte.weight": (49152, 2048),
        "transformer.h.0.attn.c_attn.weight": (2304, 2048),  # multi-query: 2048 + 2 * 128
        "transformer.h.0.attn.c_proj.weight": (2048, 2048),
        "transformer.h.0.mlp.c_fc.weight": (8192, 2048),
        "transformer.h.0.mlp.c_proj.weight": (2048, 8192),
    }
    assert not any(t for _, t in _layouts(shapes).values())


def test_gpt_oss_stacked_experts_are_in_out() -> None:
    shapes = {
        "model.embed_tokens.weight": (201088, 2880),
        "model.layers.0.mlp.experts.gate_up_proj": (32, 2880, 5760),
        "model.layers.0.mlp.experts.gate_up_proj_bias": (32, 5760),
        "model.layers.0.mlp.experts.down_proj": (32, 2880, 2880),  # square: follows gate_up
    }
    assert list(_layouts(shapes).values())[1:] == [
        ("mlp_gate_up_exps", True),
        ("mlp_gate_up_exps", False),
        ("mlp_down_exps", True),
    ]


def test_qwen_moe_stacked_experts_are_out_in() -> None:
    shapes = {
        "model.embed_tokens.weight": (151936, 2048),
        "model.layers.0.mlp.experts.gate_up_proj": (128, 1536, 2048),
        "model.layers.0.mlp.experts.down_proj": (128, 2048, 768),
    }
    assert list(_layouts(shapes).values())[1:] == [("mlp_gate_up_exps", False), ("mlp_down_exps", False)]


def test_phi3_gguf_ffn_up_holds_gate_and_up() -> None:
    shapes = {
        "token_embd.weight": (32064, 3072),
        "blk.0.ffn_up.weight": (16384, 3072),
        "blk.0.ffn_down.weight": (3072, 8192),
    }
    up = classify_all(shapes, shapes)["blk.0.ffn_up.weight"]
    assert astuple(up) == r("mlp_gate_up", 0, fused=GU)


def test_plain_gguf_ffn_up_stays_up() -> None:
    shapes = {
        "token_embd.weight": (50257, 768),
        "blk.0.ffn_up.weight": (3072, 768),
        "blk.0.ffn_down.weight": (768, 3072),
    }
    assert classify_all(shapes, shapes)["blk.0.ffn_up.weight"].role == "mlp_up"


# Pairs gguf's converter maps to one another (TensorNameMap): HF and GGUF names must agree.
GGUF_PAIRS = [
    ("LLAMA", "model.layers.3.self_attn.q_proj.weight"),
    ("LLAMA", "model.layers.3.self_attn.o_proj.weight"),
    ("LLAMA", "model.layers.3.input_layernorm.weight"),
    ("LLAMA", "model.layers.3.post_attention_layernorm.weight"),
    ("LLAMA", "model.layers.3.mlp.gate_proj.weight"),
    ("LLAMA", "model.embed_tokens.weight"),
    ("LLAMA", "model.norm.weight"),
    ("LLAMA", "lm_head.weight"),
    ("QWEN3", "model.layers.3.self_attn.k_norm.weight"),
    ("QWEN2MOE", "model.layers.3.mlp.gate.weight"),
    ("QWEN2MOE", "model.layers.3.mlp.shared_expert_gate.weight"),
    ("QWEN2MOE", "model.layers.3.mlp.shared_expert.down_proj.weight"),
    ("DEEPSEEK2", "model.layers.3.self_attn.kv_a_proj_with_mqa.weight"),
    ("DEEPSEEK2", "model.layers.3.self_attn.q_a_layernorm.weight"),
    ("DEEPSEEK2", "model.layers.3.mlp.gate.e_score_correction.bias"),
    ("DEEPSEEK2", "model.layers.3.mlp.shared_experts.up_proj.weight"),
    ("GEMMA2", "model.layers.3.pre_feedforward_layernorm.weight"),
    ("GEMMA2", "model.layers.3.post_feedforward_layernorm.weight"),
    ("PHI3", "model.layers.3.self_attn.qkv_proj.weight"),
    ("GPT2", "transformer.h.3.attn.c_attn.weight"),
    ("GPT2", "transformer.h.3.ln_2.weight"),
    ("GPT2", "transformer.wpe.weight"),
    ("GPTNEOX", "gpt_neox.layers.3.attention.query_key_value.weight"),
    ("GPTNEOX", "gpt_neox.layers.3.post_attention_layernorm.weight"),
    ("GPTNEOX", "embed_out.weight"),
    ("BERT", "encoder.layer.3.attention.output.LayerNorm.weight"),
    ("BERT", "encoder.layer.3.output.LayerNorm.weight"),
    ("BERT", "encoder.layer.3.intermediate.dense.weight"),
    ("BERT", "embeddings.token_type_embeddings.weight"),
    ("BERT", "embeddings.LayerNorm.weight"),
]


@pytest.mark.parametrize(("arch", "hf_name"), GGUF_PAIRS, ids=[f"{a}:{n}" for a, n in GGUF_PAIRS])
def test_hf_and_gguf_names_agree(arch: str, hf_name: str) -> None:
    gguf = pytest.importorskip("gguf")
    tmap = gguf.TensorNameMap(gguf.MODEL_ARCH[arch], 8)
    gguf_name = tmap.get_name(hf_name, try_suffixes=(".weight", ".bias"))
    assert gguf_name is not None, f"gguf does not map {hf_name} for {arch}"
    # e_score_correction_bias is listed without its "_bias"; both sides use kind "bias".
    hf = classify(re.sub(r"e_score_correction\.bias$", "e_score_correction_bias", hf_name))
    ours, theirs = astuple(hf), astuple(classify(gguf_name))
    # GPT-2's Conv1D layout is undone by the GGUF converter.
    assert ours[:5] == theirs[:5]


def test_gemma2_hf_and_gguf_agree_in_context() -> None:
    gguf = pytest.importorskip("gguf")
    tmap = gguf.TensorNameMap(gguf.MODEL_ARCH.GEMMA2, 8)
    hf = classify_all(GEMMA2_LAYER)
    for name in GEMMA2_LAYER:
        assert hf[name] == classify(tmap.get_name(name, try_suffixes=(".weight",))), name


# ---- model configs ----------------------------------------------------------------------------

LLAMA3_8B = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
    "max_position_embeddings": 8192,
    "rope_theta": 500000.0,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
}
QWEN15_MOE = {
    "architectures": ["Qwen2MoeForCausalLM"],
    "model_type": "qwen2_moe",
    "hidden_size": 2048,
    "intermediate_size": 5632,
    "moe_intermediate_size": 1408,
    "shared_expert_intermediate_size": 5632,
    "num_experts": 60,
    "num_experts_per_tok": 4,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "num_key_value_heads": 16,
    "vocab_size": 151936,
    "max_position_embeddings": 8192,
    "tie_word_embeddings": False,
}
MIXTRAL = {
    "architectures": ["MixtralForCausalLM"],
    "model_type": "mixtral",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
    "num_key_value_heads": 8,
    "num_local_experts": 8,
    "num_experts_per_tok": 2,
    "vocab_size": 32000,
    "max_position_embeddings": 32768,
    "tie_word_embeddings": False,
}
GPT2 = {
    "architectures": ["GPT2LMHeadModel"],
    "model_type": "gpt2",
    "n_ctx": 1024,
    "n_embd": 768,
    "n_head": 12,
    "n_inner": None,
    "n_layer": 12,
    "n_positions": 1024,
    "vocab_size": 50257,
}
MINILM = {
    "architectures": ["BertModel"],
    "model_type": "bert",
    "hidden_size": 384,
    "intermediate_size": 1536,
    "num_attention_heads": 12,
    "num_hidden_layers": 6,
    "vocab_size": 30522,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
}
DEEPSEEK_V3 = {
    "architectures": ["DeepseekV3ForCausalLM"],
    "model_type": "deepseek_v3",
    "hidden_size": 7168,
    "intermediate_size": 18432,
    "moe_intermediate_size": 2048,
    "num_hidden_layers": 61,
    "num_attention_heads": 128,
    "num_key_value_heads": 128,
    "n_routed_experts": 256,
    "n_shared_experts": 1,
    "num_experts_per_tok": 8,
    "first_k_dense_replace": 3,
    "q_lora_rank": 1536,
    "kv_lora_rank": 512,
    "qk_nope_head_dim": 128,
    "qk_rope_head_dim": 64,
    "v_head_dim": 128,
    "vocab_size": 129280,
    "max_position_embeddings": 163840,
    "tie_word_embeddings": False,
}
GEMMA3_4B = {
    "architectures": ["Gemma3ForConditionalGeneration"],
    "model_type": "gemma3",
    "text_config": {
        "model_type": "gemma3_text",
        "hidden_size": 2560,
        "intermediate_size": 10240,
        "num_hidden_layers": 34,
        "num_attention_heads": 8,
        "num_key_value_heads": 4,
        "head_dim": 256,
        "sliding_window": 1024,
    },
    "vision_config": {
        "model_type": "siglip_vision_model",
        "hidden_size": 1152,
        "intermediate_size": 4304,
        "num_hidden_layers": 27,
        "num_attention_heads": 16,
        "image_size": 896,
    },
    "mm_tokens_per_image": 256,
}
FALCON_7B = {
    "architectures": ["FalconForCausalLM"],
    "model_type": "falcon",
    "hidden_size": 4544,
    "num_attention_heads": 71,
    "num_hidden_layers": 32,
    "multi_query": True,
    "vocab_size": 65024,
}

CONFIGS = [
    (
        "llama3",
        LLAMA3_8B,
        ("LlamaForCausalLM", "llama", 32, 4096, 32, 8, 128, 14336, None, None, None, 128256, 8192, False),
    ),
    (
        "qwen2_moe",
        QWEN15_MOE,
        ("Qwen2MoeForCausalLM", "qwen2_moe", 24, 2048, 16, 16, 128, 5632, 1408, 60, 4, 151936, 8192, False),
    ),
    (
        "mixtral",
        MIXTRAL,
        ("MixtralForCausalLM", "mixtral", 32, 4096, 32, 8, 128, 14336, None, 8, 2, 32000, 32768, False),
    ),
    (
        "gpt2",
        GPT2,
        ("GPT2LMHeadModel", "gpt2", 12, 768, 12, 12, 64, 3072, None, None, None, 50257, 1024, None),
    ),
    ("minilm", MINILM, ("BertModel", "bert", 6, 384, 12, 12, 32, 1536, None, None, None, 30522, 512, None)),
    (
        "deepseek_v3",
        DEEPSEEK_V3,
        (
            "DeepseekV3ForCausalLM",
            "deepseek_v3",
            61,
            7168,
            128,
            128,
            192,
            18432,
            2048,
            256,
            8,
            129280,
            163840,
            False,
        ),
    ),
    (
        "gemma3",
        GEMMA3_4B,
        (
            "Gemma3ForConditionalGeneration",
            "gemma3",
            34,
            2560,
            8,
            4,
            256,
            10240,
            None,
            None,
            None,
            None,
            None,
            None,
        ),
    ),
    (
        "falcon_mqa",
        FALCON_7B,
        ("FalconForCausalLM", "falcon", 32, 4544, 71, 1, 64, None, None, None, None, 65024, None, None),
    ),
    (
        "untrusted",
        {"architectures": "Llama", "num_hidden_layers": "32", "hidden_size": True, "vocab_size": -1},
        (None,) * 14,
    ),
]


@pytest.mark.parametrize(("cfg", "expected"), [c[1:] for c in CONFIGS], ids=[c[0] for c in CONFIGS])
def test_from_hf_config(cfg: dict[str, object], expected: tuple[object, ...]) -> None:
    assert astuple(from_hf_config(cfg)) == expected


def test_from_hf_config_not_a_dict() -> None:
    assert from_hf_config([]) == ModelConfig()  # type: ignore[arg-type]


def test_infer_llama_like() -> None:
    tensors = [("model.embed_tokens.weight", (32000, 4096)), ("model.norm.weight", (4096,))]
    for i in range(2):
        tensors += [
            (f"model.layers.{i}.self_attn.q_proj.weight", (4096, 4096)),
            (f"model.layers.{i}.self_attn.k_proj.weight", (1024, 4096)),
            (f"model.layers.{i}.mlp.up_proj.weight", (11008, 4096)),
            (f"model.layers.{i}.mlp.down_proj.weight", (4096, 11008)),
        ]
    tensors.append(("lm_head.weight", (32000, 4096)))
    assert infer_from_tensors(tensors) == ModelConfig(
        n_layers=2, hidden=4096, intermediate=11008, vocab=32000, tie_word_embeddings=False
    )


def test_infer_heads_from_qwen3_q_norm() -> None:
    tensors = [
        ("model.embed_tokens.weight", (151936, 2560)),
        ("model.norm.weight", (2560,)),
        ("model.layers.0.self_attn.q_proj.weight", (4096, 2560)),
        ("model.layers.0.self_attn.k_proj.weight", (1024, 2560)),
        ("model.layers.0.self_attn.q_norm.weight", (128,)),
    ]
    c = infer_from_tensors(tensors)
    assert (c.head_dim, c.n_heads, c.n_kv_heads, c.tie_word_embeddings) == (128, 32, 8, True)


def test_infer_olmo2_whole_q_norm_is_not_a_head() -> None:
    tensors = [
        ("model.layers.0.self_attn.q_proj.weight", (4096, 4096)),
        ("model.layers.0.self_attn.q_norm.weight", (4096,)),
    ]
    assert infer_from_tensors(tensors).head_dim is None


def test_infer_mixtral_experts() -> None:
    tensors = [
        ("model.embed_tokens.weight", (32000, 4096)),
        ("model.layers.0.block_sparse_moe.gate.weight", (8, 4096)),
    ]
    for e in range(8):
        tensors += [
            (f"model.layers.0.block_sparse_moe.experts.{e}.w1.weight", (14336, 4096)),
            (f"model.layers.0.block_sparse_moe.experts.{e}.w3.weight", (14336, 4096)),
            (f"model.layers.0.block_sparse_moe.experts.{e}.w2.weight", (4096, 14336)),
        ]
    c = infer_from_tensors(tensors)
    assert (c.n_layers, c.n_experts, c.intermediate, c.moe_intermediate) == (1, 8, None, 14336)


def test_infer_gguf_moe() -> None:
    tensors = [
        ("token_embd.weight", (151936, 2048)),
        ("output_norm.weight", (2048,)),
        ("blk.23.ffn_gate_inp.weight", (60, 2048)),
        ("blk.23.ffn_up_exps.weight", (60, 1408, 2048)),
        ("blk.23.ffn_down_exps.weight", (60, 2048, 1408)),
        ("blk.23.ffn_up_shexp.weight", (5632, 2048)),
    ]
    c = infer_from_tensors(tensors)
    assert (c.n_layers, c.hidden, c.vocab, c.n_experts, c.moe_intermediate, c.intermediate) == (
        24,
        2048,
        151936,
        60,
        1408,
        None,
    )


def test_infer_gpt2() -> None:
    tensors = [
        ("wte.weight", (50257, 768)),
        ("wpe.weight", (1024, 768)),
        ("h.0.mlp.c_fc.weight", (768, 3072)),
        ("h.0.mlp.c_proj.weight", (3072, 768)),
        ("ln_f.weight", (768,)),
    ]
    c = infer_from_tensors(tensors)
    assert (c.n_layers, c.hidden, c.intermediate, c.max_positions, c.tie_word_embeddings) == (
        1,
        768,
        3072,
        1024,
        True,
    )


def test_infer_phi3_fused_gate_up_halves() -> None:
    tensors = [
        ("model.embed_tokens.weight", (32064, 3072)),
        ("model.layers.0.mlp.gate_up_proj.weight", (16384, 3072)),
    ]
    assert infer_from_tensors(tensors).intermediate == 8192


def test_infer_bert_has_no_tie_verdict() -> None:
    tensors = [
        ("embeddings.word_embeddings.weight", (30522, 384)),
        ("encoder.layer.5.intermediate.dense.weight", (1536, 384)),
    ]
    c = infer_from_tensors(tensors)
    assert (c.n_layers, c.hidden, c.intermediate, c.tie_word_embeddings) == (6, 384, 1536, None)


def test_merge_fills_only_gaps() -> None:
    declared = from_hf_config(LLAMA3_8B)
    inferred = ModelConfig(n_layers=33, hidden=1, n_experts=4)
    merged = merge(declared, inferred)
    assert (merged.n_layers, merged.hidden, merged.n_experts, merged.vocab) == (32, 4096, 4, 128256)
    assert merge(ModelConfig(), inferred) == inferred
