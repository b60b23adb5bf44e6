"""Write a few small llama-layout repos (a base, its fine-tunes, unrelated models): the wheel smoke run, S3 tests.

Uses only what the wheel depends on (numpy, safetensors), so it runs in a bare venv (.ci/wheel_smoke.sh).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

HIDDEN, LAYERS, FFN = 128, 6, 256  # big enough for per-layer signals, small enough to write in < 1 s
SHAPES = {
    "self_attn.q_proj": (HIDDEN, HIDDEN),
    "self_attn.k_proj": (HIDDEN, HIDDEN),
    "self_attn.v_proj": (HIDDEN, HIDDEN),
    "self_attn.o_proj": (HIDDEN, HIDDEN),
    "mlp.up_proj": (FFN, HIDDEN),
    "mlp.gate_proj": (FFN, HIDDEN),
    "mlp.down_proj": (HIDDEN, FFN),
}


def weights(seed: int) -> dict[str, np.ndarray]:
    """One random model; per-layer scales vary so the std profile has a shape."""
    rng = np.random.default_rng(seed)
    out = {"model.embed_tokens.weight": rng.standard_normal((512, HIDDEN), dtype=np.float32) * 0.02}
    for i in range(LAYERS):
        for name, shape in SHAPES.items():
            scale = 0.02 * (1 + 0.5 * rng.random())
            out[f"model.layers.{i}.{name}.weight"] = rng.standard_normal(shape, dtype=np.float32) * scale
        out[f"model.layers.{i}.input_layernorm.weight"] = np.ones(HIDDEN, dtype=np.float32)
    return out


def write_repo(root: Path, repo_id: str, tensors: dict[str, np.ndarray]) -> None:
    """One HF-layout folder: config.json and model.safetensors."""
    folder = root / repo_id
    folder.mkdir(parents=True, exist_ok=True)
    config = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": HIDDEN,
              "num_hidden_layers": LAYERS, "intermediate_size": FFN, "num_attention_heads": 4,
              "num_key_value_heads": 4, "vocab_size": 512}  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config))
    save_file(tensors, str(folder / "model.safetensors"))


def main(root: Path) -> None:
    base = weights(0)
    write_repo(root, "smoke/base", base)
    for k in range(2):
        rng = np.random.default_rng(100 + k)
        tuned = {n: w + rng.standard_normal(w.shape, dtype=np.float32) * 0.002 for n, w in base.items()}
        write_repo(root, f"smoke/base-finetune-{k}", tuned)
    for seed in range(1, 5):
        write_repo(root, f"other/unrelated-{seed}", weights(seed))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
