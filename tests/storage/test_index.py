"""The sweep's view of the store: loaded in one scan per table, kept current as results arrive."""

import hashlib
import os
from dataclasses import replace

from hubscan.pipeline.errors import MalformedHeader
from hubscan.pipeline.runtime import sweep
from hubscan.pipeline.storage.duckdb import connect
from hubscan.pipeline.storage.index import StoreIndex, load_owners
from hubscan.pipeline.storage.parquet import Store
from hubscan.testbed.demohub.small_repos import main as write_small_repos


def _model(repo_id: str, revision: str) -> dict[str, object]:
    return {"repo_id": repo_id, "revision": revision, "layers": 2, "hidden": 8}


def test_the_index_holds_committed_models_failures_and_file_owners(tmp_path):
    store = Store(tmp_path / "store").init()
    store.write_model(
        _model("org/a", "1"), [], [{"sha256": "aa", "repo_id": "org/a", "revision": "1", "file": "w"}]
    )
    store.write_failures("org/b", "2", [MalformedHeader("org/b", "2", "w", "header length 9 exceeds 8")])
    # tensors and files of a model whose commit marker never landed: not an owner
    store.write(
        "files/orphan.parquet",
        store.dataset("files")
        .to_table()
        .from_pylist(
            [{"sha256": "bb", "repo_id": "org/c", "revision": "3", "file": "w"}],
            store.dataset("files").schema,
        ),
    )
    index = StoreIndex.load(store)
    assert index.has_model("org/a", "1") and not index.has_model("org/b", "2")
    assert index.failure_categories("org/b", "2") == {"MalformedHeader"}
    assert load_owners(store) == {"aa": ("org/a", "1")}
    index.add_model("org/b", "2")
    assert index.has_model("org/b", "2") and index.failure_categories("org/b", "2") == set()


def _cache_repo(cache, repo_id, snapshot, src):
    """huggingface_hub's cache layout (blobs named by sha256): the source that knows file hashes."""
    root = cache / f"models--{repo_id.replace('/', '--')}"
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    snap = root / "snapshots" / snapshot
    snap.mkdir(parents=True)
    for name in ("model.safetensors", "config.json"):
        data = (src / name).read_bytes()
        blob = root / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snap / name).symlink_to(os.path.relpath(blob, snap))


def test_a_copy_listed_after_its_original_in_the_same_sweep_reads_no_weights(ray_session, settings, tmp_path):
    repos, cache = tmp_path / "repos", tmp_path / "cache"
    write_small_repos(repos)
    _cache_repo(cache, "smoke/base", "a" * 40, repos / "smoke" / "base")
    _cache_repo(cache, "smoke/other", "b" * 40, repos / "other" / "unrelated-1")
    _cache_repo(cache, "zz/base-copy", "c" * 40, repos / "smoke" / "base")
    # one model at a time: the copy is listed (last, by name) after its original has committed
    summary = sweep.run(replace(settings, max_in_flight=1), f"cache:{cache}")
    assert (summary.done, summary.failed) == (3, 0)
    rows = connect(settings.store).execute("SELECT repo_id, copy_of, bytes_read FROM models").fetchall()
    assert sorted((r, c, b) for r, c, b in rows if c) == [("zz/base-copy", f"smoke/base@{'a' * 40}", 0)]
