"""Model card metadata: the YAML front matter of README.md."""

from __future__ import annotations

from typing import Any

import yaml

from hubscan.pipeline.bounded_json import MAX_JSON_DEPTH, json_depth


def parse_card(text: str) -> dict[str, Any]:
    """The front-matter mapping of a model card, or {} when absent, unparsable or nested absurdly deep."""
    if not text.startswith("---"):
        return {}
    end = text.find("\n---", 3)
    if end < 0:
        return {}
    front = text[3:end]
    # YAML's flow collections nest with the same brackets as JSON: 5,000 of them overflow the parser
    if json_depth(front.encode()) > MAX_JSON_DEPTH:
        return {}
    try:
        data = yaml.safe_load(front)
    except (yaml.YAMLError, RecursionError):  # block nesting by indentation has no bracket to count
        return {}
    return data if isinstance(data, dict) else {}
