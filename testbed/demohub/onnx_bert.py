"""Recover Hugging Face BERT tensors from an ONNX export whose matmul weights lost their names.

Exporters keep embeddings, LayerNorms and biases under their PyTorch names but store each linear
layer's weight as an anonymous ``[in, out]`` initializer (``onnx::MatMul_470``, ``val_49``), and a
weight-only int8 export stores it as int8 plus a per-output-channel scale that the graph
dequantises at run time. Both are undone here from the graph itself: constant dequantisation
subgraphs are folded, and each ``MatMul`` takes its name from the named bias its output is added
to (``...query.bias`` -> ``...query.weight``), then is transposed back to ``[out, in]``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

# PyTorch module roots of a BERT model; everything before them is a wrapper prefix to drop
# ("inner.", "model.0.auto_model.", "bert.").
_HF_NAME = re.compile(r"^(?:.*?\.)?((?:embeddings|encoder|pooler)\..*)$")
_PARAM_SUFFIXES = (".weight", ".bias", ".position_ids")


class OnnxConversionError(ValueError):
    """The ONNX graph does not have the shape this converter recovers names from."""


def hf_name(onnx_name: str) -> str | None:
    """HF BERT name of an ONNX tensor name, or None for graph-internal values."""
    m = _HF_NAME.match(onnx_name)
    if not m or not onnx_name.endswith(_PARAM_SUFFIXES):
        return None
    return m.group(1)


def _constants(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    """Initializers and Constant-node outputs as numpy arrays."""
    consts = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    consts[node.output[0]] = numpy_helper.to_array(attr.t)
    return consts


def _dequantize_linear(node: onnx.NodeProto, args: list[np.ndarray]) -> np.ndarray:
    """ONNX DequantizeLinear on constants: (x - zero_point) * scale, per tensor or per axis."""
    x = args[0].astype(np.float32)
    scale = args[1].astype(np.float32)
    zp = args[2].astype(np.float32) if len(args) > 2 else np.zeros_like(scale)
    axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
    if scale.ndim == 1 and scale.size > 1:
        shape = [1] * x.ndim
        shape[axis] = scale.size
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    return (x - zp) * scale


def fold_dequant(graph: onnx.GraphProto, consts: dict[str, np.ndarray]) -> int:
    """Evaluate Cast/Mul/DequantizeLinear nodes whose inputs are all constant; returns nodes folded."""
    folded = 0
    # ONNX requires nodes in topological order, so one pass sees every constant chain.
    for node in graph.node:
        ins = [i for i in node.input if i]
        if not ins or any(i not in consts for i in ins):
            continue
        args = [consts[i] for i in ins]
        if node.op_type == "Cast":
            to = next(a.i for a in node.attribute if a.name == "to")
            value = args[0].astype(helper.tensor_dtype_to_np_dtype(to))
        elif node.op_type == "Mul":
            value = np.multiply(args[0], args[1])
        elif node.op_type == "DequantizeLinear":
            value = _dequantize_linear(node, args)
        else:
            continue
        consts[node.output[0]] = value
        folded += 1
    return folded


def _bias_of(matmul: onnx.NodeProto, consumers: dict[str, list[onnx.NodeProto]], consts: dict) -> str:
    """Name of the named bias added to a MatMul's output (the only name the weight has left)."""
    for node in consumers.get(matmul.output[0], []):
        if node.op_type != "Add":
            continue
        for i in node.input:
            if i in consts and hf_name(i) and i.endswith(".bias"):
                return i
    raise OnnxConversionError(f"MatMul {matmul.name!r}: no named bias follows it")


def onnx_bert_tensors(path: Path) -> dict[str, np.ndarray]:
    """HF-named float32 BERT tensors (matmuls as [out, in]) recovered from an ONNX file."""
    model = onnx.load(str(path))
    graph = model.graph
    ops = {n.op_type for n in graph.node}
    if "MatMulInteger" in ops or "QLinearMatMul" in ops:
        # Dynamic quantisation multiplies the weight scale into a runtime scale: not a constant.
        raise OnnxConversionError(f"{path.name}: MatMulInteger/QLinearMatMul graphs are not supported")
    consts = _constants(graph)
    fold_dequant(graph, consts)
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for i in node.input:
            consumers.setdefault(i, []).append(node)

    out: dict[str, np.ndarray] = {}
    for name, arr in consts.items():
        hf = hf_name(name)
        if hf is None:
            continue
        if np.issubdtype(arr.dtype, np.floating):
            arr = arr.astype(np.float32)
        elif not hf.endswith("position_ids"):
            continue  # int8 payloads keep their own suffixes (…weight_q) and never match
        out[hf] = np.ascontiguousarray(arr)
    for node in graph.node:
        if node.op_type != "MatMul" or len(node.input) < 2 or node.input[1] not in consts:
            continue
        w = consts[node.input[1]]
        if w.ndim != 2:
            continue
        hf_bias = hf_name(_bias_of(node, consumers, consts))
        assert hf_bias is not None
        weight = hf_bias[: -len("bias")] + "weight"
        if weight in out:
            raise OnnxConversionError(f"{path.name}: two MatMuls map to {weight}")
        out[weight] = np.ascontiguousarray(w.T.astype(np.float32))
    return out


def layer_norm_eps(path: Path, default: float = 1e-12) -> float:
    """Epsilon of the first LayerNormalization node, for config.json."""
    model = onnx.load(str(path), load_external_data=False)
    for node in model.graph.node:
        if node.op_type == "LayerNormalization":
            for attr in node.attribute:
                if attr.name == "epsilon":
                    return float(attr.f)
    return default


def check_bert_complete(tensors: dict[str, np.ndarray], where: str) -> int:
    """Number of encoder layers; raises OnnxConversionError if any layer misses one of its 16 tensors."""
    layers = {int(m.group(1)) for k in tensors if (m := re.match(r"encoder\.layer\.(\d+)\.", k))}
    n = max(layers) + 1 if layers else 0
    parts = [
        "attention.self.query",
        "attention.self.key",
        "attention.self.value",
        "attention.output.dense",
        "attention.output.LayerNorm",
        "intermediate.dense",
        "output.dense",
        "output.LayerNorm",
    ]
    missing = [f"encoder.layer.{i}.{p}.{s}" for i in range(n) for p in parts for s in ("weight", "bias")]
    missing = [m for m in missing if m not in tensors]
    missing += [e for e in ("embeddings.word_embeddings.weight",) if e not in tensors]
    if missing or n == 0:
        raise OnnxConversionError(f"{where}: incomplete BERT, missing {missing[:4]} ({len(missing)})")
    return n
