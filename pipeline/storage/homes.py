"""Homes: the tensors rows of flag's candidate models, rewritten once so each batch of pairs reads only its own.

Every signal query joins its batch of candidate pairs to `tensors`. Over the store's own files that is a
scan of the whole table per batch: at 100k synthetic models each sketch query paid ~5 s of scan whatever
its batch held, and at 1M models (36 batches of a 42 GB table) the scans alone would grow with the
square of the store. Candidate pairs are local, though: those chosen for similarity join models of one
family. So flag groups the candidate models by connected component of those pairs, packs whole
components into homes of at most HOME_MODELS models (a larger component is cut), and writes each home's
tensors rows to its own Parquet file in one pass over the store. A unit is the pairs whose two models
share a home, and reads that file only; the pairs whose models live apart (the random background
sample, a cut component) read the CROSS home, where their models are written a second time. The work
per pair no longer depends on the store's size.

Homes go to a local temporary folder, for a local store or an object store. On a Ray cluster they go
under a local store, so that every node can read them; an object store on a cluster gets none, since
DuckDB cannot write there without its network extension, and its batches read the store's own files.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hubscan.pipeline.comparison.candidates import CandidatePair
from hubscan.pipeline.errors import QueryError, one_line
from hubscan.pipeline.keys import ModelKey
from hubscan.pipeline.storage.parquet import Store

# Models per home: 10,000 synthetic 2-6-layer models are ~0.4 GB of tensors rows on disk, well inside a
# task's memory; larger homes cut fewer components.
HOME_MODELS = 10_000
# The column the homes query tags rows with, and the files' prefix: <folder>/home-<n>.parquet
HOME_COLUMN = "home"
# Rows per Arrow batch from DuckDB: each is split by home and appended to the homes' files.
BATCH_ROWS = 100_000
# The home of the pairs whose two models live in different homes: the background sample (random pairs
# of a block, ~2,000 per block) and the pairs of a component too large for one home. Their models are
# written there a second time, so such a pair reads one home like any other rather than two.
CROSS = -1
# Where a cluster's flag writes its homes: under the store, which every node of a cluster reads (a local
# path there is shared storage); `hubscan check` does not read it. Elsewhere homes go to TMPDIR.
SHARED_FOLDER = ".flag-homes"
# Pairs that do not join their models' components: a random sample would tie a whole block into one.
UNJOINED_VIA = frozenset({"background"})


@dataclass(frozen=True)
class Unit:
    """The candidate pairs whose two models both live in ``home`` (CROSS: in different homes)."""

    home: int
    pairs: list[CandidatePair] = field(default_factory=list)


def plan_homes(pairs: Iterable[CandidatePair], size: int = HOME_MODELS) -> dict[ModelKey, int]:
    """Each candidate model's home: the connected components of the pairs chosen for similarity, packed
    whole in order (a component larger than a home is cut into pieces)."""
    parent: dict[ModelKey, ModelKey] = {}

    def root(key: ModelKey) -> ModelKey:
        while parent.setdefault(key, key) != key:
            parent[key] = parent[parent[key]]  # path halving keeps the trees flat
            key = parent[key]
        return key

    for p in pairs:
        a, b = root(p.a), root(p.b)
        if a != b and p.via not in UNJOINED_VIA:
            parent[a] = b
    components: dict[ModelKey, list[ModelKey]] = {}
    for key in sorted(parent):
        components.setdefault(root(key), []).append(key)
    home_of: dict[ModelKey, int] = {}
    home, used = 0, 0
    for members in components.values():
        if used and used + len(members) > size:
            home, used = home + 1, 0
        for key in members:
            if used == size:  # only a component larger than a home gets here
                home, used = home + 1, 0
            home_of[key] = home
            used += 1
    return home_of


def home_of_pair(pair: CandidatePair, home_of: Mapping[ModelKey, int]) -> int:
    """The home a pair is scored from: its models' own, or CROSS when they live apart."""
    ha, hb = home_of[pair.a], home_of[pair.b]
    return ha if ha == hb else CROSS


def units(pairs: Iterable[CandidatePair], home_of: Mapping[ModelKey, int]) -> list[Unit]:
    """The pairs grouped by the home they are scored from, in the order the homes first appear."""
    by_home: dict[int, Unit] = {}
    for p in pairs:
        home = home_of_pair(p, home_of)
        by_home.setdefault(home, Unit(home)).pairs.append(p)
    return list(by_home.values())


def write_homes(
    con: duckdb.DuckDBPyConnection, home_of: Mapping[ModelKey, int], cross: Iterable[ModelKey], folder: Path
) -> None:
    """Every home's tensors rows (committed models only, through the `tensors` view) in one pass; the
    ``cross`` models' rows a second time, in the CROSS home.

    Raises:
        QueryError: the store's tensors could not be read or the homes written.
    """
    keys = [*home_of, *cross]
    table = pa.table(
        {
            "repo_id": pa.array([k[0] for k in keys], pa.string()),
            "revision": pa.array([k[1] for k in keys], pa.string()),
            HOME_COLUMN: pa.array([*home_of.values(), *[CROSS] * (len(keys) - len(home_of))], pa.int32()),
        }
    )
    folder.mkdir(parents=True, exist_ok=True)
    con.register("_home_of", table)
    # A home is a set of models: its rows need no order, and without one DuckDB produces them on every
    # core (100k synthetic models: 16.7 s, against 28 s in order and 40-46 s through COPY ... PARTITION_BY).
    con.execute("SET preserve_insertion_order = false")
    writers: dict[int, pq.ParquetWriter] = {}
    try:
        rows = con.sql(
            "SELECT t.*, h.home FROM tensors AS t JOIN _home_of AS h USING (repo_id, revision)"
        ).to_arrow_reader(BATCH_ROWS)
        for batch in rows:
            _write_batch(batch, writers, folder)
    except (duckdb.Error, OSError, pa.ArrowException) as exc:
        raise QueryError(None, None, "tensors", f"writing flag's homes: {one_line(exc)}") from None
    finally:
        for writer in writers.values():
            writer.close()
        con.execute("RESET preserve_insertion_order")
        con.unregister("_home_of")


def _write_batch(batch: pa.RecordBatch, writers: dict[int, pq.ParquetWriter], folder: Path) -> None:
    """A batch's rows appended to the file of each home they belong to."""
    homes = batch.column(HOME_COLUMN)
    body = batch.drop_columns([HOME_COLUMN])
    for home in pc.unique(homes).to_pylist():
        part = body.filter(pc.equal(homes, home))
        if home not in writers:
            writers[home] = pq.ParquetWriter(folder / _home_file(home), part.schema, compression="snappy")
        writers[home].write_batch(part)


def _home_file(home: int) -> str:
    return f"{HOME_COLUMN}-{home}.parquet"


@dataclass(frozen=True)
class Homes:
    """One flag run's written homes: where each candidate model lives, and the files a unit reads."""

    folder: Path
    home_of: Mapping[ModelKey, int]
    # An empty store beside the homes, which a unit's connection opens instead of the real one: its
    # queries read only `tensors` (the homes) and the candidates, while opening a store binds views over
    # all its loose files (39 s and a 15 GB peak over 10k loose models). Its empty tensors file is read
    # beside the homes, so every unit binds the full schema.
    empty_store: Store

    def units(self, pairs: Iterable[CandidatePair]) -> list[Unit]:
        """These pairs grouped by the home they are scored from."""
        return units(pairs, self.home_of)

    def files(self, unit: Unit) -> list[str]:
        """The files a unit's queries read (a home with no tensors row has no folder and is skipped)."""
        empty = f"{self.empty_store.location}/tensors/_empty.parquet"
        found = self.folder / _home_file(unit.home)
        return [empty, str(found)] if found.is_file() else [empty]


@contextmanager
def pair_homes(
    con: duckdb.DuckDBPyConnection,
    store: Store,
    pairs: Sequence[CandidatePair],
    size: int | None = None,
    shared: bool = False,
) -> Iterator[Homes | None]:
    """The homes of these candidate pairs, written from ``con``'s `tensors` view into a folder removed
    however the run ends: a local temporary one, or with ``shared`` (Ray tasks on a cluster's other
    nodes read them) one under the store. None for an object store on a cluster: DuckDB cannot write
    there without its network extension, so its batches read the store's own files.

    Raises:
        QueryError: the store's tensors could not be read or the homes written.
    """
    if not pairs or (shared and not store.local):
        yield None
        return
    if shared:
        (store.root / SHARED_FOLDER).mkdir(exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="run-", dir=store.root / SHARED_FOLDER))
    else:
        folder = Path(tempfile.mkdtemp(prefix="hubscan-homes-"))
    try:
        home_of = plan_homes(pairs, size or HOME_MODELS)
        cross = {k for p in pairs if home_of_pair(p, home_of) == CROSS for k in (p.a, p.b)}
        write_homes(con, home_of, sorted(cross), folder / "homes")
        yield Homes(folder / "homes", home_of, Store(folder / "empty").init())
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def read_homes(con: duckdb.DuckDBPyConnection, files: Sequence[str]) -> None:
    """Point this connection's `tensors` view at these files: every query it runs then reads only them."""
    listed = ", ".join(f"'{_quoted(p)}'" for p in files)
    # a view body takes no parameters; the paths are the store's and the temporary folder's own
    con.execute(
        f"CREATE OR REPLACE VIEW tensors AS SELECT * FROM read_parquet([{listed}], union_by_name = true)"
    )


def _quoted(path: Path | str) -> str:
    return str(path).replace("'", "''")
