"""Model cards, configs and side files of demo-hub repos, written the way Hub repos carry them."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

# Files a Hub repo carries beside its weights that a derived copy keeps unchanged.
SIDE_FILES = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "1_Pooling/config.json",
)
_PLAIN = re.compile(r"^[A-Za-z][A-Za-z0-9._/+-]*$")
_YAML_WORDS = frozenset({"yes", "no", "on", "off", "true", "false", "null", "y", "n"})
_FRONT = re.compile(r"\A---\n(.*?)\n---\n?", re.S)


def yaml_scalar(value: object) -> str:
    """A YAML scalar: plain when unambiguous (as cards write them), else JSON, which YAML accepts."""
    if isinstance(value, str) and _PLAIN.match(value) and value.lower() not in _YAML_WORDS:
        return value
    return json.dumps(value)


def front_matter(fields: dict[str, object]) -> str:
    """YAML front matter for a card: scalars, and lists as block sequences; None fields are left out."""
    lines = ["---"]
    for key, value in fields.items():
        if value is None or value == []:
            continue
        if isinstance(value, (list, tuple)):
            lines.append(f"{key}:")
            lines.extend(f"- {yaml_scalar(v)}" for v in value)
        else:
            lines.append(f"{key}: {yaml_scalar(value)}")
    lines.append("---")
    return "\n".join(lines) + "\n"


def write_card(
    dst: Path,
    title: str,
    license: str | None,
    base_model: str | None,
    tags: list[str],
    body: str = "",
    extra: dict[str, object] | None = None,
) -> None:
    """Write ``dst/README.md``; ``base_model=None`` writes a card that declares no lineage."""
    fields: dict[str, object] = {"license": license, "base_model": base_model, "tags": tags}
    fields.update(extra or {})
    text = front_matter(fields) + f"\n# {title}\n\n{body.strip()}\n"
    dst.mkdir(parents=True, exist_ok=True)
    (dst / "README.md").write_text(text, encoding="utf-8")


def split_card(text: str) -> tuple[str, str]:
    """(front matter body without the --- fences, rest of the card)."""
    m = _FRONT.match(text)
    if not m:
        return "", text
    return m.group(1), text[m.end() :]


def card_field(card: Path, key: str) -> str | None:
    """A top-level scalar of a card's front matter (e.g. license), or None."""
    if not card.exists():
        return None
    front, _ = split_card(card.read_text(encoding="utf-8"))
    m = re.search(rf"^{re.escape(key)}:\s*(.+)$", front, re.M)
    return m.group(1).strip().strip("\"'") if m else None


def set_card_fields(text: str, fields: dict[str, object]) -> str:
    """Replace (or add) top-level keys of a card's front matter, keeping every other line."""
    front, rest = split_card(text)
    kept: list[str] = []
    skipping = False
    for line in front.splitlines():
        key = line.split(":", 1)[0] if line and not line[0].isspace() and line[0] != "-" else None
        if key is not None:
            skipping = key in fields
        if not skipping:
            kept.append(line)
    new = front_matter(fields).strip("\n").split("\n")[1:-1]
    return "---\n" + "\n".join(kept + new) + "\n---\n" + rest


def copy_side_files(src: Path, dst: Path, names: tuple[str, ...] = SIDE_FILES) -> list[str]:
    """Copy the non-weight files a derived repo keeps (config, tokenizer, ...); returns those copied."""
    copied = []
    for rel in names:
        if not (src / rel).exists():
            continue
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / rel, dst / rel)
        copied.append(rel)
    return copied


def bert_config(
    hidden: int,
    layers: int,
    heads: int,
    ff: int,
    vocab: int,
    max_pos: int = 512,
    type_vocab: int = 2,
    eps: float = 1e-12,
    **extra: object,
) -> dict[str, object]:
    """A transformers ``BertModel`` config.json for the given shapes."""
    cfg: dict[str, object] = {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "hidden_act": "gelu",
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": ff,
        "vocab_size": vocab,
        "max_position_embeddings": max_pos,
        "type_vocab_size": type_vocab,
        "layer_norm_eps": eps,
        "position_embedding_type": "absolute",
        "torch_dtype": "float32",
    }
    cfg.update(extra)
    return cfg


def write_json(path: Path, obj: object) -> None:
    """Pretty JSON as Hub repos store it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
