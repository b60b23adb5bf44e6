"""Fingerprint one model revision: source → reader → fingerprint, ending in rows for the store.

This is the unit of work a sweep runs as a Ray task. It catches HubscanError only: a bad
model becomes failure rows and the sweep goes on; any other exception is a bug and is raised.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from pipeline.config import Settings
from pipeline.errors import FetchError, HubscanError
from pipeline.fingerprints.tensor import fingerprint_tensor
from pipeline.http import HubHttp, RequestLog, Where
from pipeline.model_config import ModelConfig, from_hf_config, infer_from_tensors, merge
from pipeline.readers import checkpoint
from pipeline.readers.byte_source import ByteSource, LocalFile
from pipeline.readers.gguf import gguf_config
from pipeline.readers.records import CheckpointHeader
from pipeline.readers.remote import RemoteFile
from pipeline.roles import classify_all
from pipeline.sources.refs import ModelRef
from pipeline.sources.weights import select_weight_files

# Tokenizer files larger than this are not fetched (token alignment is then skipped).
MAX_TOKENIZER_BYTES = 64 * 1024 * 1024
TOKEN_ROLES = ("embed", "lm_head")


@dataclass
class ModelOutcome:
    """What one model produced: a models row and its tensors rows, or the errors that stopped it."""

    repo_id: str
    revision: str
    model_row: dict[str, Any] | None = None
    tensor_rows: list[dict[str, Any]] = field(default_factory=list)
    errors: list[HubscanError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the model was fingerprinted."""
        return self.model_row is not None


def fingerprint_model(ref: ModelRef, settings: Settings, http: HubHttp | None = None) -> ModelOutcome:
    """Fingerprint every weight file of a model; all or nothing, never a partial model."""
    outcome = ModelOutcome(ref.repo_id, ref.revision)
    # A request log of its own, so the models row counts this model's requests only.
    own = HubHttp(settings, log=RequestLog()) if http is None else http.with_log(RequestLog())
    try:
        _fingerprint(ref, settings, own, outcome)
    except HubscanError as exc:
        outcome.model_row, outcome.tensor_rows = None, []
        outcome.errors.append(_with_context(exc, ref))
    return outcome


def _fingerprint(ref: ModelRef, settings: Settings, http: HubHttp, outcome: ModelOutcome) -> None:
    started = time.monotonic()
    fmt, files = select_weight_files(ref)
    sources = [_open(ref, f.name, f.size, http) for f in files]
    headers = [checkpoint.read_header(s, settings) for s in sources]
    tokens = _tokens(ref, headers, http)
    # Some roles are settled only by the whole checkpoint (Gemma's norms, transposed layouts).
    all_tensors = [t for h in headers for t in h.tensors]
    roles = classify_all([t.name for t in all_tensors], {t.name: t.shape for t in all_tensors})
    rows: list[dict[str, Any]] = []
    for source, header in zip(sources, headers, strict=True):
        for tensor_rows in checkpoint.read_rows(source, header, settings, lambda n: roles[n].role, tokens):
            fp = fingerprint_tensor(tensor_rows, roles[tensor_rows.header.name], settings, tokens)
            rows.append({"repo_id": ref.repo_id, "revision": ref.revision, **fp.as_row()})
    config = _config(ref, headers)
    outcome.tensor_rows = rows
    outcome.model_row = _model_row(ref, settings, fmt, headers, sources, config, tokens, http, started)


def _open(ref: ModelRef, name: str, size: int | None, http: HubHttp) -> ByteSource:
    if ref.local_dir is not None:
        return LocalFile(ref.local_dir / name, ref.repo_id, ref.revision, name)
    return RemoteFile(http, ref.repo_id, ref.revision, name, size)


def _tokens(ref: ModelRef, headers: list[CheckpointHeader], http: HubHttp) -> list[str] | None:
    """Token strings by id, from GGUF metadata or tokenizer.json; None when neither is there."""
    for header in headers:
        listed = header.metadata.get("tokenizer.ggml.tokens")
        if isinstance(listed, list):
            return [str(t) for t in listed]
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
        doc = json.loads(raw)
    except ValueError:
        return None
    vocab = (doc.get("model") or {}).get("vocab")
    by_id: dict[int, str] = {}
    if isinstance(vocab, dict):
        by_id = {int(i): str(t) for t, i in vocab.items() if isinstance(i, int)}
    elif isinstance(vocab, list):
        by_id = {i: str(entry[0]) for i, entry in enumerate(vocab) if isinstance(entry, list) and entry}
    for added in doc.get("added_tokens") or []:
        if isinstance(added, dict) and isinstance(added.get("id"), int):
            by_id.setdefault(added["id"], str(added.get("content", "")))
    if not by_id:
        return None
    return [by_id.get(i, "") for i in range(max(by_id) + 1)]


def _config(ref: ModelRef, headers: list[CheckpointHeader]) -> ModelConfig:
    names = [(t.name, t.shape) for h in headers for t in h.tensors]
    declared = from_hf_config(ref.config) if ref.config else ModelConfig()
    for h in headers:
        if h.format == "gguf":
            g = gguf_config(h.metadata)
            declared = merge(
                declared,
                ModelConfig(
                    architecture=_str(g.get("architecture")),
                    n_layers=_int(g.get("n_layers")),
                    hidden=_int(g.get("hidden")),
                    n_heads=_int(g.get("n_heads")),
                    n_kv_heads=_int(g.get("n_kv_heads")),
                    n_experts=_int(g.get("n_experts")),
                    vocab=_int(g.get("vocab_size")),
                ),
            )
    return merge(declared, infer_from_tensors(names))


def _model_row(
    ref: ModelRef,
    settings: Settings,
    fmt: str,
    headers: list[CheckpointHeader],
    sources: list[ByteSource],
    config: ModelConfig,
    tokens: list[str] | None,
    http: HubHttp,
    started: float,
) -> dict[str, Any]:
    by_dtype: Counter[str] = Counter()
    for h in headers:
        for t in h.tensors:
            by_dtype[t.dtype] += t.numel
    return {
        "repo_id": ref.repo_id,
        "revision": ref.revision,
        "source": ref.source,
        "endpoint": settings.endpoint if ref.local_dir is None else str(ref.local_dir),
        "format": fmt,
        "files": [h.file for h in headers],
        "architecture": config.architecture,
        "model_type": config.model_type,
        "layers": config.n_layers,
        "hidden": config.hidden,
        "heads": config.n_heads,
        "kv_heads": config.n_kv_heads,
        "intermediate": config.intermediate,
        "experts": config.n_experts,
        "vocab": config.vocab,
        "params": sum(by_dtype.values()),
        "dtype": by_dtype.most_common(1)[0][0] if by_dtype else None,
        "base_models": list(ref.base_models),
        "license": ref.license,
        "checkpoint_bytes": sum(h.size for h in headers),
        "bytes_read": sum(s.stats.bytes for s in sources),
        "requests": sum(s.stats.requests for s in sources)
        if ref.local_dir
        else sum(http.log.requests.values()),
        "tensors": sum(len(h.tensors) for h in headers),
        "has_tokens": tokens is not None,
        "exact": settings.exact,
        "seed": settings.seed,
        "seconds": time.monotonic() - started,
        "fingerprinted_at": datetime.now(timezone.utc),
    }


def _with_context(exc: HubscanError, ref: ModelRef) -> HubscanError:
    """Stages deep in the stack may not know the model: fill in repo and revision."""
    if exc.repo_id and exc.revision:
        return exc
    if isinstance(exc, FetchError):
        return type(exc)(ref.repo_id, ref.revision, exc.filename, exc.reason, exc.status, exc.byte_range)
    return type(exc)(exc.repo_id or ref.repo_id, exc.revision or ref.revision, exc.filename, exc.reason)


def _int(v: object) -> int | None:
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _str(v: object) -> str | None:
    return v if isinstance(v, str) else None
