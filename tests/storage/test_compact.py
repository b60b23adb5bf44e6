"""Compaction: per-block files plus an atomic manifest; views count every model once whatever state a
killed compaction leaves (each state of the protocol is built here and read back), and a re-run is a
no-op."""

import json
import shutil

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from hubscan.jobs import fingerprint
from hubscan.pipeline.config import Settings
from hubscan.pipeline.errors import StoreError
from hubscan.pipeline.flagging import engine as flag
from hubscan.pipeline.storage.check import find_bad_files, quarantine
from hubscan.pipeline.storage.compact import compact
from hubscan.pipeline.storage.duckdb import connect
from hubscan.pipeline.storage.manifest import MANIFEST
from hubscan.pipeline.storage.parquet import Store
from hubscan.pipeline.storage.schema import TABLES
from hubscan.pipeline.storage.small_files import read_with_duckdb, read_with_threads
from hubscan.testbed.demohub.small_repos import main as write_small_repos

COUNTS = "SELECT (SELECT count(*) FROM models), (SELECT count(*) FROM tensors)"


@pytest.fixture(scope="module")
def loose_store(tmp_path_factory):
    """Seven small models fingerprinted into a store of loose per-model files (no Ray, a few seconds)."""
    root = tmp_path_factory.mktemp("compact")
    write_small_repos(root / "repos")
    repos = sorted(p for p in (root / "repos").glob("*/*") if p.is_dir())
    fingerprint.run(Settings(store=root / "store"), [str(p) for p in repos])
    return root / "store"


@pytest.fixture
def store(loose_store, tmp_path):
    shutil.copytree(loose_store, tmp_path / "store")
    return Store(tmp_path / "store").init()


def _counts(store):
    return connect(store).execute(COUNTS).fetchone()


def _flagged(store):
    result = flag.run(Settings(store=store.uri))
    return sorted((r["a_repo_id"], r["b_repo_id"], round(r["score"], 6)) for r in result.rows if r["flagged"])


def test_compacted_store_reads_and_flags_as_the_loose_one(store):
    before, flagged = _counts(store), _flagged(store)
    result = compact(store)
    assert (result.models, result.generation) == (7, 1)
    assert not list((store.root / "models").glob("[!_]*.parquet"))  # loose files folded in
    assert sorted(p.parent.name for p in (store.root / "compacted" / "tensors").rglob("*.parquet")) == [
        "block-128"
    ]
    assert _counts(store) == before == (7, 7 * 49)
    assert _flagged(store) == flagged and len(flagged) == 3


def test_a_second_run_is_a_no_op(store):
    compact(store)
    manifest = (store.root / MANIFEST).read_bytes()
    files = sorted(store.root.rglob("*.parquet"))
    again = compact(store)
    assert (again.models, again.removed_files) == (0, 0)
    assert (store.root / MANIFEST).read_bytes() == manifest and sorted(store.root.rglob("*.parquet")) == files


def test_killed_before_the_manifest_swap_its_parts_are_never_read(store):
    before = _counts(store)
    compact(store)
    # a killed second compaction left a part the manifest does not name: a duplicate of every row
    (part,) = (store.root / "compacted" / "tensors" / "block-128").glob("*.parquet")
    stray = part.with_name("part-000002-deadbeef.parquet")
    shutil.copy(part, stray)
    assert _counts(store) == before
    assert compact(store).removed_files == 1 and not stray.exists()


def test_killed_after_the_swap_loose_and_compacted_copies_count_once(store, tmp_path):
    before = _counts(store)
    saved = tmp_path / "saved"
    for table in ("models", "tensors", "files"):
        shutil.copytree(store.root / table, saved / table)
    compact(store)
    for table in ("models", "tensors", "files"):  # the clean-up never ran
        shutil.copytree(saved / table, store.root / table, dirs_exist_ok=True)
    assert _counts(store) == before
    again = compact(store)  # replaces the compacted rows of those models: still no duplicate
    assert again.models == 7 and _counts(store) == before
    assert not list((store.root / "models").glob("[!_]*.parquet"))


def test_killed_mid_clean_up_leftover_tensors_are_hidden_then_removed(store, tmp_path):
    before = _counts(store)
    saved = tmp_path / "saved"
    shutil.copytree(store.root / "tensors", saved)
    compact(store)
    shutil.copytree(saved, store.root / "tensors", dirs_exist_ok=True)  # markers gone, tensors not
    assert _counts(store) == before
    assert compact(store).removed_files == 7
    assert not list((store.root / "tensors").glob("[!_]*.parquet"))


def test_a_model_fingerprinted_again_after_compaction_is_read_from_its_new_files(store, loose_store):
    compact(store)
    repo = loose_store.parent / "repos" / "smoke" / "base"
    fingerprint.run(Settings(store=store.uri), [str(repo)], force=True)
    assert _counts(store) == (7, 7 * 49)
    assert store.has_model(*connect(store).execute("SELECT repo_id, revision FROM models LIMIT 1").fetchone())


def _parts(store, table="tensors"):
    return sorted(p.name for p in (store.root / "compacted" / table / "block-128").glob("*.parquet"))


def test_models_read_in_small_groups_still_make_one_part_per_block(store):
    before, flagged = _counts(store), _flagged(store)
    result = compact(store, group_models=2)  # four groups of loose models
    assert result.models == 7 and all(len(_parts(store, t)) == 1 for t in ("models", "tensors", "files"))
    assert _counts(store) == before and _flagged(store) == flagged


def _compact_one_at_a_time(store, tmp_path, merge_parts):
    """Each loose model compacted on its own, as a sweep's periodic compactions would leave them."""
    held = tmp_path / "held"
    for table in ("models", "tensors", "files"):
        (held / table).mkdir(parents=True)
        for path in (store.root / table).glob("[!_]*.parquet"):  # the store's own _ files stay
            shutil.move(path, held / table)
    manifests = []
    for stem in sorted(p.stem for p in (held / "models").glob("[!_]*.parquet")):
        for table in ("tensors", "files", "models"):  # the commit marker last, as a sweep writes it
            shutil.copy(held / table / f"{stem}.parquet", store.root / table)
        manifests.append((store.root / MANIFEST).read_bytes() if (store.root / MANIFEST).exists() else None)
        compact(store, merge_parts=merge_parts)
    return manifests


def test_a_crowded_block_has_its_small_parts_merged_and_nothing_counted_twice(store, tmp_path):
    before, flagged = _counts(store), _flagged(store)
    _compact_one_at_a_time(store, tmp_path, merge_parts=3)
    # 7 compactions: the 4th and the 7th found 4 parts in the block and merged them into one
    assert len(_listed(store)) == 1 and len(_parts(store)) == 5  # 4 merged-away parts wait for the next run
    assert _counts(store) == before and _flagged(store) == flagged
    assert compact(store).removed_files == 3 * 4 and len(_parts(store)) == 1
    assert compact(store).removed_files == 0


def test_a_merge_killed_before_its_swap_is_never_read(store, tmp_path):
    before = _counts(store)
    _compact_one_at_a_time(store, tmp_path, merge_parts=100)
    assert len(_listed(store)) == 7  # without the rule: one part per compaction
    unmerged = (store.root / MANIFEST).read_bytes()
    merged = compact(store, merge_parts=3)  # no loose model: a crowded block alone is merged
    assert merged.models == 0 and len(_listed(store)) == 1 and _counts(store) == before
    (store.root / MANIFEST).write_bytes(unmerged)  # as if killed before the swap
    assert len(_parts(store)) == 8 and _counts(store) == before
    assert compact(store, merge_parts=100).removed_files == 3 and len(_parts(store)) == 7


def _listed(store, table="tensors"):
    return json.loads((store.root / MANIFEST).read_bytes())["parts"][table]


def test_a_second_compaction_waits_for_the_first(store):
    # two at once would each swap in a manifest naming only their own parts and delete the loose
    # files they folded in: the first one's models would vanish
    import threading

    from hubscan.pipeline.storage.lock import compaction_lock

    before = _counts(store)
    done = threading.Event()
    with compaction_lock(store.root):
        worker = threading.Thread(target=lambda: (compact(store), done.set()))
        worker.start()
        assert not done.wait(1.0), "compaction ran while another held the lock"
    worker.join(60)
    assert done.is_set()
    assert _counts(store) == before
    assert compact(store).models == 0


def test_concurrent_compactions_lose_no_model(store):
    from concurrent.futures import ProcessPoolExecutor

    before = _counts(store)
    with ProcessPoolExecutor(2) as pool:
        results = list(pool.map(_compact_at, [store.uri, store.uri]))
    assert sum(results) == before[0]  # each model folded in by exactly one of them
    assert _counts(store) == before


def _compact_at(uri):
    return compact(Store(uri)).models


def _with_null_lists(rows):
    """Every other row with null in each list column (a model with no sketch, no tokens...)."""
    holes = pa.array([i % 2 == 0 for i in range(rows.num_rows)])
    for i, f in enumerate(rows.schema):
        if pa.types.is_list(f.type):
            rows = rows.set_column(i, f, pc.if_else(holes, pa.nulls(rows.num_rows, f.type), rows[f.name]))
    return rows


@pytest.mark.parametrize(("table", "newer"), [("tensors", "token_vectors"), ("models", "code_notices")])
def test_duckdb_reads_loose_files_exactly_as_the_pyarrow_pool(loose_store, tmp_path, table, newer):
    files = sorted(str(p) for p in (loose_store / table).glob("[!_]*.parquet"))
    old, holes = str(tmp_path / "old.parquet"), str(tmp_path / "holes.parquet")
    pq.write_table(pq.read_table(files[0]).drop_columns([newer]), old)  # written before `newer` existed
    pq.write_table(_with_null_lists(pq.read_table(files[1])), holes)
    # the older file first, in the middle, and alone (then no file has the column)
    for paths in ([old, *files[2:], holes], [*files[2:], old, holes], [old]):
        by_duckdb = read_with_duckdb(paths, TABLES[table])
        by_pool = read_with_threads(pafs.LocalFileSystem(), paths, TABLES[table])
        assert by_duckdb.schema == TABLES[table]
        assert by_duckdb.equals(by_pool)
    assert by_duckdb[newer].null_count == by_duckdb.num_rows > 0


def test_an_unreadable_loose_file_stops_compaction_with_one_line_naming_it(store):
    before = _counts(store)
    bad = sorted((store.root / "tensors").glob("[!_]*.parquet"))[3]
    bad.write_bytes(bad.read_bytes()[:100])  # a disk that filled up mid-copy
    with pytest.raises(StoreError) as caught:
        compact(store)
    assert str(caught.value) == (
        f"{store._path('tensors', bad.name)}: unreadable loose file: Parquet magic bytes not found in footer. "
        "Either the file is corrupted or this is not a parquet file."
    )
    with pytest.raises(StoreError) as pool:  # an object store's reader names it the same way
        read_with_threads(store.fs, [store._path("tensors", bad.name)], TABLES["tensors"])
    assert str(pool.value) == str(caught.value)
    assert not (store.root / MANIFEST).exists() and len(list((store.root / "models").glob("[!_]*"))) == 7
    quarantine(store.root, find_bad_files(store.root))  # what `hubscan check --repair` does
    assert compact(store).models == 6 and _counts(store) == (6, before[1] - 49)


def test_models_whose_files_tables_are_empty_compact(store):
    # a model whose weights no other repo shares has no files rows; the synthetic 10k store is all such
    before = _counts(store)
    for path in (store.root / "files").glob("[!_]*.parquet"):
        pq.write_table(TABLES["files"].empty_table(), path)
    assert compact(store).models == 7 and _counts(store) == before
    assert not list((store.root / "compacted" / "files").rglob("*.parquet"))
