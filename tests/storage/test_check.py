"""A corrupt Parquet file in the store: queries fail with one line naming it, `hubscan check` lists
it, and --repair moves it aside so the model is fingerprinted again."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from hubscan.jobs import fingerprint
from hubscan.pipeline.config import Settings
from hubscan.pipeline.storage.parquet import Store
from hubscan.testbed.writers.safetensors_write import write_safetensors


def _hubscan(*args):
    return subprocess.run(
        [sys.executable, "-m", "hubscan.jobs.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_a_truncated_tensors_file_is_named_quarantined_and_refingerprinted(tmp_path):
    repo = tmp_path / "org" / "tiny"
    write_safetensors(repo / "model.safetensors", {"a.weight": np.ones((16, 16), np.float32)})
    settings = Settings(store=tmp_path / "store")
    assert fingerprint.run(settings, [str(repo)]).done == 1
    store = Path(settings.store)
    (tensors,) = [p for p in (store / "tensors").glob("*.parquet") if not p.name.startswith("_")]
    tensors.write_bytes(tensors.read_bytes()[:100])  # a disk that filled up mid-copy
    relative = tensors.relative_to(store)

    query = _hubscan("sql", "SELECT count(*) FROM tensors", "--store", str(store))
    assert query.returncode == 1
    assert query.stderr.count("\n") == 1 and tensors.name in query.stderr

    listed = _hubscan("check", "--store", str(store))
    assert listed.returncode == 3
    assert listed.stdout.startswith(f"{relative}: ")
    assert listed.stdout.count("\n") == 1

    repaired = _hubscan("check", "--store", str(store), "--repair")
    assert repaired.returncode == 3
    assert (store / "quarantine" / relative).exists()
    assert (store / "quarantine" / "models" / tensors.name).exists()
    assert _hubscan("check", "--store", str(store)).returncode == 0
    assert not Store(store).has_model("org/tiny", fingerprint_revision(store))
    assert fingerprint.run(settings, [str(repo)]).done == 1
    assert _hubscan("sql", "SELECT count(*) AS n FROM tensors", "--store", str(store)).returncode == 0


def fingerprint_revision(store: Path) -> str:
    """The revision the quarantined models row had (local repos hash their files)."""
    (models,) = (store / "quarantine" / "models").glob("*.parquet")
    return pq.read_table(models).column("revision")[0].as_py()
