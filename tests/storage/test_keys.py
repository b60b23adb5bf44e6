"""Store file names: any legal id fits the 255-byte limit, none is hidden, and older stores keep their keys."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from hubscan.jobs import fingerprint
from hubscan.jobs.cli import app
from hubscan.pipeline.config import Settings
from hubscan.pipeline.runtime import sweep
from hubscan.pipeline.storage.duckdb import connect
from hubscan.pipeline.storage.parquet import MAX_NAME_BYTES, Store, model_key
from hubscan.testbed.writers.safetensors_write import write_safetensors

CJK_NAME = "模" * 80  # a legal folder name of 240 bytes


def small_repo(root: Path, repo_id: str, seed: int = 0) -> Path:
    """One safetensors repo folder of two random matrices (enough to fingerprint)."""
    rng = np.random.default_rng(seed)
    folder = root / repo_id
    tensors = {f"layers.{i}.mlp.weight": rng.standard_normal((64, 64)).astype(np.float32) for i in range(2)}
    write_safetensors(folder / "model.safetensors", tensors)
    return folder


def test_a_repo_named_with_80_cjk_characters_is_stored_and_found_again(tmp_path):
    folder = small_repo(tmp_path / "src", f"org/{CJK_NAME}")
    settings = Settings(store=tmp_path / "store")
    first = fingerprint.run(settings, [str(folder)])
    assert (first.done, first.failed) == (1, 0), first.messages
    again = fingerprint.run(settings, [str(folder)])
    assert (again.done, again.skipped) == (0, 1)
    rows = connect(settings.store).execute("SELECT repo_id FROM models").fetchall()
    assert rows == [(f"org/{CJK_NAME}",)]
    names = [p.name for p in (settings.store / "models").iterdir()]
    assert all(len(n.encode()) <= MAX_NAME_BYTES for n in names)


def test_a_repo_whose_name_starts_with_underscore_is_skipped_by_the_next_sweep(ray_session, tmp_path):
    # readers take "_..." and "..." files for metadata: today such a model is read again on every sweep
    small_repo(tmp_path / "src", "_org/model")
    small_repo(tmp_path / "src", "org/model", seed=1)
    settings = Settings(store=tmp_path / "store")
    first = sweep.run(settings, f"local:{tmp_path / 'src'}")
    assert (first.done, first.failed) == (2, 0)
    second = sweep.run(settings, f"local:{tmp_path / 'src'}")
    assert (second.done, second.skipped) == (0, 2)
    assert Store(settings.store).has_model("_org/model", _revision(settings, "_org/model"))


def _revision(settings: Settings, repo_id: str) -> str:
    query = "SELECT revision FROM models WHERE repo_id = ?"
    return str(connect(settings.store).execute(query, [repo_id]).fetchone()[0])


def test_ids_that_fitted_before_keep_the_key_earlier_stores_were_written_with():
    # the rule of every store written so far, restated: a changed key would orphan stored models
    for repo_id in ("sentence-transformers/all-MiniLM-L6-v2", "org/模型-v2", "a" * 96 + "/" + "b" * 96):
        digest = hashlib.sha1(f"{repo_id}@abc".encode()).hexdigest()[:16]
        earlier = "".join(c if c.isalnum() or c in "-_." else "_" for c in repo_id)[:80]
        assert model_key(repo_id, "abc") == f"{earlier}--{digest}"


def test_no_key_starts_with_a_hidden_file_lead_or_passes_255_bytes():
    for repo_id in ("_org/m", "./x", "__/..", "org/" + "😀" * 80, "org/" + "é" * 96, "x/" + "模" * 96):
        name = f"{model_key(repo_id, 'abc')}.parquet"
        assert not name.startswith(("_", ".")) and len(name.encode()) <= MAX_NAME_BYTES, name


def test_a_sweep_id_that_is_a_path_is_one_line_and_writes_nothing_outside_the_store(tmp_path):
    small_repo(tmp_path / "work" / "src", "org/model")
    store = tmp_path / "work" / "deep" / "store"
    before = sorted(p for p in tmp_path.rglob("*"))
    result = CliRunner().invoke(
        app,
        ["sweep", "--source", f"local:{tmp_path / 'work' / 'src'}", "--store", str(store),
         "--sweep-id", "../../escaped"],
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert result.stderr.strip().splitlines() == [
        f"hubscan: {store}: sweep id '../../escaped' is not a plain name: use letters, digits, '.', '_' and '-', "
        "starting with a letter or digit, at most 128"
    ]
    assert sorted(p for p in tmp_path.rglob("*") if store not in p.parents and p != store) == before
