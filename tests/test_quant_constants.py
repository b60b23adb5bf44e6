"""Nothing that is the same in every file of a format is evidence: a sweep over the fake Hub of
all-MiniLM-L6-v2, an unrelated model of exactly its shape, and both quantised in every layout
hubscan reads, then flag on the real store.

Two copies written the same way share every code table, scale layout and constant of their
format and nothing else, so they must never be flagged; each copy of the base must still be
called a cast/quantised copy. A new format adds its writer to testbed/demohub/quant_zoo.py
(LAYOUTS and DTYPES) and is tested here with the rest.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from hubscan.jobs import compare
from hubscan.pipeline.chain.model_task import fingerprint_model
from hubscan.pipeline.comparison import verdicts as v
from hubscan.pipeline.config import Settings
from hubscan.pipeline.flagging import engine as flag
from hubscan.pipeline.quant_parts import is_auxiliary
from hubscan.pipeline.runtime import sweep
from hubscan.pipeline.sources.local import local_model
from hubscan.pipeline.storage.duckdb import connect
from hubscan.testbed.demohub import quant_zoo
from hubscan.testbed.demohub.realmodels import default_cache
from hubscan.testbed.fakehub import FakeHub
from tests.real_checkpoints import real_model
from tests.stores import pair_row

LAYOUTS = list(quant_zoo.LAYOUTS)
MINILM, OTHER = quant_zoo.MINILM, quant_zoo.OTHER


def _copy(base: str, layout: str) -> str:
    return f"demohub/{base.split('/')[1]}-{layout}"


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    for key in ("minilm-l6", "e5-small"):
        real_model(key)
    root = tmp_path_factory.mktemp("quantzoo")
    minilm, other = quant_zoo.base_repos(root, default_cache(), tmp_path_factory.mktemp("quantzoo-raw"))
    for layout in LAYOUTS:
        quant_zoo.quantised(root, minilm, layout)
        quant_zoo.quantised(root, other, layout)
    return root


@pytest.fixture(scope="module")
def swept(zoo, ray_session, tmp_path_factory):
    """The zoo swept through a fake Hub of its own and flagged; the Hub stays up for compare."""
    with FakeHub(zoo) as hub:
        settings = Settings(
            endpoint=hub.url, store=tmp_path_factory.mktemp("quantstore") / "store", backoff_base_s=0.01
        )
        summary = sweep.run(settings, "hub")
        con = connect(settings.store)
        models = {
            r[0]: r[1:]
            for r in con.execute(
                "SELECT repo_id, dtype, params, bytes_read, checkpoint_bytes FROM models"
            ).fetchall()
        }
        names = con.execute("SELECT repo_id, name, dtype FROM tensors").fetchall()
        sketches = {
            (r[0], r[1]): (r[2], r[3])
            for r in con.execute("SELECT repo_id, name, sketch, std FROM tensors").fetchall()
        }
        yield SimpleNamespace(
            settings=settings,
            summary=summary,
            rows=flag.run(Settings(store=settings.store)).rows,
            models=models,
            sketches=sketches,
            names=names,
        )


def test_every_model_of_the_zoo_is_swept(swept):
    assert swept.summary.failed == 0, swept.summary.messages
    assert len(swept.models) == 2 + 2 * len(LAYOUTS)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_quantised_copy_stores_the_bases_tensors_and_no_quantiser_part(swept, layout):
    for base in (MINILM, OTHER):
        repo = _copy(base, layout)
        stored = {n for r, n, _ in swept.names if r == repo}
        assert not [n for n in stored if is_auxiliary(n)], repo
        # the same names as the base, one logical weight per quantised layer, and its parameter count
        assert stored == {n for r, n, _ in swept.names if r == base}, repo
        dtype, params, _, _ = swept.models[repo]
        assert (dtype, params) == (quant_zoo.DTYPES[layout], swept.models[base][1]), repo


@pytest.mark.parametrize("layout", LAYOUTS)
def test_unrelated_models_quantised_the_same_way_are_never_flagged(swept, layout):
    row = pair_row(swept.rows, _copy(MINILM, layout), _copy(OTHER, layout))
    assert not row["flagged"] and row["verdict"] == v.UNRELATED, row["reason"]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_quantised_copy_of_the_base_is_a_cast_or_quantised_copy(swept, layout):
    for base in (MINILM, OTHER):
        row = pair_row(swept.rows, base, _copy(base, layout))
        assert row["flagged"] and row["verdict"] == v.CAST_COPY, (base, layout, row["reason"])


def test_no_pair_across_the_two_models_is_flagged_whatever_their_layouts(swept):
    family = {MINILM, *(_copy(MINILM, lay) for lay in LAYOUTS)}
    crossing = [r for r in swept.rows if (r["a_repo_id"] in family) != (r["b_repo_id"] in family)]
    assert len(crossing) == (1 + len(LAYOUTS)) ** 2
    assert [(r["a_repo_id"], r["b_repo_id"]) for r in crossing if r["flagged"]] == []


@pytest.mark.parametrize("layout", ["bnb-nf4-dq", "mlx-int4-g64"])
def test_compare_runs_the_permutation_test_on_an_unrelated_pair_and_finds_no_permutation(swept, layout):
    # before NF4 matrices were rebuilt: "MLP matrices (294912, 1) and (294912, 1) cannot be matched"
    got = compare.run(swept.settings, _copy(MINILM, layout), _copy(OTHER, layout), permutation_test=True)
    assert got.row["verdict"] == v.UNRELATED
    assert got.permutation is not None and got.permutation.p > 1e-3, got.permutation.summary()


# Layouts whose rows are read by range (the GPTQ/AWQ parts are read whole: README, "GPTQ and AWQ").
ROW_READ = [lay for lay in LAYOUTS if lay.startswith(("mlx-", "bnb-"))]


@pytest.mark.parametrize("layout", ROW_READ)
def test_a_row_read_copy_reads_a_fraction_of_its_file_and_the_hub_read_matches_the_local_one(
    zoo, swept, layout, tmp_path
):
    repo = _copy(MINILM, layout)
    _, _, bytes_read, checkpoint_bytes = swept.models[repo]
    # measured: 4.0 % (INT8-bnb) to 38.8 % (MLX int3, whose dense token rows merge into long runs)
    assert bytes_read < checkpoint_bytes / 2, (bytes_read, checkpoint_bytes)
    local = fingerprint_model(local_model(zoo / repo, repo), Settings(store=tmp_path / "store"))
    assert local.ok, local.errors
    for r in local.tensor_rows:
        assert (r["sketch"], r["std"]) == swept.sketches[(repo, r["name"])], r["name"]
