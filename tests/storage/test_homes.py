"""Flag's homes: candidate models packed by component, pairs grouped into units, each unit reading only its homes.

The end-to-end checks run `hubscan flag` on a synthetic hub (families of fine-tunes, prunes and stacks)
with homes small enough to give many units, against one home holding every model.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from pathlib import Path

import pyarrow as pa
import pytest

from bench.detection_synth import build_store
from hubscan.pipeline.comparison.candidates import CandidatePair
from hubscan.pipeline.config import Settings
from hubscan.pipeline.errors import QueryError
from hubscan.pipeline.flagging import engine as flag
from hubscan.pipeline.storage import homes
from hubscan.pipeline.storage.check import find_bad_files
from hubscan.pipeline.storage.homes import CROSS, SHARED_FOLDER, pair_homes, plan_homes, read_homes, units
from hubscan.pipeline.storage.parquet import Store
from tests.stores import corrupt_column

RUN_STAMP = ("flag_id", "flagged_at")


def _pair(a: str, b: str, via: str = "lsh") -> CandidatePair:
    return CandidatePair(a, "r", b, "r", 64, via)


def test_components_stay_in_one_home_and_only_a_larger_one_is_cut():
    # components {a,b,c}, {d,e}, {f..l} (7 models), homes of 4; a background pair joins no component
    pairs = [_pair("a", "b"), _pair("b", "c"), _pair("d", "e")]
    pairs += [_pair("f", x) for x in "ghijkl"]
    pairs += [_pair("c", "d", "background")]
    home_of = plan_homes(pairs, size=4)
    home = {k[0]: h for k, h in home_of.items()}
    assert len(home) == 12
    assert home["a"] == home["b"] == home["c"]
    assert home["d"] == home["e"] != home["a"]
    assert max(sum(1 for h in home.values() if h == n) for n in set(home.values())) <= 4
    big = {home[x] for x in "fghijkl"}
    assert len(big) == 2  # 7 models cut into two homes, the only component cut


def test_pairs_whose_models_live_apart_are_scored_from_the_cross_home():
    pairs = [_pair("a", "b"), _pair("b", "c"), _pair("c", "d"), _pair("x", "y")]
    pairs += [_pair("a", "x", "background")]
    home_of = plan_homes(pairs, size=2)
    grouped = units(pairs, home_of)
    assert sum(len(u.pairs) for u in grouped) == len(pairs)
    for u in grouped:
        for p in u.pairs:
            ha, hb = home_of[p.a], home_of[p.b]
            assert u.home == (ha if ha == hb else CROSS)
    cross = next(u for u in grouped if u.home == CROSS)
    assert {(p.a_repo_id, p.b_repo_id) for p in cross.pairs} == {("b", "c"), ("a", "x")}


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("homes") / "store"
    build_store(root, 600)
    return root


def _flag(store: Path, tmp_path: Path, name: str) -> tuple[pa.Table, pa.Table]:
    copy = tmp_path / name
    shutil.copytree(store, copy)
    result = flag.run(Settings(store=copy), exhaustive_max=0, runner="local")
    maps = pa.Table.from_pylist(Store(copy).dataset("layer_maps").to_table().to_pylist())
    return result.pairs.drop_columns(list(RUN_STAMP)), maps.drop_columns(["written_at"])


def _rows(table: pa.Table, columns: list[str] | None = None) -> list[tuple]:
    names = sorted(columns or table.column_names)

    def value(v):
        return "nan" if isinstance(v, float) and math.isnan(v) else repr(v)

    return sorted(tuple(value(r[c]) for c in names) for r in table.to_pylist())


def test_many_small_homes_write_the_pairs_and_maps_one_home_writes(synth, tmp_path, monkeypatch):
    con = flag.flag_connection(Store(synth))
    cand, _ = flag.candidates(con, Store(synth), 0)
    home_of = plan_homes(cand, size=60)
    assert len(set(home_of.values())) > 5
    # no family cut (only the background sample is scored from the cross home): maps and stacks whole
    assert all(p.via == "background" for u in units(cand, home_of) if u.home == CROSS for p in u.pairs)
    monkeypatch.setattr(homes, "HOME_MODELS", 10**9)
    whole_pairs, whole_maps = _flag(synth, tmp_path, "one")
    monkeypatch.setattr(homes, "HOME_MODELS", 60)
    pairs, maps = _flag(synth, tmp_path, "many")
    assert pairs.num_rows > 500
    assert _rows(pairs) == _rows(whole_pairs)
    assert _rows(maps) == _rows(whole_maps)


def test_a_cut_component_still_scores_every_pair_once_with_the_same_signals(synth, tmp_path, monkeypatch):
    monkeypatch.setattr(homes, "HOME_MODELS", 10**9)
    whole, _ = _flag(synth, tmp_path, "one")
    # homes of 3 models cut every family of more than three
    monkeypatch.setattr(homes, "HOME_MODELS", 3)
    cut, _ = _flag(synth, tmp_path, "cut")
    signals = [
        "a_repo_id",
        "b_repo_id",
        "sketch",
        "dim_std",
        "col_norms",
        "tokens",
        "sorted",
        "p",
        "q",
        "flagged",
    ]
    assert _rows(cut, signals) == _rows(whole, signals)


def test_a_unit_connection_reads_only_its_homes(synth):
    store = Store(synth)
    con = flag.flag_connection(store)
    cand, _ = flag.candidates(con, store, 0)
    with pair_homes(con, store, cand, size=50) as written:
        assert written is not None
        unit = next(u for u in written.units(cand) if u.home != CROSS)
        unit_con = flag.flag_connection(written.empty_store)  # as flag opens a unit: no store to bind
        read_homes(unit_con, written.files(unit))
        seen = {tuple(r) for r in unit_con.sql("SELECT DISTINCT repo_id, revision FROM tensors").fetchall()}
        in_homes = {k for k, h in written.home_of.items() if h == unit.home}
        assert seen == in_homes
        assert 0 < len(seen) < len(written.home_of)
        everything = con.sql(
            "SELECT count(*) FROM tensors WHERE repo_id = $r", params={"r": next(iter(seen))[0]}
        )
        mine = unit_con.sql(
            "SELECT count(*) FROM tensors WHERE repo_id = $r", params={"r": next(iter(seen))[0]}
        )
        assert everything.fetchall() == mine.fetchall()  # a model's rows come whole


def test_flag_leaves_no_temporary_folder_even_when_it_fails(synth, tmp_path, monkeypatch):
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    copy = tmp_path / "store"
    shutil.copytree(synth, copy)
    flag.run(Settings(store=copy), exhaustive_max=0, runner="local")
    assert os.listdir(temp) == []
    # a tensors chunk's sketch column broken (the candidate SQL never reads it): the homes cannot be
    # written, and nothing is left behind
    corrupt_column(next((copy / "tensors").glob("chunk*.parquet")), "sketch")
    with pytest.raises(QueryError, match="writing flag's homes"):
        flag.run(Settings(store=copy), exhaustive_max=0, runner="local")
    assert os.listdir(temp) == []


def test_a_clusters_homes_live_under_the_store_unread_by_check_and_are_removed(synth, tmp_path):
    copy = tmp_path / "store"
    shutil.copytree(synth, copy)
    store = Store(copy)
    con = flag.flag_connection(store)
    cand, _ = flag.candidates(con, store, 0)
    with pair_homes(con, store, cand, shared=True) as written:
        assert written is not None
        assert written.folder.is_relative_to(copy / SHARED_FOLDER)
        assert any(written.folder.glob("*.parquet"))
        # a home being written looks like a broken file: check must not report it (nor --repair move it)
        (written.folder / "half-written.parquet").write_bytes(b"PAR1 cut")
        assert find_bad_files(copy) == []
    assert list((copy / SHARED_FOLDER).iterdir()) == []
