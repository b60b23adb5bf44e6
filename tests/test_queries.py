"""Every shipped SQL file: declared parameters match those used, it returns the expected rows on a real
store through the Python API, and the plain duckdb CLI runs it after views.sql."""

import csv
import io
import re
import shutil
import subprocess

import pytest

from hubscan.jobs import fingerprint
from hubscan.pipeline.flagging import engine as flag
from hubscan.pipeline.storage.duckdb import (
    CANDIDATE_STEPS,
    QUERIES,
    connect,
    create_temp_table,
    load_sql,
    run_sql,
    shipped_sql,
)
from tests.expected_queries import EXPECTED

SQL_FILES = sorted(p.name for p in QUERIES.iterdir() if p.name.endswith(".sql"))
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
PARAMS = {
    "repo_id": MINILM,
    "a": MINILM,
    "b": "demohub/minilm-l6-finetuned",
    "pattern": "%MiniLM%",
    # the pair-scoring and flag queries (hubscan flag, compare, export)
    "min_values": 64,
    "min_vector": 8,
    "min_tokens": 2,
    # 0: the LSH path (hubscan flag's default of 300 takes the exhaustive one on every small store)
    "exhaustive_max": 0,
    "bands": 24,
    "bits": 10,
    "min_z": 5.0,
    "background_pairs": 0,
    "include_all": True,
    "undeclared_only": False,
    "min_score": 0,
    "max_rows": 20,
    "status": "%",
    "finding": "%",
    # show_layer_map (structural derivations)
    "a_repo_id": MINILM,
    "b_repo_id": "demohub/minilm-l6-finetuned",
}
# Layout blocks have no LSH path: below the default exhaustive_max they give all their pairs.
PER_FILE = {
    "compute_layout_candidate_pairs.sql": {"exhaustive_max": 300},
    # the candidate steps whose rows the LSH path above leaves empty
    "compute_exhaustive_pairs.sql": {"exhaustive_max": 300},
    "compute_background_pairs.sql": {"background_pairs": 10},
}
# Files of statements that define views rather than return rows (connect() runs both).
DDL_FILES = ("views.sql", "number_candidates.sql")


def _earlier_steps(name: str) -> tuple[str, ...]:
    """The temp tables of candidate_pairs() a candidate step file reads, in the order they are built."""
    files = [f"compute_{t}.sql" for t in CANDIDATE_STEPS]
    if name == "compute_candidate_pairs.sql":
        return CANDIDATE_STEPS
    return CANDIDATE_STEPS[: files.index(name)] if name in files else ()


@pytest.fixture(scope="module")
def store(testbed, tmp_path_factory):
    from hubscan.pipeline.config import Settings

    root = tmp_path_factory.mktemp("qstore") / "store"
    settings = Settings(store=root)
    # a cousin whose card states no licence, so find_licence_conflicts has a row (licence-unknown)
    repos = [testbed / MINILM, testbed / "demohub/minilm-l6-finetuned", testbed / "badhub/pickle-only",
             testbed / "licbed/minilm-l3-nolicence"]  # fmt: skip
    # and a pair of unknown architecture, for the layout queries
    repos += [testbed / "vision-lab/tiny-cnn-s0", testbed / "demohub/tiny-cnn-s0-finetuned"]
    summary = fingerprint.run(settings, [str(p) for p in repos])
    assert (summary.done, summary.failed) == (5, 1)
    # the pairs table too, so the queries over it read real rows (the cousin is flagged with both)
    assert flag.run(settings).flagged == 4
    # compare writes the pair's layer map, which show_layer_map.sql reads
    from hubscan.jobs import compare

    compare.run(settings, PARAMS["a_repo_id"], PARAMS["b_repo_id"])
    return root


@pytest.mark.parametrize("name", SQL_FILES)
def test_header_declares_exactly_the_parameters_used(name):
    sql = load_sql(name)
    text = sql.text
    assert text.startswith("-- purpose:"), name
    assert re.search(r"^-- reads:", text, re.M), name
    if name != "views.sql":
        assert sql.params.keys() == sql.used_params(), name


@pytest.mark.parametrize("name", [n for n in SQL_FILES if n not in DDL_FILES])
def test_runs_on_a_real_store(store, name):
    sql = load_sql(name)
    params = {**PARAMS, **PER_FILE.get(name, {})}
    con = connect(store)
    for table in _earlier_steps(name):
        step = load_sql(f"compute_{table}")
        create_temp_table(con, table, step, {k: v for k, v in params.items() if k in step.params})
    rel = run_sql(con, sql, {k: v for k, v in params.items() if k in sql.params})
    assert name in EXPECTED, f"{name}: add what it returns on this store to tests/expected_queries.py"
    count, columns, keys = EXPECTED[name]
    assert rel is not None
    # through Arrow, as hubscan reads results (fetchall() of a TIMESTAMPTZ needs pytz)
    rows = rel.to_arrow_table().to_pylist()
    assert len(rows) == count
    assert sorted({tuple(_rounded(r[c]) for c in columns) for r in rows}, key=repr) == keys


def _rounded(value):
    """Floats to 2 decimals (lists to tuples), so a pinned row is hashable and sampling noise passes."""
    if isinstance(value, float):
        return round(value, 2) + 0.0  # + 0.0 turns -0.0 into 0.0
    if isinstance(value, list):
        return tuple(_rounded(v) for v in value)
    return value


def test_fine_tune_std_profile_correlates_with_its_base(store):
    rows = dict(
        (r, v)
        for r, v, _ in run_sql(
            connect(store), load_sql("compare_std_profiles"), {"a": PARAMS["a"], "b": PARAMS["b"]}
        ).fetchall()
    )
    assert rows["mean"] > 0.99


@pytest.mark.skipif(
    shutil.which("duckdb") is None, reason="duckdb CLI not installed (pip install duckdb-cli)"
)
@pytest.mark.parametrize("name", [n for n in SQL_FILES if n not in DDL_FILES])
def test_duckdb_cli_runs_it_after_views(store, name):
    sql = load_sql(name)
    params = {**PARAMS, **PER_FILE.get(name, {})}
    steps = {table: load_sql(f"compute_{table}") for table in _earlier_steps(name)}
    values = {k: v for s in (*steps.values(), sql) for k, v in s.defaults.items()}
    values.update({k: v for k, v in params.items() if k in values or k in sql.params})
    sets = [f"SET VARIABLE {k} = '{v}';" for k, v in sorted(values.items())]

    def body(text: str) -> str:
        # The CLI has no named parameters; getvariable() stands in for $name.
        return re.sub(r"\$(\w+)", r"getvariable('\1')", text)

    # the earlier candidate steps as candidate_pairs() keeps them: temp tables
    temps = [f"CREATE OR REPLACE TEMP TABLE {t} AS\n{body(s.text)}" for t, s in steps.items()]
    reads = [f".read {shipped_sql(n)}" for n in DDL_FILES]
    script = "\n".join([*reads, *sets, *temps, body(sql.text)])
    out = subprocess.run(
        ["duckdb", "-csv"], input=script, text=True, capture_output=True, cwd=store, timeout=60
    )
    assert out.returncode == 0 and "Error" not in out.stderr, out.stderr
    # the same number of rows as through the Python API (the header line aside); the CLI prints its
    # warnings (families.sql: "Deprecated UNION in USING KEY CTE") to stdout, in grey, before the rows
    text = re.sub(r"\x1b\[\d+m", "", out.stdout)
    if text.startswith("WARNING:"):
        text = text.split("\n\n", 1)[1]
    assert len(list(csv.reader(io.StringIO(text)))) == 1 + EXPECTED[name][0], out.stdout
