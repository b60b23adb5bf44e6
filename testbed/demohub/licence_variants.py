"""Testbed repos whose cards' licences conflict along a lineage edge, and ones whose licences do not.

Small F16 copies of paraphrase-MiniLM-L3-v2 (~35 MB each), re-carded: the weights relate them as a
cast or a fine-tune would; only the card's licence, base_model and name differ. No ``createdAt``
override: the real repos they derive from are dated by their build time, and an invented date on one
side only would order pairs falsely; every repo of a testbed is created within the same day.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

from hubscan.testbed.demohub import cards, variants

ROOT = "sentence-transformers/paraphrase-MiniLM-L3-v2"
NC_PARENT = "licbed/minilm-l3-nc"
LLAMA_PARENT = "licbed/Llama-3-MiniLM-L3"
# A model-code file that carries another organisation's copyright header, as ported modeling code does.
CODE_FILE = "modeling_encoder.py"
CODE_HEADER = (
    "# Copyright (c) Meta Platforms, Inc. and affiliates.\n"
    "# This software may be used and distributed according to the terms of the Llama 3 Community License.\n"
)
CODE_BODY = '"""Encoder wrapper."""\n\nHIDDEN = 384\n'


def _recard(
    make: Callable[[Path, Path], object], license: str | None, base: str | None, src: Path, dst: Path
) -> None:
    """Build with ``make``, then set the card's licence and base_model."""
    make(src, dst)
    card = dst / "README.md"
    text = cards.set_card_fields(card.read_text(encoding="utf-8"), {"license": None, "base_model": None})
    card.write_text(cards.set_card_fields(text, {"license": license, "base_model": base}), encoding="utf-8")


def _with_code(make: Callable[[Path, Path], object], src: Path, dst: Path) -> None:
    make(src, dst)
    (dst / CODE_FILE).write_text(CODE_HEADER + CODE_BODY, encoding="utf-8")


def _f16(s: Path, d: Path) -> object:
    return variants.cast(s, d, "F16")


def _drift(seed: int, s: Path, d: Path) -> object:
    return variants.finetune_like(s, d, 0.01, seed=seed)


# (repo id, description, source repo, builder(src, dst)); built in order (later ones read earlier ones).
LICENCE_VARIANTS: list[tuple[str, str, str, Callable[[Path, Path], object]]] = [
    (
        NC_PARENT,
        f"licence: F16 cast of {ROOT} re-licensed cc-by-nc-4.0 (adds a restriction: compatible); "
        "card declares base_model",
        ROOT,
        partial(_recard, _f16, "cc-by-nc-4.0", ROOT),
    ),
    (
        "licbed/minilm-l3-open",
        f"licence: 1% drift of {NC_PARENT} published apache-2.0 (drops non-commercial: relicensed); "
        "card declares base_model",
        NC_PARENT,
        partial(_recard, partial(_drift, 11), "apache-2.0", NC_PARENT),
    ),
    (
        "licbed/minilm-l3-nc-ft",
        f"licence: 1% drift of {NC_PARENT}, kept cc-by-nc-4.0 (a compatible fine-tune); card declares base_model",
        NC_PARENT,
        partial(_recard, partial(_drift, 12), "cc-by-nc-4.0", NC_PARENT),
    ),
    (
        LLAMA_PARENT,
        f"licence: F16 cast of {ROOT} under llama3, named with the Llama 3 prefix; card declares base_model",
        ROOT,
        partial(_recard, _f16, "llama3", ROOT),
    ),
    (
        "licbed/encoder-chat-l3",
        f"licence: 1% drift of {LLAMA_PARENT} under llama3 without the name prefix, shipping {CODE_FILE} "
        "with Meta's copyright header; undeclared (attribution-missing)",
        LLAMA_PARENT,
        partial(_recard, partial(_with_code, partial(_drift, 13)), "llama3", None),
    ),
    (
        "licbed/minilm-l3-nolicence",
        f"licence: F16 cast of {ROOT} whose card states no licence (licence-unknown); card declares base_model",
        ROOT,
        partial(_recard, _f16, None, ROOT),
    ),
]


def build_licence_variants(
    root: Path, manifest: dict[str, str], skipped: dict[str, str],
    build_once: Callable[[Path, str, Callable[[Path], object]], bool],
) -> None:  # fmt: skip
    """The LICENCE_VARIANTS whose source repo is there, added to the manifest."""
    for repo_id, description, source, make in LICENCE_VARIANTS:
        if source not in manifest:
            skipped[repo_id] = f"needs {source}"
            continue
        build_once(root, repo_id, partial(make, root / source))
        manifest[repo_id] = description
