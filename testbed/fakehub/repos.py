"""Repos on disk as the Hub sees them: files, content hashes, a commit sha, and card-derived metadata."""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from .formats import front_matter, gguf_summary, safetensors_parameters

# Files the Hub stores in LFS by default (.gitattributes of a new repo); others go in LFS above 10 MB.
LFS_SUFFIXES = frozenset(
    {".safetensors", ".gguf", ".bin", ".pt", ".pth", ".onnx", ".ckpt", ".pkl", ".pickle", ".h5", ".msgpack"}
)
LFS_MIN_SIZE = 10 * 1024 * 1024
HIDDEN_PREFIX = ".fakehub"  # per-repo overrides live next to the files but are never served
OVERRIDES_FILE = ".fakehub.json"
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_HASH_CHUNK = 1 << 20


def iso(ts: float) -> str:
    """Unix time as the Hub's timestamp format, e.g. 2024-05-01T12:00:00.000Z."""
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The git-lfs pointer file the Hub's git stores in place of a large file."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def git_blob_sha1(data_size: int, chunks: list[bytes] | None = None) -> hashlib._Hash:
    """A sha1 primed with git's blob header, so the digest is the git object id."""
    h = hashlib.sha1(b"blob %d\0" % data_size)
    for chunk in chunks or []:
        h.update(chunk)
    return h


class HashCache:
    """sha256 and git blob ids keyed on (path, mtime, size), so big files are hashed once, not per request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: dict[str, tuple[int, int, str, str]] = {}

    def get(self, path: Path, mtime_ns: int, size: int) -> tuple[str, str]:
        """(sha256 hex, git blob sha1 hex) of the file content."""
        key = str(path)
        with self._lock:
            hit = self._known.get(key)
        if hit is not None and hit[:2] == (mtime_ns, size):
            return hit[2], hit[3]
        sha256, sha1 = hashlib.sha256(), git_blob_sha1(size)
        with path.open("rb") as f:
            while chunk := f.read(_HASH_CHUNK):
                sha256.update(chunk)
                sha1.update(chunk)
        with self._lock:
            self._known[key] = (mtime_ns, size, sha256.hexdigest(), sha1.hexdigest())
        return sha256.hexdigest(), sha1.hexdigest()


@dataclass(frozen=True)
class RepoFile:
    """One served file: where it is, how big, and its Hub identities."""

    rfilename: str
    path: Path
    size: int
    mtime: float
    sha256: str
    git_sha1: str

    @property
    def is_lfs(self) -> bool:
        """Whether the Hub would keep this file in LFS (and answer with X-Linked-* headers)."""
        return self.size > LFS_MIN_SIZE or Path(self.rfilename).suffix.lower() in LFS_SUFFIXES

    @property
    def blob_id(self) -> str:
        """Git object id: of the pointer for LFS files, of the content otherwise."""
        if not self.is_lfs:
            return self.git_sha1
        pointer = lfs_pointer(self.sha256, self.size)
        return git_blob_sha1(len(pointer), [pointer]).hexdigest()

    @property
    def etag(self) -> str:
        """Quoted ETag as the Hub sends it: sha256 for LFS files, git blob id otherwise."""
        return f'"{self.sha256 if self.is_lfs else self.git_sha1}"'

    def sibling(self, blobs: bool) -> dict[str, Any]:
        """The `siblings` entry; sizes and LFS info only with blobs=true, as on the Hub."""
        out: dict[str, Any] = {"rfilename": self.rfilename}
        if blobs:
            out.update(size=self.size, blobId=self.blob_id)
            if self.is_lfs:
                pointer_size = len(lfs_pointer(self.sha256, self.size))
                out["lfs"] = {"sha256": self.sha256, "size": self.size, "pointerSize": pointer_size}
        return out


def valid_repo_id(repo_id: str) -> bool:
    """Only `org/name` made of safe segments can name a folder under the root."""
    parts = repo_id.split("/")
    return len(parts) == 2 and all(_SEGMENT.match(p) and ".." not in p for p in parts)


class Repo:
    """A consistent view of one repo folder for the duration of one request (properties are cached)."""

    def __init__(self, repo_id: str, folder: Path, hashes: HashCache) -> None:
        self.repo_id = repo_id
        self.folder = folder
        self._hashes = hashes

    @cached_property
    def _stats(self) -> dict[str, tuple[Path, os.stat_result]]:
        found: dict[str, tuple[Path, os.stat_result]] = {}
        for dirpath, dirnames, filenames in os.walk(self.folder, followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if d != ".git")
            for name in filenames:
                if name.startswith(HIDDEN_PREFIX):
                    continue
                path = Path(dirpath) / name
                try:
                    st = path.stat()  # follows symlinks, so an HF cache snapshot folder serves its blobs
                except OSError:
                    continue
                found[path.relative_to(self.folder).as_posix()] = (path, st)
        return dict(sorted(found.items()))

    @property
    def filenames(self) -> list[str]:
        """Served file names in sorted order, without hashing anything."""
        return list(self._stats)

    def file(self, rfilename: str) -> RepoFile | None:
        """One file with its hashes, or None if the repo has no such file."""
        hit = self._stats.get(rfilename)
        if hit is None:
            return None
        path, st = hit
        sha256, sha1 = self._hashes.get(path, st.st_mtime_ns, st.st_size)
        return RepoFile(rfilename, path, st.st_size, st.st_mtime, sha256, sha1)

    @cached_property
    def files(self) -> list[RepoFile]:
        """All served files with hashes (hashes come from the cache after the first request)."""
        return [f for f in (self.file(name) for name in self._stats) if f is not None]

    def siblings(self, blobs: bool) -> list[dict[str, Any]]:
        """The `siblings` list; only blobs=true needs (cached) content hashes."""
        if blobs:
            return [f.sibling(blobs=True) for f in self.files]
        return [{"rfilename": name} for name in self.filenames]

    @cached_property
    def sha(self) -> str:
        """Deterministic commit id over (path, size, content hash): it changes whenever any file does."""
        h = hashlib.sha1()
        for f in self.files:
            h.update(f"{f.rfilename}\0{f.size}\0{f.sha256}\n".encode())
        return h.hexdigest()

    @cached_property
    def overrides(self) -> dict[str, Any]:
        """Contents of .fakehub.json; {} if absent or unreadable."""
        try:
            data = json.loads((self.folder / OVERRIDES_FILE).read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    @cached_property
    def card_data(self) -> dict[str, Any]:
        """The override's cardData, else README.md front matter."""
        if isinstance(self.overrides.get("cardData"), dict):
            return dict(self.overrides["cardData"])
        try:
            return front_matter((self.folder / "README.md").read_text(errors="replace"))
        except OSError:
            return {}

    @property
    def author(self) -> str:
        """The org half of the repo id."""
        return self.repo_id.split("/")[0]

    @property
    def private(self) -> bool:
        """Private repos answer 401 RepoNotFound to anyone without a granted token."""
        return bool(self.overrides.get("private", False))

    @property
    def gated(self) -> str | bool:
        """ "auto", "manual" or False, as in the Hub's model info."""
        value = self.overrides.get("gated", False)
        if value is True:
            return "auto"
        return value if value in ("auto", "manual") else False

    def stat_int(self, key: str) -> int:
        """downloads / likes from the overrides, 0 by default."""
        value = self.overrides.get(key, 0)
        return value if isinstance(value, int) else 0

    @property
    def used_storage(self) -> int:
        """Bytes of all served files (the Hub's `usedStorage`)."""
        return sum(st.st_size for _, st in self._stats.values())

    @cached_property
    def last_modified(self) -> str:
        """Override, else newest file mtime."""
        times = [st.st_mtime for _, st in self._stats.values()] or [self.folder.stat().st_mtime]
        return str(self.overrides.get("lastModified") or iso(max(times)))

    @cached_property
    def created_at(self) -> str:
        """Override, else oldest file mtime."""
        times = [st.st_mtime for _, st in self._stats.values()] or [self.folder.stat().st_mtime]
        return str(self.overrides.get("createdAt") or iso(min(times)))

    @property
    def library_name(self) -> str | None:
        """Override, else card `library_name`."""
        value = self.overrides.get("library_name") or self.card_data.get("library_name")
        return str(value) if value else None

    @property
    def pipeline_tag(self) -> str | None:
        """Override, else card `pipeline_tag`."""
        value = self.overrides.get("pipeline_tag") or self.card_data.get("pipeline_tag")
        return str(value) if value else None

    @property
    def base_models(self) -> list[str]:
        """Card `base_model`, a string or a list."""
        value = self.card_data.get("base_model")
        if isinstance(value, str):
            return [value]
        return [str(v) for v in value] if isinstance(value, list) else []

    @cached_property
    def tags(self) -> list[str]:
        """Override tags verbatim; else card tags plus what the Hub adds (library, formats, base_model, license)."""
        if isinstance(self.overrides.get("tags"), list):
            return [str(t) for t in self.overrides["tags"]]
        card_tags = self.card_data.get("tags")
        tags = [str(t) for t in card_tags] if isinstance(card_tags, list) else []
        suffixes = {Path(n).suffix for n in self.filenames}
        tags += [x for x in (self.library_name, self.pipeline_tag) if x]
        tags += [fmt for fmt in ("safetensors", "gguf") if f".{fmt}" in suffixes]
        tags += [f"base_model:{b}" for b in self.base_models]
        relation = (self.base_models_field() or {}).get("relation")
        tags += [f"base_model:{relation}:{b}" for b in self.base_models if relation]
        if isinstance(self.card_data.get("license"), str):
            tags.append(f"license:{self.card_data['license']}")
        return list(dict.fromkeys(tags))

    def base_models_field(self) -> dict[str, Any] | None:
        """The Hub's `baseModels`: relation plus model ids, or None without a base_model."""
        if not self.base_models:
            return None
        relation = self.card_data.get("base_model_relation")
        if relation is None:
            if any(n.endswith(".gguf") for n in self.filenames):
                relation = "quantized"
            elif "adapter_config.json" in self._stats:
                relation = "adapter"
            else:
                relation = "merge" if len(self.base_models) > 1 else "finetune"
        return {"relation": relation, "models": [{"id": b} for b in self.base_models]}

    @cached_property
    def safetensors(self) -> dict[str, Any] | None:
        """{"parameters": {dtype: n}, "total": n} over readable .safetensors headers; None if there are none."""
        params: dict[str, int] = {}
        seen = False
        for name, (path, _) in self._stats.items():
            if name.endswith(".safetensors") and (counts := safetensors_parameters(path)) is not None:
                seen = True
                for dtype, n in counts.items():
                    params[dtype] = params.get(dtype, 0) + n
        return {"parameters": params, "total": sum(params.values())} if seen else None

    @cached_property
    def gguf(self) -> dict[str, Any] | None:
        """Summary of the first readable .gguf file, as the Hub's `gguf` field."""
        for name, (path, _) in self._stats.items():
            if name.endswith(".gguf") and (summary := gguf_summary(path)) is not None:
                return summary
        return None

    @cached_property
    def config(self) -> dict[str, Any] | None:
        """Parsed config.json, or None if absent or not a JSON object."""
        hit = self._stats.get("config.json")
        if hit is None:
            return None
        try:
            data = json.loads(hit[0].read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None


class RepoStore:
    """The root folder: `ROOT/<org>/<name>/` is repo `org/name`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.hashes = HashCache()

    def get(self, repo_id: str) -> Repo | None:
        """The repo for an id, or None (also for ids that could escape the root)."""
        if not valid_repo_id(repo_id):
            return None
        folder = self.root / repo_id
        return Repo(repo_id, folder, self.hashes) if folder.is_dir() else None

    def all(self) -> list[Repo]:
        """Every repo folder, sorted by id."""
        repos = []
        for org in sorted(p for p in self.root.iterdir() if p.is_dir()):
            for folder in sorted(p for p in org.iterdir() if p.is_dir()):
                if valid_repo_id(f"{org.name}/{folder.name}"):
                    repos.append(Repo(f"{org.name}/{folder.name}", folder, self.hashes))
        return repos
