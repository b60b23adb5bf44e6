"""Model card metadata: the YAML front matter of README.md."""

from __future__ import annotations

from typing import Any

import yaml


def parse_card(text: str) -> dict[str, Any]:
    """The front-matter mapping of a model card, or {} when absent or unparsable."""
    if not text.startswith("---"):
        return {}
    end = text.find("\n---", 3)
    if end < 0:
        return {}
    try:
        data = yaml.safe_load(text[3:end])
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}
