"""A small post-LN BERT masked-LM in plain torch whose state_dict uses BertForMaskedLM's tensor names.

Written out, the weights look to hubscan exactly like a Hub BERT checkpoint (``bert.encoder.layer.N.
attention.self.query.weight`` ...; ``pipeline/roles_table.py`` maps them), and the layout is the
one transformers uses (Linear weights [out, in], word embeddings tied to the MLM decoder and saved once).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class BertShape:
    """Architecture of a control; ``config()`` is its HF config.json."""

    vocab: int = 4096
    hidden: int = 128
    layers: int = 4
    heads: int = 4
    intermediate: int = 512
    max_positions: int = 128

    def config(self) -> dict:
        """config.json as transformers writes it for BertForMaskedLM."""
        return {
            "architectures": ["BertForMaskedLM"],
            "model_type": "bert",
            "vocab_size": self.vocab,
            "hidden_size": self.hidden,
            "num_hidden_layers": self.layers,
            "num_attention_heads": self.heads,
            "intermediate_size": self.intermediate,
            "max_position_embeddings": self.max_positions,
            "type_vocab_size": 2,
            "hidden_act": "gelu",
            "layer_norm_eps": LN_EPS,
            "hidden_dropout_prob": 0.0,
            "attention_probs_dropout_prob": 0.0,
            "initializer_range": INIT_STD,
            "pad_token_id": 0,
            "torch_dtype": "float32",
            "hubscan_control_shape": asdict(self),
        }


# BERT's defaults: N(0, 0.02) init of matrices and embeddings, LayerNorm eps 1e-12.
INIT_STD = 0.02
LN_EPS = 1e-12


class Layer(nn.Module):
    """One post-LN encoder block, attribute names as in transformers' BertLayer."""

    def __init__(self, s: BertShape) -> None:
        super().__init__()
        self.heads = s.heads
        self.attention = nn.Module()
        self.attention.self = nn.Module()
        self.attention.self.query = nn.Linear(s.hidden, s.hidden)
        self.attention.self.key = nn.Linear(s.hidden, s.hidden)
        self.attention.self.value = nn.Linear(s.hidden, s.hidden)
        self.attention.output = nn.Module()
        self.attention.output.dense = nn.Linear(s.hidden, s.hidden)
        self.attention.output.LayerNorm = nn.LayerNorm(s.hidden, eps=LN_EPS)
        self.intermediate = nn.Module()
        self.intermediate.dense = nn.Linear(s.hidden, s.intermediate)
        self.output = nn.Module()
        self.output.dense = nn.Linear(s.intermediate, s.hidden)
        self.output.LayerNorm = nn.LayerNorm(s.hidden, eps=LN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, h = x.shape
        a = self.attention.self

        def split(y: torch.Tensor) -> torch.Tensor:
            return y.view(b, t, self.heads, h // self.heads).transpose(1, 2)

        q, k, v = split(a.query(x)), split(a.key(x)), split(a.value(x))
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(h // self.heads), dim=-1)
        ctx = (att @ v).transpose(1, 2).reshape(b, t, h)
        x = self.attention.output.LayerNorm(x + self.attention.output.dense(ctx))
        up = nn.functional.gelu(self.intermediate.dense(x))
        return self.output.LayerNorm(x + self.output.dense(up))


class BertMLM(nn.Module):
    """Embeddings, encoder and the MLM head; sequences are full length (no padding), one segment."""

    def __init__(self, s: BertShape) -> None:
        super().__init__()
        self.shape = s
        self.bert = nn.Module()
        emb = self.bert.embeddings = nn.Module()
        emb.word_embeddings = nn.Embedding(s.vocab, s.hidden)
        emb.position_embeddings = nn.Embedding(s.max_positions, s.hidden)
        emb.token_type_embeddings = nn.Embedding(2, s.hidden)
        emb.LayerNorm = nn.LayerNorm(s.hidden, eps=LN_EPS)
        self.bert.encoder = nn.Module()
        self.bert.encoder.layer = nn.ModuleList([Layer(s) for _ in range(s.layers)])
        self.cls = nn.Module()
        self.cls.predictions = nn.Module()
        self.cls.predictions.transform = nn.Module()
        self.cls.predictions.transform.dense = nn.Linear(s.hidden, s.hidden)
        self.cls.predictions.transform.LayerNorm = nn.LayerNorm(s.hidden, eps=LN_EPS)
        self.cls.predictions.bias = nn.Parameter(torch.zeros(s.vocab))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """BERT's init: matrices and embeddings N(0, 0.02), biases 0, LayerNorm gain 1 (draws in module order)."""
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=INIT_STD)
            if isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)
            if isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Hidden states of the last layer, [batch, seq, hidden]."""
        emb = self.bert.embeddings
        pos = torch.arange(ids.shape[1])
        x = emb.word_embeddings(ids) + emb.position_embeddings(pos) + emb.token_type_embeddings.weight[0]
        x = emb.LayerNorm(x)
        for layer in self.bert.encoder.layer:
            x = layer(x)
        return x

    def mlm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Vocabulary logits of some hidden states (decoder tied to the word embeddings)."""
        t = self.cls.predictions.transform
        y = t.LayerNorm(nn.functional.gelu(t.dense(hidden)))
        return y @ self.bert.embeddings.word_embeddings.weight.T + self.cls.predictions.bias

    def mlm_loss(self, ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy at the positions whose target is not -100 (only those go through the head)."""
        hidden = self.forward(ids)
        where = targets != -100
        return nn.functional.cross_entropy(self.mlm_logits(hidden[where]), targets[where])

    def hf_state_dict(self) -> dict[str, torch.Tensor]:
        """Tensors under the names BertForMaskedLM saves to safetensors (the tied decoder is not written)."""
        return {k: v.detach().clone().contiguous() for k, v in self.state_dict().items()}
