"""Fingerprint one model revision: source → reader → fingerprint, ending in rows for the store.

This is the unit of work a sweep runs as a Ray task. Whatever one model raises becomes a
failures row naming model and file (a bug as category ``internal``), so the sweep goes on.
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, closing
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from jobs.task_limits import ModelTimeout, as_failure, blame
from pipeline.bounded_json import loads_bounded
from pipeline.config import Settings
from pipeline.errors import HubscanError
from pipeline.fingerprints.tensor import fingerprint_tensor
from pipeline.http import HubHttp, RequestLog, Where
from pipeline.model_config import ModelConfig, from_hf_config, infer_from_tensors, merge
from pipeline.readers import checkpoint
from pipeline.readers.byte_source import ByteSource, LocalFile
from pipeline.readers.gguf import gguf_config
from pipeline.readers.packed_int import PACKED_SCHEMES
from pipeline.readers.records import CheckpointHeader
from pipeline.readers.remote import RemoteFile
from pipeline.roles import classify_all
from pipeline.sources.code_notices import read_code_notices
from pipeline.sources.content_hash import with_content_hashes
from pipeline.sources.refs import FileRef, ModelRef
from pipeline.sources.weights import select_weight_files

# Tokenizer files larger than this are not fetched (token alignment is then skipped).
MAX_TOKENIZER_BYTES = 64 * 1024 * 1024
TOKEN_ROLES = ("embed", "lm_head")
# A tokenizer's ids are dense (a few reserved gaps at most); ids beyond this many times the
# entries listed mean a hostile file asking for a huge id table.
MAX_VOCAB_GAP = 4


@dataclass
class ModelOutcome:
    """What one model produced: a models row and its tensors rows, or the errors that stopped it."""

    repo_id: str
    revision: str
    model_row: dict[str, Any] | None = None
    tensor_rows: list[dict[str, Any]] = field(default_factory=list)
    file_rows: list[dict[str, Any]] = field(default_factory=list)
    errors: list[HubscanError] = field(default_factory=list)
    # Body bytes received from the network for this model, kept or not, failed or not.
    bytes_received: int = 0

    @property
    def ok(self) -> bool:
        """True when the model was fingerprinted."""
        return self.model_row is not None


def fingerprint_model(
    ref: ModelRef, settings: Settings, http: HubHttp | None = None, known: KnownFiles | None = None
) -> ModelOutcome:
    """Fingerprint every weight file of a model; all or nothing, never a partial model.

    ``known`` maps content hashes already fingerprinted (under any repo) to their stored
    rows, so a file seen before is not read again.
    """
    outcome = ModelOutcome(ref.repo_id, ref.revision)
    # A request log of its own, so the models row counts this model's requests only.
    own = HubHttp(settings, log=RequestLog()) if http is None else http.with_log(RequestLog())
    try:
        _fingerprint(ref, settings, own, outcome, known)
    except (Exception, ModelTimeout) as exc:
        # Whatever the bytes did (RecursionError, MemoryError, a bug): a failures row, never a crash.
        outcome.model_row, outcome.tensor_rows = None, []
        outcome.errors.append(as_failure(exc, ref.repo_id, ref.revision, None))
    outcome.bytes_received = own.log.bytes
    return outcome


class KnownFiles(Protocol):
    """Lookup of weight files already in the store, by LFS sha256."""

    def owners(self, hashes: list[str]) -> dict[str, tuple[str, str]]:
        """sha256 → (repo_id, revision) for hashes already fingerprinted."""
        ...

    def rows(self, repo_id: str, revision: str, sha256: str) -> list[dict[str, Any]]:
        """Stored tensors rows of the file with that hash in that model."""
        ...


@dataclass(frozen=True)
class _Plan:
    """The weight files of a model and which of them are already fingerprinted elsewhere."""

    fmt: str
    files: tuple[FileRef, ...]
    owners: dict[str, tuple[str, str]]
    reused: dict[str, list[dict[str, Any]]]


def _fingerprint(
    ref: ModelRef, settings: Settings, http: HubHttp, outcome: ModelOutcome, known: KnownFiles | None
) -> None:
    started = time.monotonic()
    plan = _plan(ref, known)
    with ExitStack() as open_files:
        sources = [
            open_files.enter_context(closing(_open(ref, f.name, f.size, http)))
            for f in plan.files
            if f.name not in plan.reused
        ]
        plan, sources = _reuse_by_linked_etag(ref, plan, sources, known)
        # The tokenizer download overlaps the header reads: both are one round trip each.
        with ThreadPoolExecutor(max_workers=1) as pool:
            vocab = pool.submit(_tokenizer_tokens, ref, http) if sources and plan.fmt != "gguf" else None
            quant = _quantization_config(ref)
            headers = [_read_header(ref, src, settings, quant) for src in sources]
            tokens = vocab.result() if vocab else _gguf_tokens(headers)
        rows, shapes = _read_rows(ref, settings, plan, sources, headers, tokens)
    outcome.tensor_rows = rows
    outcome.file_rows = [
        {"sha256": f.sha256, "repo_id": ref.repo_id, "revision": ref.revision, "file": f.name, "size": f.size}
        for f in plan.files
        if f.sha256
    ]
    # read before the models row is made, so its request count includes the code files
    notices = read_code_notices(ref, http) if settings.read_code else None
    row = _model_row(ref, settings, plan, rows, sources, _config(ref, headers, shapes), tokens, http, started)
    row["code_notices"] = notices
    row["copy_of"] = _copy_of(plan.owners, plan.files) if len(plan.reused) == len(plan.files) else None
    outcome.model_row = row


def _reuse_by_linked_etag(
    ref: ModelRef, plan: _Plan, sources: list[ByteSource], known: KnownFiles | None
) -> tuple[_Plan, list[ByteSource]]:
    """Files a listing named without hashes: the resolve redirect's X-Linked-ETag (their sha256)
    finds byte-identical files already stored, before any of their ranges is read."""
    learned = {s.name: h for s in sources if (h := getattr(s, "sha256", None)) and s.name not in plan.owners}
    if not learned or known is None:
        return plan, sources
    sizes = {s.name: s.size for s in sources}
    files = tuple(
        replace(f, sha256=f.sha256 or learned.get(f.name), size=f.size or sizes.get(f.name))
        for f in plan.files
    )
    replanned = _plan(replace(ref, files=files), known, (plan.fmt, files))
    return replanned, [s for s in sources if s.name not in replanned.reused]


def _plan(
    ref: ModelRef, known: KnownFiles | None, selected: tuple[str, tuple[FileRef, ...]] | None = None
) -> _Plan:
    fmt, files = selected or select_weight_files(ref)
    files = with_content_hashes(ref, files)
    owners = known.owners([f.sha256 for f in files if f.sha256]) if known else {}
    reused = {f.name: _reuse(known, owners[f.sha256], f, ref) for f in files if known and f.sha256 in owners}
    return _Plan(fmt, files, owners, reused)


def _read_rows(
    ref: ModelRef,
    settings: Settings,
    plan: _Plan,
    sources: list[ByteSource],
    headers: list[CheckpointHeader],
    tokens: list[str] | None,
) -> tuple[list[dict[str, Any]], dict[str, tuple[int, ...]]]:
    """Reused rows plus fingerprints of every file read; roles settled over the whole checkpoint."""
    # Some roles are settled only by the whole checkpoint (Gemma's norms, transposed layouts).
    shapes = {t.name: t.shape for h in headers for t in h.tensors}
    shapes.update({str(r["name"]): tuple(r["shape"]) for rows in plan.reused.values() for r in rows})
    roles = classify_all(list(shapes), shapes)
    rows = [r for f in plan.files if f.name in plan.reused for r in plan.reused[f.name]]
    for source, header in zip(sources, headers, strict=True):
        with blame(ref.repo_id, ref.revision, source.name):
            for tensor_rows in checkpoint.read_rows(
                source, header, settings, lambda n: roles[n].role, tokens
            ):
                fp = fingerprint_tensor(tensor_rows, roles[tensor_rows.header.name], settings, tokens)
                rows.append({"repo_id": ref.repo_id, "revision": ref.revision, **fp.as_row()})
    return rows, shapes


def _read_header(
    ref: ModelRef, source: ByteSource, settings: Settings, quant: dict[str, Any] | None
) -> CheckpointHeader:
    with blame(ref.repo_id, ref.revision, source.name):
        return checkpoint.read_header(source, settings, quant)


def _reuse(
    known: KnownFiles | None, owner: tuple[str, str], f: FileRef, ref: ModelRef
) -> list[dict[str, Any]]:
    """Another repo's stored rows for a byte-identical file, relabelled as this model's."""
    assert known is not None
    return [
        {**r, "repo_id": ref.repo_id, "revision": ref.revision, "file": f.name}
        for r in known.rows(owner[0], owner[1], str(f.sha256))
    ]


def _copy_of(owners: dict[str, tuple[str, str]], files: tuple[FileRef, ...]) -> str | None:
    """'repo@sha' when every weight file came from one other model, byte for byte."""
    sources = {owners[str(f.sha256)] for f in files}
    if len(sources) != 1:
        return None
    repo_id, revision = sources.pop()
    return f"{repo_id}@{revision}"


def _open(ref: ModelRef, name: str, size: int | None, http: HubHttp) -> ByteSource:
    if ref.local_dir is not None:
        return LocalFile(ref.local_dir / name, ref.repo_id, ref.revision, name)
    return RemoteFile(http, ref.repo_id, ref.revision, name, size)


def _quantization_config(ref: ModelRef) -> dict[str, Any] | None:
    """The ``quantization_config`` the listing's config summary (or a local config.json) carried."""
    quant = ref.config.get("quantization_config") if ref.config else None
    return quant if isinstance(quant, dict) else None


def _gguf_tokens(headers: list[CheckpointHeader]) -> list[str] | None:
    """Token strings by id from GGUF metadata, if a header carries them."""
    for header in headers:
        listed = header.metadata.get("tokenizer.ggml.tokens")
        if isinstance(listed, list):
            return [str(t) for t in listed]
    return None


def _tokenizer_tokens(ref: ModelRef, http: HubHttp) -> list[str] | None:
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


def _config(
    ref: ModelRef, headers: list[CheckpointHeader], shapes: dict[str, tuple[int, ...]]
) -> ModelConfig:
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
    return merge(declared, infer_from_tensors(list(shapes.items())))


def _model_row(
    ref: ModelRef,
    settings: Settings,
    plan: _Plan,
    rows: list[dict[str, Any]],
    sources: list[ByteSource],
    config: ModelConfig,
    tokens: list[str] | None,
    http: HubHttp,
    started: float,
) -> dict[str, Any]:
    by_dtype: Counter[str] = Counter()
    for r in rows:
        by_dtype[str(r["dtype"])] += int(r["numel"])
    # A GPTQ/AWQ checkpoint keeps its embeddings in F16, often the larger share of a small
    # model: its packed-int scheme, not F16, is what names it (and what a cast verdict needs).
    packed = Counter({d: n for d, n in by_dtype.items() if d.startswith(PACKED_SCHEMES)})
    local = ref.local_dir is not None
    return {
        "repo_id": ref.repo_id,
        "revision": ref.revision,
        "source": ref.source,
        "endpoint": str(ref.local_dir) if local else settings.endpoint,
        "format": plan.fmt,
        "files": [f.name for f in plan.files],
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
        "dtype": (packed or by_dtype).most_common(1)[0][0] if by_dtype else None,
        "base_models": list(ref.base_models),
        "license": ref.license,
        "license_name": ref.license_name,
        "created_at": ref.created_at,
        "checkpoint_bytes": sum(f.size or 0 for f in plan.files) or sum(s.size for s in sources),
        "bytes_read": sum(s.stats.bytes for s in sources),
        "requests": sum(s.stats.requests for s in sources) if local else sum(http.log.requests.values()),
        # What the Hub's quotas count (api, resolvers) and what they do not (the CDN origin).
        "api_requests": 0 if local else http.log.requests["api"],
        "resolver_requests": 0 if local else http.log.requests["resolvers"],
        "cdn_requests": 0 if local else http.log.requests["cdn"],
        "tensors": len(rows),
        "has_tokens": tokens is not None,
        "exact": settings.exact,
        "seed": settings.seed,
        "seconds": time.monotonic() - started,
        "fingerprinted_at": datetime.now(timezone.utc),
        "local_dir": _local_dir(ref, settings),
    }


def _local_dir(ref: ModelRef, settings: Settings) -> str | None:
    """Where the repo's files are on this machine, if anywhere: its own folder, or the served one."""
    if ref.local_dir is not None:
        return str(Path(ref.local_dir).absolute())  # a relative folder would break compare elsewhere
    return str(Path(settings.hub_folder) / ref.repo_id) if settings.hub_folder else None


def _int(v: object) -> int | None:
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _str(v: object) -> str | None:
    return v if isinstance(v, str) else None
