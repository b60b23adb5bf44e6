"""DuckDB over the Parquet store: the views of queries/views.sql and the shipped SQL files."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from hubscan.pipeline.comparison.candidates import CandidatePair, candidate_table
from hubscan.pipeline.comparison.edges import Forest
from hubscan.pipeline.errors import QueryError, one_line
from hubscan.pipeline.storage.manifest import COMPACT_TABLES
from hubscan.pipeline.storage.parquet import Store
from hubscan.pipeline.storage.remote import register

# The top-level `queries` package (the product's fixed layout), read as package data so a plain
# `pip install .` finds the same files as a source checkout.
QUERIES: Traversable = files("hubscan.queries")
# The steps of candidate_pairs(), in order: compute_<table>.sql, kept as temp table <table> for the
# steps after it (one job per file: blocks, small blocks whole, LSH signatures, codes, screened
# collisions, each model's nearest of them, the random background); compute_candidate_pairs.sql then
# joins them.
CANDIDATE_STEPS = (
    "candidate_blocks",
    "exhaustive_pairs",
    "lsh_signatures",
    "lsh_codes",
    "lsh_collisions",
    "lsh_pairs",
    "lineage_pairs",
    "background_pairs",
)
# Screened pairs per Arrow batch streamed into the spanning forest (add_spanning_forest).
FOREST_BATCH = 1_000_000
_PARAM_DECL = re.compile(r"\$(\w+)\s+([A-Za-z]+(?:\[\])?)(?:\s*=\s*([^,]+))?")
_PARAM_USE = re.compile(r"\$(\w+)")
# A query parameter's value: what a header's types (VARCHAR, BIGINT, INTEGER, DOUBLE, FLOAT, BOOLEAN) hold.
SqlValue = str | int | float | bool | None
SqlParams = Mapping[str, SqlValue]
_CASTS = {"DOUBLE": float, "FLOAT": float, "INTEGER": int, "BIGINT": int, "VARCHAR": str, "BOOLEAN": None}


@dataclass(frozen=True)
class SqlFile:
    """A shipped query: its text, the parameters its header declares, and their defaults."""

    name: str
    text: str
    params: dict[str, str]  # name → SQL type
    defaults: dict[str, SqlValue]

    def used_params(self) -> set[str]:
        """The $names the statement uses (comments ignored)."""
        body = "\n".join(line.split("--", 1)[0] for line in self.text.splitlines())
        return set(_PARAM_USE.findall(body))


def load_sql(name_or_path: str | Path) -> SqlFile:
    """Read a queries/*.sql file (by name or path) and parse its header.

    Raises:
        QueryError: the file does not exist.
    """
    path: Path | Traversable = Path(name_or_path)
    if not path.is_file():
        path = shipped_sql(str(name_or_path))
    if not path.is_file():
        raise QueryError(None, None, str(name_or_path), "no such query file")
    text = path.read_text()
    params: dict[str, str] = {}
    defaults: dict[str, SqlValue] = {}
    for line in text.splitlines():
        if line.startswith("-- params:"):
            for name, sql_type, default in _PARAM_DECL.findall(line):
                params[name] = sql_type.upper()
                if default:
                    defaults[name] = _parse_default(default.strip(), sql_type.upper())
    return SqlFile(name=path.name, text=text, params=params, defaults=defaults)


def shipped_sql(name: str) -> Traversable:
    """The shipped query file called ``name`` (with or without .sql); it may not exist."""
    return QUERIES.joinpath(name if name.endswith(".sql") else f"{name}.sql")


def connect(
    store: Store | str | Path, database: str = ":memory:", blocks: Collection[str] | None = None
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection over the store's views: a local folder, or s3:// / gs:// through pyarrow.

    ``blocks`` (folder names such as ``block-384``) limits the compacted files to those comparability
    blocks, so a task scoring one block opens only its own parts (loose files are always read).

    Raises:
        StoreError: the store location cannot be opened.
        QueryError: views.sql failed (e.g. the folder is not a store).
    """
    store = store if isinstance(store, Store) else Store(store)
    con = duckdb.connect(database)
    # views.sql binds each loose table's read_parquet (union_by_name: every file's footer) once per view
    # that reads it, ~45 times; cached, a footer is parsed once: over 10k loose models 17 s and a 4.1 GB
    # peak instead of 39 s and 15 GB (DuckDB checks a cached file's modification time before reuse)
    con.execute("SET parquet_metadata_cache = true")
    # views.sql finds the tables under getvariable('store'); ad hoc SQL may use relative local paths
    con.execute("SET VARIABLE store = $p", {"p": store.location})
    manifest = store.manifest()
    for table in COMPACT_TABLES:
        rels = [r for r in manifest.files(table) if blocks is None or r.split("/")[-2] in blocks]
        if rels:
            where = [f"{store.location}/{rel}" for rel in rels]
            # SET VARIABLE takes no parameters in its name; the table names are our own constants
            con.execute(f"SET VARIABLE compacted_{table} = $p", {"p": where})
    if store.local:
        con.execute("SET file_search_path = $p", {"p": store.location})
    else:
        register(con, store.fs, store.scheme)
    for name in ("views", "number_candidates"):
        try:
            con.execute(load_sql(name).text)
        except duckdb.Error as exc:
            raise QueryError(None, None, f"{name}.sql", f"{store.uri}: {one_line(exc)}") from None
    return con


def use_candidates(con: duckdb.DuckDBPyConnection, candidates: Iterable[CandidatePair]) -> None:
    """Point the `candidates` view of this connection at the given pairs, numbered (the SQL files read them)."""
    con.register("_candidate_arrow", candidate_table(candidates))
    # A real table rather than the Arrow scan, so the optimizer sees its cardinality.
    con.execute("CREATE OR REPLACE TEMP TABLE _candidate_pairs AS SELECT * FROM _candidate_arrow")
    con.unregister("_candidate_arrow")
    con.execute("CREATE OR REPLACE VIEW candidates AS SELECT * FROM _candidate_pairs")
    number_candidates(con)


def number_candidates(con: duckdb.DuckDBPyConnection) -> None:
    """Give the current candidates and their models integer ids once, for every compute_*.sql of the batch."""
    # number_candidates.sql defines them as views over `candidates`; each view is then swapped for a
    # temp table of its rows, so the ids are computed once per batch rather than in every query.
    con.execute(load_sql("number_candidates").text)
    for view in ("candidate_models", "candidate_ids"):
        con.execute(f"CREATE OR REPLACE TEMP TABLE _{view} AS SELECT * FROM {view}")
        con.execute(f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM _{view}")


def candidate_pairs(con: duckdb.DuckDBPyConnection, params: SqlParams | None = None) -> list[CandidatePair]:
    """Candidate pairs of the hidden-size blocks: each step file's rows kept as the temp table it names,
    then compute_candidate_pairs.sql joins them. ``params`` go to the steps that declare them.

    Raises:
        QueryError: a step failed, or a parameter is declared by no step.
    """
    params = params or {}
    steps = {table: load_sql(f"compute_{table}") for table in CANDIDATE_STEPS}
    unknown = params.keys() - {name for sql in steps.values() for name in sql.params}
    if unknown:
        raise QueryError(
            None,
            None,
            "compute_candidate_pairs.sql",
            f"unknown parameters: {', '.join(sorted(unknown))}",
        )
    for table, sql in steps.items():
        create_temp_table(con, table, sql, {k: v for k, v in params.items() if k in sql.params})
    add_spanning_forest(con)
    return fetch_candidates(con, "compute_candidate_pairs")


def drop_candidate_steps(con: duckdb.DuckDBPyConnection) -> None:
    """Drop candidate_pairs()' temp tables once its rows are read: flag's connection lives on through the
    run, and at 100k Hub-shaped models lsh_pairs alone held 1.4 GB of DuckDB's memory."""
    for table in CANDIDATE_STEPS:
        con.execute(f"DROP TABLE IF EXISTS {table}")  # our own constant names


def fetch_candidates(
    con: duckdb.DuckDBPyConnection, name: str, params: SqlParams | None = None
) -> list[CandidatePair]:
    """A candidate query's rows as records (compute_candidate_pairs, compute_layout_candidate_pairs).

    Raises:
        QueryError: as fetch_rows.
    """
    table = fetch_table(con, name, params)
    return CandidatePair.from_columns({c: table[c].to_pylist() for c in table.column_names})


def add_spanning_forest(con: duckdb.DuckDBPyConnection) -> None:
    """Add to temp table lineage_pairs the edges of lsh_pairs' strongest spanning forest it lacks
    (pipeline/comparison/edges.py: why each model's nearest pairs alone can cut a family apart).

    The screened pairs stream out of DuckDB strongest first, as model numbers in key order (so ties break
    by key and a run is deterministic), FOREST_BATCH rows at a time: never a hub's pairs in Python.
    """
    [(models,)] = con.execute("SELECT count(*) FROM candidate_blocks").fetchall()
    forest = Forest(int(models))  # mid: 0 .. models - 1
    reader = con.sql(
        "SELECT a_mid, b_mid, hidden, screen_z FROM lsh_pairs ORDER BY screen_z DESC, a_mid, b_mid"
    ).to_arrow_reader(FOREST_BATCH)
    kept = []
    for batch in reader:
        a, b = batch.column(0).to_numpy(), batch.column(1).to_numpy()
        take = forest.add(a, b)
        if take.size:
            kept.append(batch.take(pa.array(take)))
    if kept:
        con.register("_forest_arrow", pa.Table.from_batches(kept))
        con.execute(
            "INSERT INTO lineage_pairs SELECT ia.repo_id, ia.revision, ib.repo_id, ib.revision, f.hidden, "
            "'lsh', f.screen_z FROM _forest_arrow AS f "
            "JOIN candidate_blocks AS ia ON ia.mid = f.a_mid JOIN candidate_blocks AS ib ON ib.mid = f.b_mid "
            "ANTI JOIN lineage_pairs AS p ON p.a_repo_id = ia.repo_id AND p.a_revision = ia.revision "
            "AND p.b_repo_id = ib.repo_id AND p.b_revision = ib.revision"
        )
        con.unregister("_forest_arrow")


def create_temp_table(
    con: duckdb.DuckDBPyConnection, table: str, sql: SqlFile, params: SqlParams | None = None
) -> None:
    """Keep a query file's rows as a temp table of this connection, for the next file to read.

    Raises:
        QueryError: as run_sql.
    """
    bound = _bind(sql, params)
    try:
        # the name is one of our own constants; the values stay named parameters
        con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS\n{sql.text}", bound or None)
    except duckdb.Error as exc:
        raise QueryError(None, None, sql.name, one_line(exc)) from None


def run_sql(
    con: duckdb.DuckDBPyConnection, sql: SqlFile, params: SqlParams | None = None
) -> duckdb.DuckDBPyRelation | None:
    """Run a query file with named parameters (never spliced into the text), defaults filled in.

    Raises:
        QueryError: a parameter is missing or unknown, or DuckDB rejects the statement.
    """
    bound = _bind(sql, params)
    try:
        return con.sql(sql.text, params=bound or None)
    except duckdb.Error as exc:
        raise QueryError(None, None, sql.name, one_line(exc)) from None


def fetch_rows(
    con: duckdb.DuckDBPyConnection, name: str, params: SqlParams | None = None
) -> list[dict[str, Any]]:
    """A shipped query's rows as dicts, for the jobs that score and map pairs in Python.

    Raises:
        QueryError: as run_sql, or the file holds no query that returns rows.
    """
    return list(fetch_table(con, name, params).to_pylist())


def fetch_table(con: duckdb.DuckDBPyConnection, name: str, params: SqlParams | None = None) -> pa.Table:
    """A shipped query's rows as an Arrow table.

    Raises:
        QueryError: as run_sql, or the file holds no query that returns rows.
    """
    rel = run_sql(con, load_sql(name), params)
    if rel is None:
        raise QueryError(None, None, f"{name}.sql", "returned no result set")
    try:
        # con.sql only plans a SELECT: errors reading the files (a corrupt part) surface here
        return rel.to_arrow_table()
    except duckdb.Error as exc:
        raise QueryError(None, None, f"{name}.sql", one_line(exc)) from None


def _bind(sql: SqlFile, params: SqlParams | None) -> dict[str, SqlValue]:
    """The values of the $names a file uses, defaults filled in.

    Raises:
        QueryError: a parameter is missing or unknown.
    """
    given = {**sql.defaults, **(params or {})}
    used = sql.used_params()
    missing = used - given.keys()
    if missing:
        raise QueryError(None, None, sql.name, f"missing parameters: {', '.join(sorted(missing))}")
    unknown = (params or {}).keys() - used
    if unknown:
        raise QueryError(None, None, sql.name, f"unknown parameters: {', '.join(sorted(unknown))}")
    return {k: v for k, v in given.items() if k in used}


def coerce_param(sql: SqlFile, name: str, raw: str) -> SqlValue:
    """Convert a command-line value to the declared type of a parameter."""
    return _parse_default(raw, sql.params.get(name, "VARCHAR"))


def _parse_default(raw: str, sql_type: str) -> SqlValue:
    raw = raw.strip().strip("'\"")
    if sql_type == "BOOLEAN":
        return raw.lower() in ("1", "true", "yes")
    cast = _CASTS.get(sql_type)
    return cast(raw) if cast else raw


# Look-ups the commands share (compare, export, report, families, the whole-matrix tests), so no
# job writes SQL text of its own. Each reads only the views of views.sql.


def model_row(con: duckdb.DuckDBPyConnection, key: tuple[str, str]) -> dict[str, Any] | None:
    """The stored models row of one revision (every column the store has), or None."""
    # SELECT *: a store written before a column was added (models.local_dir) has no such column
    rel = con.sql(
        "SELECT * FROM models WHERE repo_id = $r AND revision = $v", params={"r": key[0], "v": key[1]}
    )
    rows = rel.to_arrow_table().to_pylist()
    return rows[0] if rows else None


def model_layout(con: duckdb.DuckDBPyConnection, key: tuple[str, str]) -> str | None:
    """The tensor layout of a model of unknown architecture (the layouts view), None for a known one."""
    got = con.sql(
        "SELECT layout FROM layouts WHERE repo_id = $r AND revision = $v", params={"r": key[0], "v": key[1]}
    ).fetchall()
    return str(got[0][0]) if got else None


@dataclass(frozen=True)
class StoredMatrix:
    """Where one layer's weight matrix of a stored model lies: its tensor, file, layout and shape."""

    layer: int
    name: str
    file: str
    transposed: bool  # stored [in, out] instead of PyTorch Linear's [out, in]
    shape: tuple[int, ...]


def role_matrices(con: duckdb.DuckDBPyConnection, key: tuple[str, str], role: str) -> list[StoredMatrix]:
    """The dense (non-expert) per-layer weight matrices of one role, by layer."""
    rows = con.sql(
        "SELECT layer, name, file, transposed, shape FROM tensors WHERE repo_id = $r AND revision = $v "
        "AND role = $role AND kind = 'weight' AND expert IS NULL AND layer IS NOT NULL ORDER BY layer",
        params={"r": key[0], "v": key[1], "role": role},
    ).fetchall()
    return [
        StoredMatrix(int(layer), name, file, bool(tr), tuple(shape)) for layer, name, file, tr, shape in rows
    ]


def q_profile(con: duckdb.DuckDBPyConnection, repo_id: str) -> list[tuple[float, float]]:
    """(layer, std of the attention Q projection) of one model, shallowest layer first."""
    rows = con.sql(
        "SELECT layer, avg(std) FROM std_profiles WHERE repo_id = $r AND role = 'attn_q' GROUP BY layer "
        "ORDER BY layer",
        params={"r": repo_id},
    ).fetchall()
    return [(float(x), float(y)) for x, y in rows]


def scored_pairs(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Every row of the last flag run's `pairs` table."""
    return list(con.sql("FROM pairs").to_arrow_table().to_pylist())


def scored_pair_keys(con: duckdb.DuckDBPyConnection) -> list[CandidatePair]:
    """The candidates (keys, hidden size, how proposed) of the pairs the last flag run scored."""
    rel = con.sql("SELECT a_repo_id, a_revision, b_repo_id, b_revision, hidden, via FROM pairs")
    return [CandidatePair.from_row(r) for r in rel.to_arrow_table().to_pylist()]


def flagged_pairs(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """The flagged pairs of the last flag run, most significant first (the family trees' links)."""
    # a pairs table written before edges had a direction's evidence (issue 22) reads as unknown
    has = {row[0] for row in con.sql("DESCRIBE pairs").fetchall()}
    evidence = "parent_evidence" if "parent_evidence" in has else "NULL AS parent_evidence"
    rel = con.sql(
        f"SELECT a_repo_id, b_repo_id, verdict, reason, declared, score, parent, {evidence} "
        "FROM pairs WHERE flagged ORDER BY score DESC"
    )
    return list(rel.to_arrow_table().to_pylist())


def stored_models(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Every committed models row."""
    return list(con.sql("FROM models").to_arrow_table().to_pylist())


def failure_count(con: duckdb.DuckDBPyConnection) -> int:
    """How many model revisions have a recorded failure."""
    return sum(int(r["models"]) for r in fetch_rows(con, "count_failures"))
