"""The store's commit rule: a model's `models` file is written last and is its commit marker.

Tensors and file hashes written without it (a task killed between writes) must stay invisible to the
views, to StoreIndex and to Store.has_model, and become visible only once the model is written whole.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from hubscan.jobs import fingerprint
from hubscan.pipeline.config import Settings
from hubscan.pipeline.storage.duckdb import connect
from hubscan.pipeline.storage.index import StoreIndex, load_owners
from hubscan.pipeline.storage.parquet import Store, model_key
from hubscan.testbed.demohub.small_repos import main as write_small_repos

BASE = "smoke/base"
CRASHED = ("org/crashed", "c" * 40)


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    """A store holding one real fingerprinted model (smoke/base, from a local folder)."""
    write_small_repos(tmp_path / "repos")
    settings = Settings(store=tmp_path / "store")
    summary = fingerprint.run(settings, [str(tmp_path / "repos" / BASE)])
    assert (summary.done, summary.failed) == (1, 0), summary.messages
    return Store(settings.store).init()


def _committed_copy(
    store: Store,
) -> tuple[dict[str, object], list[dict[str, object]], list[dict[str, object]]]:
    """smoke/base's stored rows relabelled as another model: a models row, its tensors and files."""
    con = connect(store)
    relabel = {"repo_id": CRASHED[0], "revision": CRASHED[1]}
    (model,) = con.sql("FROM models").to_arrow_table().to_pylist()
    tensors = con.sql("FROM tensors").to_arrow_table().to_pylist()
    files = con.sql("FROM read_parquet($p)", params={"p": f"{store.location}/files/*.parquet"})
    return (
        {**model, **relabel},
        [{**t, **relabel} for t in tensors],
        # other content hashes, so the file-owner map can name both models
        [{**f, **relabel, "sha256": f["sha256"][::-1]} for f in files.to_arrow_table().to_pylist()],
    )


def _visible(store: Store) -> dict[str, list[str]]:
    """Which repos each reader shows: the views, the sweep's index and the file-owner map."""
    con = connect(store)
    index = StoreIndex.load(store)
    return {
        "models": sorted(r for (r,) in con.sql("SELECT DISTINCT repo_id FROM models").fetchall()),
        "tensors": sorted(r for (r,) in con.sql("SELECT DISTINCT repo_id FROM tensors").fetchall()),
        "std_profiles": sorted(r for (r,) in con.sql("SELECT DISTINCT repo_id FROM std_profiles").fetchall()),
        "index": sorted(r for r in (BASE, CRASHED[0]) if index.has_model(r, _revision(store, r))),
        "has_model": sorted(r for r in (BASE, CRASHED[0]) if store.has_model(r, _revision(store, r))),
        "owners": sorted({repo for repo, _ in load_owners(store).values()}),
    }


def _revision(store: Store, repo_id: str) -> str:
    if repo_id == CRASHED[0]:
        return CRASHED[1]
    (rev,) = (
        connect(store)
        .sql("SELECT revision FROM models WHERE repo_id = $r", params={"r": repo_id})
        .fetchall()[0]
    )
    return str(rev)


def test_a_model_killed_between_its_writes_is_invisible_until_written_whole(store: Store) -> None:
    model, tensors, files = _committed_copy(store)
    assert len(tensors) > 0 and len(files) > 0
    # a models row Arrow cannot take fails the last write, after tensors and files landed: a real crash
    with pytest.raises((pa.ArrowInvalid, pa.ArrowTypeError)):
        store.write_model({**model, "layers": "not a number"}, tensors, files)
    key = model_key(*CRASHED)
    assert (store.root / "tensors" / f"{key}.parquet").exists()
    assert (store.root / "files" / f"{key}.parquet").exists()
    assert not (store.root / "models" / f"{key}.parquet").exists()
    # the orphaned rows are on disk (a raw dataset read sees them) ...
    raw = store.dataset("tensors").to_table(columns=["repo_id"]).column("repo_id").to_pylist()
    assert raw.count(CRASHED[0]) == len(tensors)
    # ... but no reader that counts models does
    only_base = [BASE]
    assert _visible(store) == dict.fromkeys(
        ("models", "tensors", "std_profiles", "index", "has_model", "owners"), only_base
    )
    assert list((store.root / "tensors").glob(".*.tmp")) == []  # no temporary file left behind either

    store.write_model(model, tensors, files)  # the re-run commits it
    both = sorted([BASE, CRASHED[0]])
    assert _visible(store) == dict.fromkeys(
        ("models", "tensors", "std_profiles", "index", "has_model", "owners"), both
    )
    n = (
        connect(store)
        .sql("SELECT count(*) FROM tensors WHERE repo_id = $r", params={"r": CRASHED[0]})
        .fetchall()
    )
    assert n == [(len(tensors),)]
