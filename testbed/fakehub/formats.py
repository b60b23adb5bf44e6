"""Read the few facts the Hub derives from file contents: safetensors parameter counts, GGUF summary, card YAML."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any, BinaryIO

# The safetensors core refuses headers above 100 MB; a bigger length means a broken file, not a model.
SAFETENSORS_MAX_HEADER = 100_000_000
# GGUF counts above these are corrupt files; real models have < 100k KV pairs and < 1M tensors.
GGUF_MAX_KV = 1_000_000
GGUF_MAX_TENSORS = 10_000_000
GGUF_MAX_STRING = 1 << 30

# GGUF value type id -> struct format of a fixed-size scalar (8 = string, 9 = array are variable).
_GGUF_SCALARS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}


def safetensors_parameters(path: Path) -> dict[str, int] | None:
    """Parameter count per dtype from one file's header, or None when the header is not valid safetensors."""
    try:
        with path.open("rb") as f:
            raw = f.read(8)
            if len(raw) < 8:
                return None
            (n,) = struct.unpack("<Q", raw)
            if n > SAFETENSORS_MAX_HEADER:
                return None
            header = json.loads(f.read(n))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(header, dict):
        return None
    counts: dict[str, int] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            counts[info["dtype"]] = counts.get(info["dtype"], 0) + math.prod(info["shape"])
        except (KeyError, TypeError):
            return None
    return counts


class _Reader:
    """Little-endian cursor over a GGUF file that fails with ValueError on truncation."""

    def __init__(self, f: BinaryIO) -> None:
        self.f = f

    def take(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        raw = self.f.read(size)
        if len(raw) < size:
            raise ValueError("truncated GGUF")
        return struct.unpack(fmt, raw)[0]

    def string(self, keep: bool = True) -> str:
        n = self.take("<Q")
        if n > GGUF_MAX_STRING:
            raise ValueError("GGUF string too long")
        if not keep:  # tokenizer vocabularies hold ~100k strings: skip them without decoding
            self.f.seek(n, 1)
            return ""
        raw = self.f.read(n)
        if len(raw) < n:
            raise ValueError("truncated GGUF")
        return raw.decode("utf-8", "replace")

    def value(self, vtype: int, keep: bool = True) -> Any:
        if vtype in _GGUF_SCALARS:
            return self.take(_GGUF_SCALARS[vtype])
        if vtype == 8:
            return self.string(keep)
        if vtype == 9:
            itype, count = self.take("<I"), self.take("<Q")
            if itype in _GGUF_SCALARS:  # fixed-size items: one seek instead of count reads
                self.f.seek(count * struct.calcsize(_GGUF_SCALARS[itype]), 1)
            else:
                for _ in range(count):
                    self.value(itype, keep=False)
            return None
        raise ValueError(f"unknown GGUF value type {vtype}")


def gguf_summary(path: Path) -> dict[str, Any] | None:
    """The Hub's `gguf` field (total parameters, architecture, context length), or None for a broken file."""
    try:
        with path.open("rb") as f:
            r = _Reader(f)
            if f.read(4) != b"GGUF" or r.take("<I") < 2:  # v1 used 32-bit counts; no current file is v1
                return None
            n_tensors, n_kv = r.take("<Q"), r.take("<Q")
            if n_tensors > GGUF_MAX_TENSORS or n_kv > GGUF_MAX_KV:
                return None
            kv: dict[str, Any] = {}
            for _ in range(n_kv):
                key = r.string()
                kv[key] = r.value(r.take("<I"), keep=not key.startswith("tokenizer.ggml."))
            total = 0
            for _ in range(n_tensors):
                r.string(keep=False)
                dims = [r.take("<Q") for _ in range(r.take("<I"))]
                r.take("<I")  # ggml type
                r.take("<Q")  # data offset
                total += math.prod(dims)
    except (OSError, ValueError, struct.error):
        return None
    out: dict[str, Any] = {"total": total}
    arch = kv.get("general.architecture")
    if isinstance(arch, str):
        out["architecture"] = arch
        if isinstance(kv.get(f"{arch}.context_length"), int):
            out["context_length"] = kv[f"{arch}.context_length"]
    if isinstance(kv.get("tokenizer.chat_template"), str):
        out["chat_template"] = kv["tokenizer.chat_template"]
    return out


def front_matter(text: str) -> dict[str, Any]:
    """The YAML block between leading `---` lines of a model card, as the Hub's `cardData`; {} if none."""
    lines = text.lstrip("\ufeff").splitlines()
    if not lines or lines[0].strip() != "---":
        return {}
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    except StopIteration:
        return {}
    block = "\n".join(lines[1:end])
    try:
        import yaml
    except ImportError:  # pyyaml is a huggingface_hub dependency, but keep the demo hub standalone
        return _tiny_yaml(block)
    try:
        data = yaml.safe_load(block)
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def _tiny_yaml(block: str) -> dict[str, Any]:
    """Top-level `key: scalar` and `key:` + `- item` lists: enough for base_model, tags, license."""
    data: dict[str, Any] = {}
    key = None
    for line in block.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line.lstrip().startswith("- ") and key is not None:
            data.setdefault(key, [])
            if isinstance(data[key], list):
                data[key].append(line.lstrip()[2:].strip().strip("'\""))
        elif ":" in line and not line.startswith((" ", "\t")):
            key, _, value = line.partition(":")
            key, value = key.strip(), value.strip().strip("'\"")
            data[key] = value if value else []
    return data
