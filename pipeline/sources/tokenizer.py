"""A repo's vocabulary by token id, from its tokenizer.json: embeddings are aligned by token string.

tokenizer.json is untrusted Hub data: a file that does not parse as a vocabulary gives None (token
alignment is then skipped), never an error, and its size is bounded before and while it is read.
"""

from __future__ import annotations

from hubscan.pipeline.bounded_json import loads_bounded
from hubscan.pipeline.http import HubHttp, Where
from hubscan.pipeline.sources.refs import ModelRef

# Tokenizer files larger than this are not fetched (token alignment is then skipped).
MAX_TOKENIZER_BYTES = 64 * 1024 * 1024
# A tokenizer's ids are dense (a few reserved gaps at most); ids beyond this many times the
# entries listed mean a hostile file asking for a huge id table.
MAX_VOCAB_GAP = 4


def fetch_tokens(ref: ModelRef, http: HubHttp) -> list[str] | None:
    """Token strings by id from the repo's tokenizer.json; None when absent or too large."""
    tok = ref.file("tokenizer.json")
    if tok is None or (tok.size or 0) > MAX_TOKENIZER_BYTES:
        return None
    if ref.local_dir is not None:
        raw = (ref.local_dir / tok.name).read_bytes()
    else:
        where = Where(ref.repo_id, ref.revision, tok.name)
        raw = http.get(http.resolve_url(ref.repo_id, ref.revision, tok.name), where).content
    return tokens_from_tokenizer_json(raw)


def tokens_from_tokenizer_json(raw: bytes) -> list[str] | None:
    """id → token from a tokenizer.json (WordPiece/BPE dict or Unigram list), added tokens included."""
    try:
        doc = loads_bounded(raw, MAX_TOKENIZER_BYTES)  # the size the listing declared may lie
    except ValueError:
        return None
    model = doc.get("model") if isinstance(doc, dict) else None
    if not isinstance(model, dict):
        return None
    vocab = model.get("vocab")
    by_id: dict[int, str] = {}
    if isinstance(vocab, dict):
        by_id = {int(i): str(t) for t, i in vocab.items() if isinstance(i, int)}
    elif isinstance(vocab, list):
        by_id = {i: str(entry[0]) for i, entry in enumerate(vocab) if isinstance(entry, list) and entry}
    added_tokens = doc.get("added_tokens")
    for added in added_tokens if isinstance(added_tokens, list) else []:
        if isinstance(added, dict) and isinstance(added.get("id"), int):
            by_id.setdefault(added["id"], str(added.get("content", "")))
    # Ids far beyond the entries given would allocate a list of that length: not a vocabulary.
    if not by_id or min(by_id) < 0 or max(by_id) >= MAX_VOCAB_GAP * len(by_id) + MAX_VOCAB_GAP:
        return None
    return [by_id.get(i, "") for i in range(max(by_id) + 1)]
