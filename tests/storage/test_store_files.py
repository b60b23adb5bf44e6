"""The store's own files: never reached through a link; a damaged, foreign or read-only store is one line.

Every case runs the CLI as a user would, on a store fingerprinted from small real safetensors files.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hubscan.jobs import fingerprint
from hubscan.jobs.cli import app
from hubscan.pipeline.config import Settings
from hubscan.pipeline.errors import StoreError
from hubscan.pipeline.runtime import sweep
from hubscan.pipeline.storage.duckdb import connect
from hubscan.pipeline.storage.lock import LOCK_FILE
from hubscan.pipeline.storage.manifest import MANIFEST, MANIFEST_FOREIGN
from hubscan.pipeline.storage.parquet import model_key
from tests.storage.test_keys import small_repo

SECRET = b"a file of the user's, outside the store\n"


@pytest.fixture
def store(tmp_path) -> Path:
    """A store of two models, and a file outside it that nothing may touch."""
    folders = [str(small_repo(tmp_path / "src", f"org/model-{i}", seed=i)) for i in range(2)]
    root = tmp_path / "store"
    summary = fingerprint.run(Settings(store=root), folders)
    assert summary.done == 2, summary.messages
    (tmp_path / "outside.txt").write_bytes(SECRET)
    return root


def hubscan(*args: str) -> tuple[int, str]:
    """Exit code and stderr of one CLI command (stdout is the data, not checked here)."""
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stderr


def one_line(stderr: str) -> str:
    """The command's only stderr line (fails on a traceback or a second line)."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def test_a_lock_file_linked_outside_the_store_is_refused_and_its_target_left_alone(store, tmp_path):
    os.symlink(tmp_path / "outside.txt", store / LOCK_FILE)
    with pytest.raises(StoreError) as refused:
        sweep.run(Settings(store=store), f"local:{tmp_path / 'src'}")
    assert str(refused.value) == (
        f"{store}:{LOCK_FILE}: is a link or not a plain file; hubscan does not follow links in its store: remove it"
    )
    assert (tmp_path / "outside.txt").read_bytes() == SECRET


def test_a_table_folder_linked_outside_the_store_gets_no_write(store, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    shutil.move(store / "failures", elsewhere)
    os.symlink(elsewhere, store / "failures")
    before = sorted(p.name for p in elsewhere.iterdir())
    code, err = hubscan("fingerprint", "--store", str(store), str(tmp_path / "src" / "no-such-model"))
    assert code == 1
    assert one_line(err) == (
        f"hubscan: {store}:failures: is a link or not a plain file; hubscan does not follow links in its store: "
        "remove it"
    )
    assert sorted(p.name for p in elsewhere.iterdir()) == before


@pytest.mark.parametrize(
    ("marker", "reason"),
    [
        ('{"schema_version": "99"}', 'not what hubscan writes (schema_version "99" is not an integer)'),
        ("[1, 2]", "not what hubscan writes (an array of JSON, not an object)"),
        ("{", "not what hubscan writes (not JSON)"),
    ],
)
@pytest.mark.parametrize("command", [["flag"], ["fingerprint", "org/none"], ["check", "--repair"]])
def test_a_marker_hubscan_did_not_write_is_one_line_naming_the_store(store, marker, reason, command):
    (store / "_hubscan.json").write_text(marker)
    if command[0] == "check":  # check opens any store: it lists the marker and leaves it in place
        result = CliRunner().invoke(app, [*command, "--store", str(store)])
        assert (result.exit_code, result.stdout.splitlines()) == (3, [f"_hubscan.json: {reason}"])
        assert (store / "_hubscan.json").read_text() == marker
        return
    code, err = hubscan(*command, "--store", str(store))
    assert code == 1
    assert one_line(err) == f"hubscan: {store}:_hubscan.json: {reason}"


def test_a_marker_that_is_a_link_is_not_read(store, tmp_path):
    (store / "_hubscan.json").unlink()
    os.symlink(tmp_path / "outside.txt", store / "_hubscan.json")
    code, err = hubscan("flag", "--store", str(store))
    assert code == 1
    assert one_line(err).endswith(":_hubscan.json: is a link or not a plain file; hubscan does not follow "
                                  "links in its store: remove it")  # fmt: skip


def read_only_prefix() -> list[str]:
    """How to run a command that the kernel holds to file modes (root ignores them unless it drops the right)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: a read-only folder cannot be made here")
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search"]


@pytest.mark.parametrize(
    ("command", "what"),
    [
        (["flag"], "the store cannot be written: Permission denied"),
        (["check", "--repair"], "the store cannot be written: Permission denied"),
        (["fingerprint", "org/none"], "the store cannot be written: Permission denied"),
        (["compact"], ".compact.lock: the store cannot be written: Permission denied"),
        (["sweep", "--source", "local:SRC"], ".sweep.lock: the store cannot be written: Permission denied"),
    ],
)
def test_a_read_only_store_is_one_line_from_every_command_that_writes(store, tmp_path, command, what):
    for folder, _, files in os.walk(store):
        for name in files:
            os.chmod(os.path.join(folder, name), 0o444)
        os.chmod(folder, 0o555)
    try:
        args = [a.replace("SRC", str(tmp_path / "src")) for a in command]
        env = {
            **os.environ,
            "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
            "RAY_AUTH_MODE": "disabled",
        }
        done = subprocess.run(
            [*read_only_prefix(), sys.executable, "-m", "hubscan.jobs.cli", *args, "--store", str(store)],
            capture_output=True, text=True, env=env, timeout=300,
        )  # fmt: skip
    finally:
        for folder, _, _ in os.walk(store):
            os.chmod(folder, 0o755)
    assert done.returncode == 1, done.stderr
    line = one_line(done.stderr)
    assert line.startswith("hubscan: ") and str(store) in line and line.endswith(what), line


def _damage(store: Path, tmp_path: Path) -> list[str]:
    """A part replaced by a folder, a part that is a link to a file outside, a pipe named like a part."""
    tensors = next(p for p in sorted((store / "tensors").iterdir()) if not p.name.startswith("_"))
    tensors.unlink()
    tensors.mkdir()
    files = store / "files" / tensors.name
    files.unlink()
    os.symlink(tmp_path / "outside.txt", files)
    os.mkfifo(store / "models" / "pipe.parquet")
    return [
        f"files/{tensors.name}: a link: hubscan does not follow links in its store",
        "models/pipe.parquet: not a regular file (a pipe, socket or device)",
        f"tensors/{tensors.name}: a folder, not a Parquet file",
    ]


def test_check_lists_everything_that_is_not_a_readable_part_and_repair_makes_the_store_usable(
    store, tmp_path
):
    expected = _damage(store, tmp_path)
    result = CliRunner().invoke(app, ["check", "--store", str(store)])
    assert (result.exit_code, result.stdout.splitlines()) == (3, expected)
    assert CliRunner().invoke(app, ["check", "--repair", "--store", str(store)]).exit_code == 3
    assert CliRunner().invoke(app, ["check", "--store", str(store)]).exit_code == 0
    assert hubscan("compact", "--store", str(store))[0] == 0
    flagged = CliRunner().invoke(app, ["flag", "--store", str(store)])
    assert flagged.exit_code == 0, flagged.output
    assert (tmp_path / "outside.txt").read_bytes() == SECRET


def test_a_folder_named_like_a_compacted_models_part_does_not_stop_compaction(store):
    # what a sweep runs after its models: it deleted "leftover" parts and died on the folder (IsADirectoryError)
    assert hubscan("compact", "--store", str(store))[0] == 0
    stem = model_key("org/model-0", _stored_revision(store, "org/model-0"))
    (store / "tensors" / f"{stem}.parquet").mkdir()
    code, err = hubscan("compact", "--store", str(store))
    assert code == 0, err
    result = CliRunner().invoke(app, ["check", "--store", str(store)])
    assert result.stdout.splitlines() == [f"tensors/{stem}.parquet: a folder, not a Parquet file"]


def _stored_revision(store: Path, repo_id: str) -> str:
    rows = connect(store).execute("SELECT revision FROM models WHERE repo_id = ?", [repo_id]).fetchall()
    return str(rows[0][0])


@pytest.mark.parametrize(
    "manifest",
    [
        "[]",
        '{"generation": "x", "parts": {}}',
        "{",
        '{"generation": 1, "parts": {"models": ["../../outside.parquet"]}}',
    ],
)
def test_a_manifest_hubscan_did_not_write_is_listed_by_check_and_one_line_elsewhere(store, manifest):
    assert hubscan("compact", "--store", str(store))[0] == 0
    (store / MANIFEST).write_text(manifest)
    result = CliRunner().invoke(app, ["check", "--store", str(store)])
    assert (result.exit_code, result.stdout.splitlines()) == (3, [f"{MANIFEST}: {MANIFEST_FOREIGN}"])
    code, err = hubscan("flag", "--store", str(store))
    assert code == 1
    assert one_line(err) == f"hubscan: {store}:{MANIFEST}: {MANIFEST_FOREIGN}"
