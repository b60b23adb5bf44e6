"""Function-preserving re-parameterisations of a BERT checkpoint, as a motivated copier would apply them.

A transformer computes the same function after (1) one permutation P of the hidden units applied
everywhere the residual stream is read or written, (2) a permutation of each layer's intermediate
neurons, (3) a permutation of attention heads and of the dimensions inside a head (shared by Q and K,
and by V and O's input columns), and (4) rescaling Q by c and K by 1/c, V by c' and O by 1/c'.
The last hidden state comes out permuted by P (cosine similarities of pooled embeddings are
unchanged, P is orthogonal); the pooler's output is unchanged. ``bert_forward`` checks this
numerically, so a generator bug cannot pass for a hard test case.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hubscan.testbed.demohub import variants
from hubscan.testbed.writers.safetensors_write import write_safetensors

Tensors = dict[str, np.ndarray]
_LAYER = re.compile(r"encoder\.layer\.(\d+)\.")
# Per-layer rescale factors are drawn log-uniformly from [1/RESCALE_MAX, RESCALE_MAX]: a factor of
# 4 bends the per-layer std profile far beyond anything training does, yet is exact in F32.
RESCALE_MAX = 4.0


@dataclass(frozen=True)
class Reparam:
    """The permutations and factors applied (kept so tests can check what a detector recovers)."""

    hidden: np.ndarray  # new hidden unit j holds old unit hidden[j]
    neurons: dict[int, np.ndarray]  # per layer, intermediate neurons likewise
    qk: dict[int, np.ndarray]  # per layer, output-row order of Q and K (heads and in-head dims)
    vo: dict[int, np.ndarray]  # per layer, output-row order of V = input-column order of O
    qk_scale: dict[int, float]
    vo_scale: dict[int, float]


def bert_layers(tensors: Tensors) -> int:
    """Number of encoder layers named in a BERT state dict."""
    found = {int(m.group(1)) for n in tensors if (m := _LAYER.search(n))}
    return max(found) + 1 if found else 0


def head_order(heads: np.ndarray, head_dim: int, rng: np.random.Generator) -> np.ndarray:
    """Output-row indices taking the heads in the order ``heads`` and each head's dimensions shuffled.

    Q and K share one such order, V and O's input columns another, and both use the same head order:
    head h's attention pattern must still weigh head h's values.
    """
    return np.concatenate([h * head_dim + rng.permutation(head_dim) for h in heads])


def draw(tensors: Tensors, heads: int, seed: int, permute: bool, rescale: bool) -> Reparam:
    """Random permutations (identity when not ``permute``) and factors (1 when not ``rescale``)."""
    rng = np.random.default_rng(seed)
    layers = bert_layers(tensors)
    hidden_size = tensors["embeddings.LayerNorm.weight"].shape[0]
    inter = tensors["encoder.layer.0.intermediate.dense.bias"].shape[0]
    head_dim = hidden_size // heads

    def perm(n: int) -> np.ndarray:
        return rng.permutation(n) if permute else np.arange(n)

    qk: dict[int, np.ndarray] = {}
    vo: dict[int, np.ndarray] = {}
    for i in range(layers):
        order = rng.permutation(heads)
        qk[i] = head_order(order, head_dim, rng) if permute else np.arange(hidden_size)
        vo[i] = head_order(order, head_dim, rng) if permute else np.arange(hidden_size)

    def factor() -> float:
        return math.exp(rng.uniform(-math.log(RESCALE_MAX), math.log(RESCALE_MAX))) if rescale else 1.0

    return Reparam(
        hidden=perm(hidden_size),
        neurons={i: perm(inter) for i in range(layers)},
        qk=qk,
        vo=vo,
        qk_scale={i: factor() for i in range(layers)},
        vo_scale={i: factor() for i in range(layers)},
    )


def apply(tensors: Tensors, r: Reparam) -> Tensors:
    """The re-parameterised state dict (dtypes kept; integer buffers untouched)."""
    p = r.hidden
    out: Tensors = {}
    for name, w in tensors.items():
        m = _LAYER.search(name)
        if name.startswith("embeddings.") and w.dtype.kind == "f":
            # embedding tables [rows, hidden] and the embedding LayerNorm [hidden]
            out[name] = w[..., p]
        elif name == "pooler.dense.weight":
            out[name] = w[:, p]  # reads the hidden state; its output is the model's output
        elif m is None:
            out[name] = w
        else:
            out[name] = _layer_tensor(name, w, int(m.group(1)), r)
    return out


def _layer_tensor(name: str, w: np.ndarray, i: int, r: Reparam) -> np.ndarray:
    p, n, qk, vo = r.hidden, r.neurons[i], r.qk[i], r.vo[i]
    leaf = name.split(f"encoder.layer.{i}.", 1)[1]
    dt = w.dtype
    if leaf in ("attention.self.query.weight", "attention.self.key.weight"):
        c = r.qk_scale[i] if "query" in leaf else 1.0 / r.qk_scale[i]
        return (w[qk][:, p] * c).astype(dt)
    if leaf in ("attention.self.query.bias", "attention.self.key.bias"):
        c = r.qk_scale[i] if "query" in leaf else 1.0 / r.qk_scale[i]
        return (w[qk] * c).astype(dt)
    if leaf == "attention.self.value.weight":
        return (w[vo][:, p] * r.vo_scale[i]).astype(dt)
    if leaf == "attention.self.value.bias":
        return (w[vo] * r.vo_scale[i]).astype(dt)
    if leaf == "attention.output.dense.weight":
        return (w[p][:, vo] / r.vo_scale[i]).astype(dt)
    if leaf == "intermediate.dense.weight":
        return w[n][:, p]
    if leaf == "intermediate.dense.bias":
        return w[n]
    if leaf == "output.dense.weight":
        return w[p][:, n]
    # attention.output.dense.bias, both LayerNorms, output.dense.bias: the residual stream
    if w.ndim == 1 and w.shape[0] == p.shape[0]:
        return w[p]
    raise ValueError(f"reparam: no rule for {name} {w.shape}")


def reparameterise(
    src: Path,
    dst: Path,
    permute: bool,
    rescale: bool,
    seed: int,
    drift: float = 0.0,
    base_model: str | None = None,
) -> Path:
    """Write a re-parameterised copy of a BERT repo (optionally with fine-tune-like drift after it)."""
    cfg = json.loads((src / "config.json").read_text())
    tensors = variants.load_repo_tensors(src)
    new = apply(tensors, draw(tensors, int(cfg["num_attention_heads"]), seed, permute, rescale))
    what = " and ".join(w for w, on in (("permuted", permute), ("rescaled", rescale)) if on)
    if drift <= 0:
        variants.derive_repo(src, dst, base_model, f"Sentence embeddings ({what}).", ["safetensors"])
        write_safetensors(dst / variants.SINGLE_FILE, new, None, variants.repo_metadata(src))
        return dst
    with tempfile.TemporaryDirectory() as tmp:
        mid = Path(tmp) / dst.name
        variants.derive_repo(src, mid, None, "", ["safetensors"])
        write_safetensors(mid / variants.SINGLE_FILE, new, None, variants.repo_metadata(src))
        return variants.finetune_like(mid, dst, drift, seed=seed, base_model=base_model)


def _layer_norm(x: np.ndarray, g: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def _gelu(x: np.ndarray) -> np.ndarray:
    from scipy.special import erf

    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def bert_forward(
    t: Tensors, ids: np.ndarray, heads: int, eps: float = 1e-12
) -> tuple[np.ndarray, np.ndarray]:
    """(last hidden state [tokens, hidden], pooler output) of a BertModel, in float64 numpy."""
    w = {k: v.astype(np.float64) for k, v in t.items() if v.dtype.kind == "f"}
    pos = np.arange(len(ids))
    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][pos]
    x = x + w["embeddings.token_type_embeddings.weight"][0]
    x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
    for i in range(bert_layers(t)):
        p = f"encoder.layer.{i}."

        def lin(name: str, h: np.ndarray, p: str = p) -> np.ndarray:
            return h @ w[p + name + ".weight"].T + w[p + name + ".bias"]

        q, k, v = (lin(f"attention.self.{s}", x) for s in ("query", "key", "value"))
        d = q.shape[1] // heads
        split = [a.reshape(len(ids), heads, d).transpose(1, 0, 2) for a in (q, k, v)]
        scores = split[0] @ split[1].transpose(0, 2, 1) / math.sqrt(d)
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        ctx = (probs @ split[2]).transpose(1, 0, 2).reshape(len(ids), -1)
        x = _layer_norm(
            x + lin("attention.output.dense", ctx),
            w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"], eps,
        )  # fmt: skip
        h = lin("output.dense", _gelu(lin("intermediate.dense", x)))
        x = _layer_norm(x + h, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], eps)
    pooled = np.tanh(x[0] @ w["pooler.dense.weight"].T + w["pooler.dense.bias"])
    return x, pooled
