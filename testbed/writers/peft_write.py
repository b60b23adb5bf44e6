"""Write a PEFT LoRA adapter repo in PEFT's own on-disk layout, and merge an adapter into its base.

The layout PEFT's ``save_pretrained`` produces for a LoRA on a transformers model:

* ``adapter_model.safetensors``: one ``base_model.model.<module>.lora_A.weight`` [r, in] and
  ``…lora_B.weight`` [out, r] per adapted Linear (the adapter name "default" is dropped from the keys),
  metadata ``{"format": "pt"}``;
* ``adapter_config.json``: ``peft_type`` "LORA", ``base_model_name_or_path``, ``r``, ``lora_alpha``,
  ``target_modules``, ``layers_to_transform``, ``modules_to_save``, ``task_type`` and the other
  LoraConfig fields;
* a card declaring ``base_model`` and ``library_name: peft``.

Merging adds ``(lora_alpha / r) * B @ A`` to each targeted weight, as PEFT's ``merge_and_unload`` does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hubscan.testbed.demohub.cards import write_card
from hubscan.testbed.writers.safetensors_write import write_safetensors

PREFIX = "base_model.model."


@dataclass(frozen=True)
class Lora:
    """A trained LoRA: per adapted module path ("encoder.layer.0.attention.self.query"), its A [r, in] and B [out, r]."""

    base: str
    r: int
    alpha: float
    targets: tuple[str, ...]  # target_modules as PEFT's config names them ("query", "value")
    weights: Mapping[str, tuple[np.ndarray, np.ndarray]]

    @property
    def scale(self) -> float:
        """PEFT's scaling of B @ A (without rsLoRA)."""
        return self.alpha / self.r


def adapter_tensors(lora: Lora) -> dict[str, np.ndarray]:
    """The adapter's tensors under PEFT's saved key names."""
    out: dict[str, np.ndarray] = {}
    for module, (a, b) in lora.weights.items():
        out[f"{PREFIX}{module}.lora_A.weight"] = a
        out[f"{PREFIX}{module}.lora_B.weight"] = b
    return out


def adapter_config(lora: Lora) -> dict[str, object]:
    """adapter_config.json as PEFT writes it for a LoraConfig (fields this layout needs, PEFT's defaults)."""
    return {
        "alpha_pattern": {},
        "auto_mapping": None,
        "base_model_name_or_path": lora.base,
        "bias": "none",
        "fan_in_fan_out": False,
        "inference_mode": True,
        "init_lora_weights": True,
        "layers_pattern": None,
        "layers_to_transform": None,
        "lora_alpha": lora.alpha,
        "lora_dropout": 0.1,
        "modules_to_save": None,
        "peft_type": "LORA",
        "r": lora.r,
        "rank_pattern": {},
        "revision": None,
        "target_modules": list(lora.targets),
        "task_type": "FEATURE_EXTRACTION",
        "use_dora": False,
        "use_rslora": False,
    }


def write_adapter_repo(dst: Path, lora: Lora, dtype: str = "F32", title: str = "LoRA adapter") -> Path:
    """An adapter repo: weights in ``dtype``, PEFT's config and a card naming the base."""
    dst.mkdir(parents=True, exist_ok=True)
    write_safetensors(dst / "adapter_model.safetensors", adapter_tensors(lora), dtype, {"format": "pt"})
    (dst / "adapter_config.json").write_text(json.dumps(adapter_config(lora), indent=2) + "\n")
    write_card(dst, title, "apache-2.0", lora.base, ["peft", "lora"], extra={"library_name": "peft"})
    return dst


def merge(state: Mapping[str, np.ndarray], lora: Lora) -> dict[str, np.ndarray]:
    """The base's tensors with ``scale * B @ A`` added to every targeted weight, kept in its dtype."""
    merged = dict(state)
    for module, (a, b) in lora.weights.items():
        w = state[f"{module}.weight"]
        merged[f"{module}.weight"] = (w.astype(np.float64) + lora.scale * (b.astype(np.float64) @ a)).astype(
            w.dtype
        )
    return merged
