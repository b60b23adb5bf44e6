"""Fingerprint one model revision: source → reader → fingerprint → records for the store.

The per-model chain that `hubscan fingerprint` and `compare` run in process and the sweep's Ray
task (`jobs.sweep_task.process`) runs on a worker. Whatever one model raises becomes a failures
row naming model and file (a bug as category ``internal``), so the sweep goes on.
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, closing
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from hubscan.pipeline.adapter_config import AdapterFacts, adapter_facts
from hubscan.pipeline.chain.task_limits import ModelTimeout, as_failure, blame
from hubscan.pipeline.config import Settings
from hubscan.pipeline.errors import HubscanError
from hubscan.pipeline.fingerprints.model import ModelRecord
from hubscan.pipeline.fingerprints.tensor import TensorFingerprint, fingerprint_tensor
from hubscan.pipeline.http import HubHttp, RequestLog
from hubscan.pipeline.keys import ModelKey
from hubscan.pipeline.model_config import ModelConfig
from hubscan.pipeline.readers import checkpoint
from hubscan.pipeline.readers.byte_source import ByteSource, LocalFile
from hubscan.pipeline.readers.checkpoint_config import gguf_tokens, model_config
from hubscan.pipeline.readers.packed_int import PACKED_SCHEMES
from hubscan.pipeline.readers.quantised import REBUILT_SCHEMES
from hubscan.pipeline.readers.records import CheckpointHeader
from hubscan.pipeline.readers.remote import RemoteFile
from hubscan.pipeline.readers.scaled import SCALED_SCHEMES
from hubscan.pipeline.request_counts import RequestCounts
from hubscan.pipeline.roles import classify_all
from hubscan.pipeline.sources.adapter_files import fetch_adapter_config, is_adapter
from hubscan.pipeline.sources.code_notices import read_code_notices
from hubscan.pipeline.sources.content_hash import with_content_hashes
from hubscan.pipeline.sources.local import check_refused
from hubscan.pipeline.sources.refs import FileRef, ModelRef
from hubscan.pipeline.sources.tokenizer import fetch_tokens
from hubscan.pipeline.sources.weights import select_weight_files


@dataclass
class ModelOutcome:
    """What one model produced: its model record and tensor fingerprints, or the errors that stopped it."""

    repo_id: str
    revision: str
    model: ModelRecord | None = None
    tensors: list[TensorFingerprint] = field(default_factory=list)
    file_rows: list[dict[str, Any]] = field(default_factory=list)
    errors: list[HubscanError] = field(default_factory=list)
    # Body bytes received from the network for this model, kept or not, failed or not.
    bytes_received: int = 0

    @property
    def ok(self) -> bool:
        """True when the model was fingerprinted."""
        return self.model is not None

    @property
    def model_row(self) -> dict[str, Any] | None:
        """The models row as the store's writer takes it."""
        return self.model.as_row() if self.model is not None else None

    @property
    def tensor_rows(self) -> list[dict[str, Any]]:
        """The tensors rows as the store's writer takes them."""
        return [t.as_row() for t in self.tensors]


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
        outcome.model, outcome.tensors = None, []
        outcome.errors.append(as_failure(exc, ref.repo_id, ref.revision, None))
    outcome.bytes_received = own.log.bytes
    return outcome


class KnownFiles(Protocol):
    """Lookup of weight files already in the store, by LFS sha256."""

    def owners(self, hashes: list[str]) -> dict[str, ModelKey]:
        """sha256 → (repo_id, revision) for hashes already fingerprinted."""
        ...

    def rows(self, repo_id: str, revision: str, sha256: str) -> list[TensorFingerprint]:
        """Stored fingerprints of the file with that hash in that model."""
        ...


@dataclass(frozen=True)
class _Plan:
    """The weight files of a model and which of them are already fingerprinted elsewhere."""

    fmt: str
    files: tuple[FileRef, ...]
    owners: dict[str, ModelKey]
    reused: dict[str, list[TensorFingerprint]]


def _fingerprint(
    ref: ModelRef, settings: Settings, http: HubHttp, outcome: ModelOutcome, known: KnownFiles | None
) -> None:
    started = time.monotonic()
    check_refused(ref)
    fmt, files = select_weight_files(ref)
    quant = ref.quantization_config()
    with ExitStack() as open_files:

        def opened(f: FileRef) -> ByteSource:
            return open_files.enter_context(closing(_open(ref, f.name, f.size, http)))

        # A local file has no listed hash, so _plan hashes it whole (to find it as a copy): its
        # header is read first, so a file whose header does not parse fails in a few reads, not
        # after hashing 64 GiB. The same open file then serves its rows.
        early: dict[str, tuple[ByteSource, CheckpointHeader]] = {}
        for f in files if ref.local_dir is not None else ():
            source = opened(f)
            early[f.name] = (source, _read_header(ref, source, settings, quant))
        plan = _plan(ref, known, (fmt, files))
        sources = [
            early[f.name][0] if f.name in early else opened(f)
            for f in plan.files
            if f.name not in plan.reused
        ]
        plan, sources = _reuse_by_linked_etag(ref, plan, sources, known)
        # The tokenizer download overlaps the header reads: both are one round trip each.
        with ThreadPoolExecutor(max_workers=1) as pool:
            vocab = pool.submit(fetch_tokens, ref, http) if sources and plan.fmt != "gguf" else None
            headers = [
                early[src.name][1] if src.name in early else _read_header(ref, src, settings, quant)
                for src in sources
            ]
            tokens = vocab.result() if vocab else gguf_tokens(headers)
        tensors, shapes = _fingerprint_tensors(ref, settings, plan, sources, headers, tokens)
    outcome.tensors = tensors
    outcome.file_rows = [
        {"sha256": f.sha256, "repo_id": ref.repo_id, "revision": ref.revision, "file": f.name, "size": f.size}
        for f in plan.files
        if f.sha256
    ]
    # read before the models row is made, so its request count includes the code files
    notices = read_code_notices(ref, http) if settings.read_code else None
    config = model_config(ref.config, headers, shapes)
    # also read before the models row is made, so its requests are counted
    declared = fetch_adapter_config(ref, http) if is_adapter(ref) else None
    record = _model_record(ref, settings, plan, tensors, sources, config, tokens, http, started)
    facts = None if declared is None else adapter_facts(declared, shapes, classify_all(list(shapes), shapes))
    if facts is not None:
        record = _as_adapter(record, facts)
    outcome.model = replace(
        record,
        code_notices=notices,
        copy_of=_copy_of(plan.owners, plan.files) if len(plan.reused) == len(plan.files) else None,
    )


def _as_adapter(record: ModelRecord, facts: AdapterFacts) -> ModelRecord:
    """An adapter's models row: its facts, the widths its tensors imply, and its config's base declared.

    Without the implied hidden size an adapter sits in no comparability block: never compared, not
    even with a copy of itself.
    """
    bases = record.base_models + ([facts.base] if facts.base and facts.base not in record.base_models else [])
    return replace(
        record,
        hidden=record.hidden or facts.hidden,
        intermediate=record.intermediate or facts.intermediate,
        base_models=bases,
        adapter_type=facts.peft_type,
        adapter_base=facts.base,
        adapter_rank=facts.rank,
        adapter_alpha=facts.alpha,
        adapter_targets=list(facts.targets),
        adapter_layers=list(facts.layers),
    )


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


def _fingerprint_tensors(
    ref: ModelRef,
    settings: Settings,
    plan: _Plan,
    sources: list[ByteSource],
    headers: list[CheckpointHeader],
    tokens: list[str] | None,
) -> tuple[list[TensorFingerprint], dict[str, tuple[int, ...]]]:
    """Reused fingerprints plus those of every file read; roles settled over the whole checkpoint."""
    # Some roles are settled only by the whole checkpoint (Gemma's norms, transposed layouts).
    shapes = {t.name: t.shape for h in headers for t in h.tensors}
    shapes.update({t.name: tuple(t.shape) for reused in plan.reused.values() for t in reused})
    roles = classify_all(list(shapes), shapes)
    tensors = [t for f in plan.files if f.name in plan.reused for t in plan.reused[f.name]]
    key = (ref.repo_id, ref.revision)
    for source, header in zip(sources, headers, strict=True):
        with blame(ref.repo_id, ref.revision, source.name):
            for rows in checkpoint.read_rows(source, header, settings, lambda n: roles[n].role, tokens):
                tensors.append(fingerprint_tensor(key, rows, roles[rows.header.name], settings, tokens))
    return tensors, shapes


def _read_header(
    ref: ModelRef, source: ByteSource, settings: Settings, quant: dict[str, Any] | None
) -> CheckpointHeader:
    with blame(ref.repo_id, ref.revision, source.name):
        return checkpoint.read_header(source, settings, quant)


def _reuse(known: KnownFiles | None, owner: ModelKey, f: FileRef, ref: ModelRef) -> list[TensorFingerprint]:
    """Another repo's stored fingerprints of a byte-identical file, relabelled as this model's."""
    assert known is not None
    return [
        replace(t, repo_id=ref.repo_id, revision=ref.revision, file=f.name)
        for t in known.rows(owner[0], owner[1], str(f.sha256))
    ]


def _copy_of(owners: dict[str, ModelKey], files: tuple[FileRef, ...]) -> str | None:
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


def _model_record(
    ref: ModelRef,
    settings: Settings,
    plan: _Plan,
    tensors: list[TensorFingerprint],
    sources: list[ByteSource],
    config: ModelConfig,
    tokens: list[str] | None,
    http: HubHttp,
    started: float,
) -> ModelRecord:
    """The models row of a fingerprinted model; copy_of and code_notices are the caller's to add."""
    by_dtype: Counter[str] = Counter()
    for t in tensors:
        by_dtype[t.dtype] += t.numel
    # A GPTQ/AWQ/FP8/NVFP4/MLX/bitsandbytes checkpoint keeps its embeddings in F16/BF16, often the
    # larger share of a small model: its quantisation scheme, not F16, names it (and is what a cast
    # verdict needs).
    schemes = PACKED_SCHEMES + SCALED_SCHEMES + REBUILT_SCHEMES
    packed = Counter({d: n for d, n in by_dtype.items() if d.startswith(schemes)})
    local = ref.local_dir is not None
    counts = _counts(sources, http, local)
    return ModelRecord(
        repo_id=ref.repo_id,
        revision=ref.revision,
        source=ref.source,
        endpoint=str(ref.local_dir) if local else settings.endpoint,
        format=plan.fmt,
        files=[f.name for f in plan.files],
        architecture=config.architecture,
        model_type=config.model_type,
        layers=config.n_layers,
        hidden=config.hidden,
        heads=config.n_heads,
        kv_heads=config.n_kv_heads,
        intermediate=config.intermediate,
        experts=config.n_experts,
        vocab=config.vocab,
        params=sum(by_dtype.values()),
        dtype=(packed or by_dtype).most_common(1)[0][0] if by_dtype else None,
        base_models=list(ref.base_models),
        base_relations=list(ref.base_relations()),
        license=ref.license,
        license_name=ref.license_name,
        created_at=ref.created_at,
        checkpoint_bytes=sum(f.size or 0 for f in plan.files) or sum(s.size for s in sources),
        bytes_read=counts.bytes_read,
        requests=counts.requests,
        api_requests=counts.api_requests,
        resolver_requests=counts.resolver_requests,
        cdn_requests=counts.cdn_requests,
        tensors=len(tensors),
        has_tokens=tokens is not None,
        exact=settings.exact,
        seed=settings.seed,
        seconds=time.monotonic() - started,
        fingerprinted_at=datetime.now(UTC),
        local_dir=_local_dir(ref, settings),
    )


def _counts(sources: list[ByteSource], http: HubHttp, local: bool) -> RequestCounts:
    """What the model's reads cost: a local folder's reads count as requests in no Hub bucket."""
    read = sum(s.stats.bytes for s in sources)
    if local:
        return RequestCounts(requests=sum(s.stats.requests for s in sources), bytes_read=read)
    return RequestCounts.by_bucket(http.log.requests, bytes_read=read)


def _local_dir(ref: ModelRef, settings: Settings) -> str | None:
    """Where the repo's files are on this machine, if anywhere: its own folder, or the served one."""
    if ref.local_dir is not None:
        return str(Path(ref.local_dir).absolute())  # a relative folder would break compare elsewhere
    return str(Path(settings.hub_folder) / ref.repo_id) if settings.hub_folder else None
