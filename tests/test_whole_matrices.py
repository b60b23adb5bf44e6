"""Whole matrices are read again from a model's recorded folder under the local source's rule: a file
that became a link out of the folder, or a pipe, is refused in one line and never opened (compare's
permutation test, through the CLI on a store fingerprinted from small real safetensors folders)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from hubscan.jobs import fingerprint
from hubscan.jobs.cli import app
from hubscan.pipeline.config import Settings
from hubscan.pipeline.storage.duckdb import connect
from hubscan.testbed.writers.safetensors_write import write_safetensors

HIDDEN, WIDTH, LAYERS = 64, 128, 2


def _repo(folder: Path, seed: int) -> Path:
    """A two-layer Llama-shaped repo: MLP up/down matrices and a config naming its hidden size."""
    rng = np.random.default_rng(seed)
    tensors = {}
    for layer in range(LAYERS):
        prefix = f"model.layers.{layer}.mlp"
        tensors[f"{prefix}.up_proj.weight"] = rng.standard_normal((WIDTH, HIDDEN)).astype(np.float32)
        tensors[f"{prefix}.down_proj.weight"] = rng.standard_normal((HIDDEN, WIDTH)).astype(np.float32)
    write_safetensors(folder / "model.safetensors", tensors)
    config = {"model_type": "llama", "hidden_size": HIDDEN, "num_hidden_layers": LAYERS}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture
def stored(tmp_path) -> tuple[Path, Path]:
    """A store of org/a and org/b fingerprinted from their folders; (store, org/b's folder)."""
    a, b = _repo(tmp_path / "src/org/a", 0), _repo(tmp_path / "src/org/b", 1)
    summary = fingerprint.run(Settings(store=tmp_path / "store"), [str(a), str(b)])
    assert (summary.done, summary.failed) == (2, 0), summary.messages
    return tmp_path / "store", b


def _compare(store: Path) -> tuple[int, str]:
    result = CliRunner().invoke(
        app, ["compare", "org/a", "org/b", "--permutation-test", "--store", str(store)]
    )
    return result.exit_code, result.stderr


def _revision(store: Path) -> str:
    return connect(store).execute("SELECT revision FROM models WHERE repo_id = 'org/b'").fetchone()[0][:7]


def test_the_recorded_folder_is_read_when_intact(stored):
    code, stderr = _compare(stored[0])
    assert code == 0, stderr


def test_a_weight_file_linked_out_of_the_recorded_folder_is_refused_unread(stored, tmp_path):
    store, folder = stored
    outside = tmp_path / "elsewhere" / "model.safetensors"  # a readable model: the old code used it
    outside.parent.mkdir()
    shutil.move(folder / "model.safetensors", outside)
    os.symlink(outside, folder / "model.safetensors")
    code, stderr = _compare(store)
    assert code == 1
    assert stderr.strip().splitlines() == [
        f"hubscan: org/b@{_revision(store)}:model.safetensors: a link to outside the source folder: not followed"
    ]


def test_a_weight_file_that_became_a_pipe_is_refused_without_blocking(stored):
    store, folder = stored
    (folder / "model.safetensors").unlink()
    os.mkfifo(folder / "model.safetensors")
    code, stderr = _compare(store)
    assert code == 1
    assert stderr.strip().splitlines() == [
        f"hubscan: org/b@{_revision(store)}:model.safetensors: not a regular file (a pipe, socket or device):"
        " not read"
    ]
