"""English text available offline, a word-level vocabulary over it, and the tokenizer.json that carries it.

Sources are the running Python's own files, read in sorted order, so a build is deterministic for
a given Python version (the manifest records it):
- ``stdlib-a`` / ``stdlib-b``: docstrings of the stdlib's top-level modules, split by file name
  into two halves (library documentation, two disjoint module sets);
- ``topics``: ``pydoc_data.topics``, the language reference's help text (another register, used
  for the fine-tunes).
Nothing here imports torch.
"""

from __future__ import annotations

import ast
import json
import re
import sysconfig
from collections import Counter
from pathlib import Path

# BERT's basic tokenizer: split on whitespace, and every ASCII punctuation character is a token of
# its own (33-47, 58-64, 91-96, 123-126). Matching it lets the tokenizer.json say BertPreTokenizer.
_PUNCT = r"!-/:-@\[-`{-~"
_TOKEN = re.compile(rf"[^\s{_PUNCT}]+|[{_PUNCT}]")
SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
PAD, UNK, CLS, SEP, MASK = range(len(SPECIALS))
# Share of each corpus's token stream kept out of training, for the held-out loss.
HELDOUT_SHARE = 0.05


def _docstrings(path: Path) -> list[str]:
    """Module, class and function docstrings of one source file, in source order."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError):
        return []
    nodes = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    found = [(getattr(n, "lineno", 0), ast.get_docstring(n)) for n in ast.walk(tree) if isinstance(n, nodes)]
    return [d for _, d in sorted(found, key=lambda x: x[0]) if d]


def corpora() -> dict[str, str]:
    """The named texts, ASCII only (non-ASCII characters dropped, so BERT's rules apply unchanged)."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(stdlib.glob("*.py"))
    half = len(files) // 2
    texts = {
        "stdlib-a": "\n\n".join(d for p in files[:half] for d in _docstrings(p)),
        "stdlib-b": "\n\n".join(d for p in files[half:] for d in _docstrings(p)),
        "topics": "\n\n".join(_topics()),
    }
    return {k: t.encode("ascii", "ignore").decode() for k, t in texts.items()}


def _topics() -> list[str]:
    from pydoc_data.topics import topics

    return [topics[k] for k in sorted(topics)]


def tokenize(text: str) -> list[str]:
    """Lower-cased BERT basic tokens."""
    return _TOKEN.findall(text.lower())


def build_vocab(token_streams: list[list[str]], size: int) -> list[str]:
    """Special tokens, then the most frequent tokens (ties by string), ``size`` entries in all."""
    counts: Counter[str] = Counter()
    for stream in token_streams:
        counts.update(stream)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [*SPECIALS, *(t for t, _ in ranked[: size - len(SPECIALS)])]


def encode(tokens: list[str], vocab: list[str]) -> list[int]:
    """Token ids, [UNK] for out-of-vocabulary tokens."""
    index = {t: i for i, t in enumerate(vocab)}
    return [index.get(t, UNK) for t in tokens]


def split_heldout(ids: list[int]) -> tuple[list[int], list[int]]:
    """(training ids, held-out tail) of one corpus."""
    cut = int(len(ids) * (1 - HELDOUT_SHARE))
    return ids[:cut], ids[cut:]


def tokenizer_json(vocab: list[str]) -> dict:
    """A Hugging Face tokenizers file for this vocabulary: WordLevel model, BERT normalisation and splits."""
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [_special(i, t) for i, t in enumerate(SPECIALS)],
        "normalizer": {"type": "Lowercase"},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {
            "type": "BertProcessing",
            "sep": ["[SEP]", SEP],
            "cls": ["[CLS]", CLS],
        },
        "decoder": None,
        "model": {"type": "WordLevel", "vocab": {t: i for i, t in enumerate(vocab)}, "unk_token": "[UNK]"},
    }


def _special(i: int, token: str) -> dict:
    return {"id": i, "content": token, "single_word": False, "lstrip": False, "rstrip": False,
            "normalized": False, "special": True}  # fmt: skip


def write_tokenizer(dst: Path, vocab: list[str]) -> None:
    """tokenizer.json, vocab.txt and tokenizer_config.json, as a BERT repo on the Hub carries them."""
    (dst / "tokenizer.json").write_text(json.dumps(tokenizer_json(vocab), indent=1))
    (dst / "vocab.txt").write_text("\n".join(vocab) + "\n")
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "do_lower_case": True, "model_max_length": 128}
    (dst / "tokenizer_config.json").write_text(json.dumps(config, indent=1))
