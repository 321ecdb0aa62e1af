"""The DuckDB warehouse (`<data dir>/ei.duckdb`, schema main): contract tables and comparison views.

Loading is incremental and set-based: DuckDB reads the new lake files itself (`read_parquet`,
file lists passed as parameters, never pasted into SQL). A snapshot belongs to one learn block and
is keyed by (project_id, learn_id, snapshot_id): two blocks with identical responses share a
snapshot id and each keep their rows. A snapshot is new when its `snapshots` file is committed in
the lake and its key is not in `main.snapshots`. New snapshots are loaded in transactions of about
BATCH_BYTES of files each (a reader sees whole snapshots, never part of one, and memory stays
bounded however many are new); the run logs follow in one more.

A group that fails on its data (a file that cannot be read, a value DuckDB refuses) is loaded
again snapshot by snapshot: every other snapshot of it loads, and each one that fails alone is
refused: named in the LoadResult, its fetch_log rows given the reason, its lake files removed and
its raw archive folder marked, so no refresh stores those bytes again (`RawArchive.unloadable`).
Errors that are not the data's (I/O, memory, a conflicting writer) fail the load as before.
Run logs (fetch_log, discoveries) are loaded file by file, each file once. For each new snapshot
the per-snapshot tables (prediction agreement and disagreements, anomaly score statistics) are
filled from its rows in the same transaction, so the views over them never join the predictions:
from the rows the load was handed in memory, if it was, so that a DuckLake load never fetches
back what earlier loads wrote.

DuckDB allows one writing process per file. A second writer waits up to `lock_timeout` seconds
for the lock, then fails with WarehouseBusyError. Readers connect read-only.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from importlib import resources

import duckdb
import pyarrow as pa
import pyarrow.fs as pafs

from ei_assets.errors import EiAssetsError
from ei_assets.progress import progress
from ei_assets.schema import (
    COMMIT_TABLE,
    LOG_TABLES,
    PER_SNAPSHOT_TABLES,
    SNAPSHOT_TABLES,
    TABLES,
    VIEWS,
    Relation,
)
from ei_assets.storage.files import uri
from ei_assets.storage.lake import Lake
from ei_assets.storage.raw_archive import RawArchive
from ei_assets.warehouse import ducklake, embedded
from ei_assets.warehouse.ducklake import DuckLake
from ei_assets.warehouse.queries import named_sql

__all__ = ["DATABASE_FILE", "LoadFailure", "LoadResult", "ReadOnlyQueryError", "Reader", "Thresholds",
           "Warehouse", "WarehouseBusyError"]

log = logging.getLogger(__name__)

DATABASE_FILE = "ei.duckdb"
LOADED_FILES = "_loaded_files"  # bookkeeping: run log files already loaded
LOAD_LOCK = "_load_lock"  # one row every load updates first: concurrent loads conflict on it
SCHEMA_TABLE = "_schema"  # the digest of the schema last created
WAREHOUSE_DIR = "warehouse"  # a DuckLake's data files, under the data dir
LOAD_ATTEMPTS = 8  # conflicts in a row with no other load's snapshots committed between them
BATCH_BYTES = 16 << 20  # lake files per load transaction: bounds what a load holds in memory
# A load's DuckDB keeps at most LOAD_MEMORY (by warehouse mode) in its buffers and spills the rest
# (beside the file, or to a temporary dir for a DuckLake), and inserts rows in any order (no table
# has one; keeping it holds more in memory, and is slower under the cap). The cap trades some load
# time for a peak that no longer grows with the number of new snapshots (docs/performance.md). A
# DuckLake gets more: its S3 reads and Parquet writes thrash under the embedded cap. A group that
# cannot fit (a very large snapshot; DuckLake's Parquet writer does not spill) loads without the
# cap. Queries keep DuckDB's defaults.
LOAD_MEMORY = {"duckdb": "96MB", "ducklake": "256MB"}
# A DuckLake's data files: zstd, as the lake's (DuckLake's default, snappy, writes more bytes to
# the object store, and a fan-out's loads are bound by those writes; docs/scale.md), in Parquet's
# version 2 encodings (delta, byte stream split), which DuckDB writes with less CPU than version
# 1's plain pages, score grids most of all, and smaller; every DuckDB 1.5 client reads them.
DUCKLAKE_OPTIONS_SQL = (f"CALL {ducklake.CATALOG}.set_option('parquet_compression', 'zstd'); "
                        f"CALL {ducklake.CATALOG}.set_option('parquet_version', 2)")
REDERIVE_GROUP = 32  # snapshots per statement when the per-snapshot tables are filled anew
# one INSERT per per-snapshot table, for the keys given, reading the tables named in braces
DERIVED_SQL = named_sql("sql/derived.sql")
if set(DERIVED_SQL) != set(PER_SNAPSHOT_TABLES):
    raise AssertionError(f"sql/derived.sql must fill exactly {sorted(PER_SNAPSHOT_TABLES)}")
# What a load derives from a group (the per-snapshot tables, a report's class names) is read from
# the group's rows when they were handed over in memory: read from the warehouse's tables, a
# DuckLake fetches back from the object store every file of a table that its statistics do not
# rule out, and there are more with every load. Read from lake files, they are read from the
# warehouse's tables (the embedded file's own storage; and old lake files may lack a column).
DERIVED_FROM = ("predictions", "thresholds")  # the tables derived.sql reads, as {name}
CLASS_NAMES_FROM = "snapshots"  # the classification report's class names

LEARN_BLOCKS_SQL = """
INSERT INTO learn_blocks BY NAME
WITH latest AS (
    SELECT *, row_number() OVER (PARTITION BY project_id, learn_id ORDER BY seen_at DESC) AS rank_
    FROM discoveries
), seen AS (
    SELECT project_id, learn_id, min(seen_at) AS first_seen_at, max(seen_at) AS last_seen_at
    FROM discoveries GROUP BY project_id, learn_id
), runs AS (
    SELECT project_id, max(seen_at) AS last_run FROM discoveries GROUP BY project_id
)
SELECT l.project_id, l.project_name, l.impulse_id, l.impulse_name, l.learn_id, l.block_type,
       l.block_name, l.block_title, s.first_seen_at, s.last_seen_at,
       s.last_seen_at = r.last_run AS is_present
FROM latest l
JOIN seen s USING (project_id, learn_id)
JOIN runs r USING (project_id)
WHERE l.rank_ = 1
"""

# Only rows whose times move: in a DuckLake an updated row is written again (and the old one
# marked deleted), so updating every snapshot at every load would rewrite the table each time.
FETCH_TIMES_SQL = """
UPDATE snapshots SET first_fetched_at = least(snapshots.first_fetched_at, f.first_at),
                     last_fetched_at = greatest(snapshots.last_fetched_at, f.last_at)
FROM (SELECT project_id, learn_id, snapshot_id, min(fetched_at) AS first_at,
             max(fetched_at) AS last_at
      FROM fetch_log WHERE ok AND snapshot_id IS NOT NULL AND coalesce(outcome, 'fetched') = 'fetched'
      GROUP BY ALL) f
WHERE snapshots.project_id = f.project_id AND snapshots.learn_id = f.learn_id
  AND snapshots.snapshot_id = f.snapshot_id
  AND (f.first_at < snapshots.first_fetched_at OR f.last_at > snapshots.last_fetched_at
       OR snapshots.first_fetched_at IS NULL OR snapshots.last_fetched_at IS NULL)
"""
# A new snapshot's fetch times start at its own fetch (FETCH_TIMES_SQL widens them), set as it is
# inserted rather than by an UPDATE after it (which a DuckLake would write as a second copy).
SNAPSHOTS_SQL = """
INSERT INTO snapshots BY NAME
SELECT *, fetched_at AS first_fetched_at, fetched_at AS last_fetched_at FROM {rows}
"""

# A report key that is a class index names the class at that position of the snapshot's class
# names (contract section 4): at load from the lake's rows, and once for rows loaded before.
CLASS_NAME_SQL = """
CASE WHEN regexp_full_match(r.class, '[0-9]{1,9}')
     THEN s.class_names[TRY_CAST(r.class AS INTEGER) + 1] END
"""
CLASSIFICATION_REPORT_SQL = f"""
INSERT INTO classification_report BY NAME
SELECT r.*, {CLASS_NAME_SQL} AS class_name
FROM {{rows}} r
LEFT JOIN {{snapshots}} s
  ON s.project_id = r.project_id AND s.learn_id = r.learn_id AND s.snapshot_id = r.snapshot_id
"""
# Columns added since a warehouse may have been made: its rows get them once, when each is added.
BACKFILLS = {
    ("classification_report", "class_name"): f"""
        UPDATE classification_report AS r SET class_name = {CLASS_NAME_SQL}
        FROM snapshots s
        WHERE s.project_id = r.project_id AND s.learn_id = r.learn_id
          AND s.snapshot_id = r.snapshot_id""",
    ("fetch_log", "outcome"): "UPDATE fetch_log SET outcome = 'fetched' WHERE outcome IS NULL",
}
# What a group's load may fail on because of one snapshot's data; anything else (I/O, memory, a
# conflicting writer, a lost connection) is not the data's fault and fails the load as a whole.
DATA_ERRORS: tuple[type[duckdb.Error], ...] = (
    duckdb.DataError, duckdb.IntegrityError, duckdb.InvalidInputException, duckdb.BinderException,
    duckdb.TypeMismatchException, duckdb.NotImplementedException,
)
Key = tuple[int, int, str]  # (project_id, learn_id, snapshot_id): one snapshot of one learn block
# snapshots to load: each with its rows in memory by table, or None (read from its lake files)
LoadSnapshots = Sequence[tuple[Key, Mapping[str, pa.Table] | None]]


class WarehouseBusyError(EiAssetsError, RuntimeError):
    """Another process holds the warehouse's write lock for longer than we wait."""


class ReadOnlyQueryError(EiAssetsError, ValueError):
    """`ei-assets sql` takes one SELECT statement; anything that could write is refused."""


@dataclass(frozen=True)
class Thresholds:
    """When model_type_trend flags a regression against the previous snapshot."""

    accuracy_drop: float = 0.01  # accuracy fell by more than this (absolute)
    resource_rise: float = 0.10  # latency, RAM or ROM rose by more than this (relative)


@dataclass(frozen=True)
class LoadFailure:
    """A snapshot the warehouse refused, and why (DuckDB's words)."""

    project_id: int
    learn_id: int
    snapshot_id: str
    reason: str

    def describe(self) -> str:
        return (f"project {self.project_id}, learn block {self.learn_id}: snapshot {self.snapshot_id} "
                f"could not be loaded into the warehouse: {self.reason}")


@dataclass
class LoadResult:
    """What a load did: snapshots and rows added, run log files read, snapshots refused."""

    new_snapshots: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    log_files: int = 0
    failed: list[LoadFailure] = field(default_factory=list)

    def add(self, other: LoadResult) -> None:
        """Count in what another (committed) transaction of the load did."""
        self.new_snapshots += other.new_snapshots
        self.log_files += other.log_files
        self.failed += other.failed
        for table, n in other.rows.items():
            self.rows[table] = self.rows.get(table, 0) + n


class Warehouse:
    """The warehouse of one data dir (the embedded DuckDB file, or a DuckLake): schema, load, readers."""

    def __init__(
        self,
        data_dir: str,
        lake: Lake,
        raw: RawArchive,
        thresholds: Thresholds | None = None,
        lock_timeout: float = 60.0,
        ducklake: DuckLake | None = None,
    ) -> None:
        self.path = f"{data_dir.rstrip('/')}/{DATABASE_FILE}"  # the embedded mode's file
        self.ducklake = ducklake
        self.lake = lake
        self.raw = raw
        self.thresholds = thresholds or Thresholds()
        self.lock_timeout = lock_timeout

    # ---- connections ------------------------------------------------------------------------

    @property
    def location(self) -> str:
        """Where the warehouse is, for people (a DuckLake catalog is shown without secrets)."""
        return self.path if self.ducklake is None else self.ducklake.describe()

    def exists(self) -> bool:
        """Whether a refresh has created the warehouse yet."""
        if self.ducklake is None:
            return os.path.exists(self.path)
        with self.connect(read_only=True) as con:
            found = con.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = "
                                "current_database() AND table_name = ?", [COMMIT_TABLE]).fetchone()
        return bool(found and found[0])

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection. The embedded file waits up to lock_timeout for another process's write
        lock; a DuckLake takes many writers at once and serializes their loads at commit."""
        if self.ducklake is not None:
            connection = ducklake.connect(self.ducklake, read_only)
            try:
                yield connection
            finally:
                connection.close()
            return
        deadline = time.monotonic() + self.lock_timeout
        waited = False
        while True:
            try:
                with ExitStack() as attempt:
                    connection = attempt.enter_context(embedded.connection(self.path, read_only))
                    connection.execute(ducklake.CONNECTION_SETTINGS)
                    opened = attempt.pop_all()
                break
            except duckdb.Error as exc:
                text = str(exc).lower()
                if "unique file handle conflict" in text:
                    # another DuckDB instance of this process has the file (a writer's while this
                    # is a reader, or one closing in another thread at this moment); DuckDB 1.x
                    # raises a BinderException, 2.x a ResourceInUseException
                    if time.monotonic() >= deadline:
                        raise
                    time.sleep(0.01)
                    continue
                if not isinstance(exc, duckdb.IOException) or "lock" not in text:
                    raise
                if not waited:
                    progress.info(f"waiting for the warehouse {self.path}: another refresh or "
                                  f"rebuild is writing it (at most {self.lock_timeout:.0f}s)")
                    waited = True
                if time.monotonic() >= deadline:
                    raise WarehouseBusyError(
                        f"the warehouse {self.path} is locked by another process "
                        f"(waited {self.lock_timeout:.0f}s): another refresh or rebuild is "
                        "writing. Wait for it to finish, then run this again."
                    ) from None
                time.sleep(0.2)
        with opened:
            yield connection

    # ---- schema -----------------------------------------------------------------------------

    def ensure_schema(self, con: duckdb.DuckDBPyConnection) -> None:
        """Every table of the registry (with columns added since it was created), the views, and
        every description as a comment; skipped when the schema recorded is this one already."""
        version = self._schema_version()
        con.execute(f"CREATE TABLE IF NOT EXISTS {SCHEMA_TABLE} (version VARCHAR)")
        if con.execute(f"SELECT count(*) FROM {SCHEMA_TABLE} WHERE version = ?",
                       [version]).fetchone() == (1,):
            return
        con.begin()  # one commit for all of it (in a DuckLake, each is a catalog write)
        have = {(t, c) for t, c in con.execute(
            "SELECT table_name, column_name FROM duckdb_columns() "
            "WHERE database_name = current_database() AND schema_name = 'main'"
        ).fetchall()}
        views = {v for (v,) in con.execute(
            "SELECT view_name FROM duckdb_views() WHERE NOT internal "
            "AND database_name = current_database() AND schema_name = 'main'").fetchall()}
        for table in TABLES.values():
            if table.name in views:  # a view in an older version (prediction_agreement)
                con.execute(f'DROP VIEW "{table.name}"')
            con.execute(create_table_sql(table))
            for column in table.all_columns:
                if (table.name, column.name) not in have:
                    con.execute(f'ALTER TABLE "{table.name}" ADD COLUMN IF NOT EXISTS '
                                f'"{column.name}" {column.sql_type}')
        for (table_name, column_name), backfill in BACKFILLS.items():
            if (table_name, column_name) not in have and (table_name, "project_id") in have:
                con.execute(backfill)
        con.execute(f"CREATE TABLE IF NOT EXISTS {LOADED_FILES} (path VARCHAR, "
                    "loaded_at TIMESTAMPTZ DEFAULT current_timestamp)")
        con.execute(f"CREATE TABLE IF NOT EXISTS {LOAD_LOCK} (loads BIGINT)")
        if con.execute(f"SELECT count(*) FROM {LOAD_LOCK}").fetchone() == (0,):
            con.execute(f"INSERT INTO {LOAD_LOCK} VALUES (0)")
        con.execute(self._views_sql())
        if self.ducklake is not None:  # kept in its catalog: every writer's files are zstd
            con.execute(DUCKLAKE_OPTIONS_SQL)
        # their SQL is part of the schema: filled again, for every snapshot, when it changes
        for name in PER_SNAPSHOT_TABLES:
            con.execute(f'DELETE FROM "{name}"')
        every = _keys(con, "SELECT project_id, learn_id, snapshot_id FROM snapshots")
        for start in range(0, len(every), REDERIVE_GROUP):
            self._derive(con, every[start:start + REDERIVE_GROUP])
        for relation in (*TABLES.values(), *VIEWS.values()):
            # DuckLake keeps comments on views but not on their columns
            con.execute(comments_sql(relation, columns=self.ducklake is None or not relation.is_view))
        con.execute(f"DELETE FROM {SCHEMA_TABLE}")
        con.execute(f"INSERT INTO {SCHEMA_TABLE} VALUES (?)", [version])
        con.commit()

    def _schema_version(self) -> str:
        """A digest of everything ensure_schema creates: a new column, view or threshold changes it."""
        parts = [create_table_sql(t) + comments_sql(t) for t in TABLES.values()]
        parts += [comments_sql(v) for v in VIEWS.values()] + [self._views_sql(), *DERIVED_SQL.values()]
        if self.ducklake is not None:
            parts.append(DUCKLAKE_OPTIONS_SQL)
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]

    def _views_sql(self) -> str:
        text = resources.files("ei_assets.warehouse").joinpath("sql/views.sql").read_text()
        return text.replace("{accuracy_drop}", repr(float(self.thresholds.accuracy_drop))).replace(
            "{resource_rise}", repr(float(self.thresholds.resource_rise)))

    # ---- loading ----------------------------------------------------------------------------

    def load(self) -> LoadResult:
        """Bring the warehouse up to date with the lake and the run logs.
        Loads by other processes at the same moment: the embedded file lets one write at a time;
        in a DuckLake every load transaction first updates the one-row `_load_lock`, so of two
        concurrent ones one fails to commit, and the load goes on from what the other loaded."""
        # listed before the load's turn: a snapshot committed after the listing is loaded by
        # whoever loads next, as it would be had it come a moment later. Only the snapshots'
        # commit files: the other tables are listed once a new snapshot is found, and after a
        # refresh that loaded what it stored there is none (on object storage, a listing is a
        # request per table and per thousand files).
        listing = _Listing(
            committed=self.lake.file_infos(COMMIT_TABLE),
            logs={table: [self._uri(path) for path in self.raw.log_files(table)] for table in LOG_TABLES})
        with _LoadConnection(self, keep=False) as connection:
            return self._retrying(lambda con, report: self._load_all(con, report, listing), None,
                                  connection)

    @contextmanager
    def loader(self) -> Iterator[Callable[[LoadSnapshots, int | None], LoadResult]]:
        """`load_tables` for many loads in a row (a refresh's groups): a DuckLake's load
        connection stays open between them (opening one loads three extensions and attaches the
        catalog, which costs more than loading a group), until the end or a load that fails.
        The embedded file's connection is opened for each: between loads, other processes may
        read it."""
        with _LoadConnection(self, keep=self.ducklake is not None) as kept:
            yield lambda snapshots, threads: self._load_tables(snapshots, threads, kept)

    def load_tables(self, snapshots: LoadSnapshots, threads: int | None = None) -> LoadResult:
        """Load these snapshots, each committed in the lake, from their rows in memory (exactly
        the rows of its lake files, by table) or, given None, from its lake files; in groups as
        `load` does and with its isolation of a snapshot that fails alone, but not the run logs:
        a refresh loads what it stored while it fetches the next blocks, without reading the lake
        back. A snapshot already in the warehouse is left out. `threads`: DuckDB's, if not every
        core (a load beside other work)."""
        with self.loader() as load:
            return load(snapshots, threads)

    def _load_tables(self, snapshots: LoadSnapshots, threads: int | None,
                     connection: _LoadConnection) -> LoadResult:
        sources = self._files_of([key for key, tables in snapshots if tables is None])
        for key, tables in snapshots:
            for table, rows in (tables or {}).items():
                sources[table][key] = rows
        return self._retrying(lambda con, report: self._load_sources(con, report, sources), threads,
                              connection)

    def _files_of(self, keys: Sequence[Key]) -> Sources:
        """The lake files of these snapshots, by table, those that exist (a table without rows
        for a snapshot has no file), found by their names without listing the lake."""
        paths = [(table, key, self.lake.file(table, *key)) for table in SNAPSHOT_TABLES for key in keys]
        infos = self.lake.filesystem.get_file_info([path for _, _, path in paths]) if paths else []
        files: Sources = {table: {} for table in SNAPSHOT_TABLES}
        for (table, key, _), info in zip(paths, infos, strict=True):
            if info.type == pafs.FileType.File:
                files[table][key] = info
        return files

    def _retrying(self, step: Callable[[duckdb.DuckDBPyConnection, LoadResult], None],
                  threads: int | None, connection: _LoadConnection) -> LoadResult:
        """Run a load step on a load connection until it completes: without the memory cap once a
        group does not fit in it, and again after a concurrent DuckLake load committed first. The
        connection is opened before the load's turn is taken: opening it is slow (a DuckLake's
        extensions and catalog), and others' loads need not wait for it."""
        connection.open()
        with self._load_turn():
            return self._attempts(step, threads, connection)

    @contextmanager
    def _load_turn(self) -> Iterator[None]:
        """A DuckLake's loads take turns (ducklake.load_turn); the embedded file's lock does the
        same for its writers."""
        if self.ducklake is None:
            yield
            return

        def waiting() -> None:
            progress.info(f"waiting for another load of {self.location} "
                          f"(at most {self.lock_timeout:.0f}s)")

        try:
            with ducklake.load_turn(self.ducklake, self.lock_timeout, waiting):
                yield
        except ducklake.LoadTurnTimeout as exc:
            raise WarehouseBusyError(
                f"another load of {self.location} went on for longer than we wait ({exc}): "
                "another refresh or rebuild is loading it. Wait for it to finish, then run this "
                "again.") from None

    def _attempts(self, step: Callable[[duckdb.DuckDBPyConnection, LoadResult], None],
                  threads: int | None, connection: _LoadConnection) -> LoadResult:
        report = LoadResult()  # what committed, over every attempt
        capped = True  # to LOAD_MEMORY, until a group does not fit in it
        fruitless = 0  # conflicts after which no other load had committed a snapshot
        there = -1  # snapshots in the warehouse when the last attempt began
        while True:
            before = there
            try:
                with connection.use(capped, threads) as con:
                    there = _count(con, "snapshots")
                    step(con, report)
                log.info("warehouse: %d new snapshots, rows %s", report.new_snapshots, report.rows)
                return report
            except duckdb.OutOfMemoryException:
                if not capped:
                    raise
                log.info("warehouse: a load group needs more than %s of memory; loading the rest "
                         "without that cap", self._load_memory)
                capped = False
            except duckdb.TransactionException as exc:
                if self.ducklake is None or "conflict" not in str(exc).lower():
                    raise
                # another load committed first: as long as loads go on committing snapshots
                # (a fan-out's loaders, each a group at a time), going on is progress
                fruitless = fruitless + 1 if there <= before else 0
                if fruitless == LOAD_ATTEMPTS:
                    raise
                log.info("warehouse: another load committed first; loading again")
                time.sleep(random.uniform(0.05, 0.5) * (fruitless + 1))

    def _load_all(self, con: duckdb.DuckDBPyConnection, report: LoadResult, listing: _Listing
                  ) -> None:
        """Every new snapshot of the lake, then the run logs: of the files listed."""
        loaded = set(_keys(con, "SELECT project_id, learn_id, snapshot_id FROM snapshots"))
        # a snapshot is committed in the lake when its COMMIT_TABLE file is there; its files in
        # the other tables were all written before that one, so a listing now finds them
        new = {key for info in listing.committed if (key := _key_of(info.path)) not in loaded}
        files: Sources = {table: {} for table in SNAPSHOT_TABLES}
        for table in SNAPSHOT_TABLES if new else ():
            infos = listing.committed if table == COMMIT_TABLE else self.lake.file_infos(table)
            files[table] = {key: info for info in infos if (key := _key_of(info.path)) in new}
        self._load_sources(con, report, files)
        done = LoadResult()
        with self._transaction(con):
            self._load_logs(con, done, listing.logs, report.failed)
        report.add(done)

    def _load_sources(self, con: duckdb.DuckDBPyConnection, report: LoadResult,
                      sources: Sources) -> None:
        for batch in self._batches(sorted(sources[COMMIT_TABLE]), sources):
            report.add(self._load_group(con, batch, sources))

    @property
    def _load_memory(self) -> str:
        return LOAD_MEMORY["duckdb" if self.ducklake is None else "ducklake"]

    @contextmanager
    def _transaction(self, con: duckdb.DuckDBPyConnection) -> Iterator[None]:
        """One load transaction. It starts by updating `_load_lock`: in a DuckLake, of two loads
        at the same moment one then fails to commit, and `load` starts it again."""
        con.begin()
        try:
            con.execute(f"UPDATE {LOAD_LOCK} SET loads = loads + 1")  # the serialization point
            yield
            con.commit()
        except BaseException:
            with suppress(duckdb.TransactionException):  # a failed commit ends it already
                con.rollback()
            raise

    @staticmethod
    def _batches(keys: list[Key], files: Sources) -> Iterator[list[Key]]:
        """Snapshots in groups of about BATCH_BYTES of lake files: a load holds one group's rows
        in memory until it commits, whatever the number of new snapshots. Rows handed over in
        memory are there already (their caller bounds them: BackgroundLoad's groups) and go in
        one transaction: each has a fixed cost."""
        batch: list[Key] = []
        size = 0
        for key in keys:
            batch.append(key)
            size += sum(_size(files[t][key]) for t in SNAPSHOT_TABLES if key in files[t])
            if size >= BATCH_BYTES:
                yield batch
                batch, size = [], 0
        if batch:
            yield batch

    def _load_group(self, con: duckdb.DuckDBPyConnection, batch: list[Key], files: Sources
                    ) -> LoadResult:
        """One group in one transaction; if its data fails it, each snapshot in one of its own,
        refusing those that fail alone. Returns what committed."""
        done = LoadResult()
        try:
            with self._transaction(con):
                self._load_snapshots(con, batch, files, done)
            return done
        except DATA_ERRORS as exc:
            if len(batch) == 1:  # it failed alone already
                return self._refuse(batch[0], files, exc)
        report = LoadResult()
        for key in batch:
            done = LoadResult()
            try:
                with self._transaction(con):
                    self._load_snapshots(con, [key], files, done)
            except DATA_ERRORS as exc:
                done = self._refuse(key, files, exc)
            report.add(done)
        return report

    def _refuse(self, key: Key, files: Sources, exc: Exception) -> LoadResult:
        """A snapshot that fails to load on its own: out of the lake, marked in the archive."""
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        failure = LoadFailure(*key, reason=reason[:500])
        log.warning("warehouse: %s", failure.describe())
        self.raw.mark_unloadable(*key, reason=failure.reason)
        self.raw.forget_project_state(key[0])  # its project is fetched whole again next time
        self.lake.remove_snapshot(*key)
        for table_files in files.values():
            table_files.pop(key, None)
        return LoadResult(failed=[failure])

    def _load_snapshots(self, con: duckdb.DuckDBPyConnection, batch: list[Key], files: Sources,
                        report: LoadResult) -> None:
        """A group of new snapshots: every table's rows, then the per-snapshot tables. A snapshot
        another process loaded in the meantime (DuckLake) is left out."""
        there = set(_keys(con, f"SELECT project_id, learn_id, snapshot_id FROM snapshots "
                               f"SEMI JOIN ({UNNEST_KEYS}) USING (project_id, learn_id, snapshot_id)",
                          _columns(batch)))
        new = [key for key in batch if key not in there]
        if not new:
            return
        # rows handed over in memory are what the load derives from (the per-snapshot tables,
        # the class names): from the warehouse's tables, a DuckLake fetches files back
        given = all(isinstance(files[COMMIT_TABLE].get(key), pa.Table) for key in new)
        sources = {table: f"_ei_group_{table}" for table in (CLASS_NAMES_FROM, *DERIVED_FROM)} \
            if given else {}
        for table, name in sources.items():
            given_rows = [s for key in new if isinstance(s := files[table].get(key), pa.Table)]
            con.register(name, pa.concat_tables([TABLES[table].empty(), *given_rows]))
        try:
            class_names = sources.get(CLASS_NAMES_FROM)
            for table in SNAPSHOT_TABLES:
                if table in sources:  # the group's rows, registered above
                    added = _inserted(con.execute(_insert_sql(table, sources[table], class_names)))
                else:
                    found = [files[table][key] for key in new if key in files[table]]
                    paths = sorted(self._uri(f.path) for f in found if isinstance(f, pafs.FileInfo))
                    rows = [f for f in found if isinstance(f, pa.Table)]
                    added = _copy(con, _insert_sql(table, ROWS, class_names), paths, rows)
                report.rows[table] = report.rows.get(table, 0) + added
            self._derive(con, new, sources)
        finally:
            for name in sources.values():
                con.unregister(name)
        report.new_snapshots += len(new)

    @staticmethod
    def _load_logs(con: duckdb.DuckDBPyConnection, report: LoadResult,
                   listed: Mapping[str, Sequence[str]], refused: Sequence[LoadFailure] = ()) -> None:
        """Run log files (of those `listed`, by table) not loaded before, learn_blocks from the
        discoveries, fetch times; the fetches of snapshots refused by this load get the reason
        as their error."""
        done_files = {row[0] for row in con.execute(f"SELECT path FROM {LOADED_FILES}").fetchall()}
        log_files = {t: sorted(u for u in listed[t] if u not in done_files) for t in LOG_TABLES}
        for table, paths in log_files.items():
            if not paths:
                continue
            # by name: files written before a column was added lack it (NULL, filled by BACKFILLS)
            report.rows[table] = _copy(con, _insert_sql(table, ROWS), paths, union_by_name=True)
            con.execute(f"INSERT INTO {LOADED_FILES} (path) SELECT unnest(?)", [paths])
            report.log_files += len(paths)
        if log_files["discoveries"]:
            con.execute("DELETE FROM learn_blocks")
            con.execute(LEARN_BLOCKS_SQL)
        con.execute(FETCH_TIMES_SQL)
        for failure in refused:
            con.execute("UPDATE fetch_log SET error = ? WHERE project_id = ? AND learn_id = ? "
                        "AND snapshot_id = ? AND error IS NULL",
                        [failure.describe(), failure.project_id, failure.learn_id, failure.snapshot_id])

    @staticmethod
    def _derive(con: duckdb.DuckDBPyConnection, keys: list[Key],
                sources: Mapping[str, str] | None = None) -> None:
        """Fill the per-snapshot tables for these snapshots, from the rows named in `sources` (a
        group's, in memory) or else the warehouse's tables (a join over predictions holds a
        group's rows, whatever the load's size)."""
        if keys:
            for sql in DERIVED_SQL.values():
                for table in DERIVED_FROM:
                    sql = sql.replace(f"{{{table}}}", (sources or {}).get(table, f'"{table}"'))
                con.execute(sql, _columns(keys))

    def _uri(self, path: str) -> str:
        return uri(self.lake.filesystem, path)

    def reset(self) -> None:
        """Drop every table and view (for rebuilds); the next load starts from nothing."""
        with self.connect() as con:
            for view in VIEWS:
                con.execute(f'DROP VIEW IF EXISTS "{view}"')
            for table in (*TABLES, LOADED_FILES, LOAD_LOCK, SCHEMA_TABLE):
                con.execute(f'DROP TABLE IF EXISTS "{table}"')

    # ---- reading ----------------------------------------------------------------------------

    @contextmanager
    def reader(self) -> Iterator[Reader]:
        """Read-only queries on one connection, in one transaction: they all see the same state
        of the warehouse, and the connection (for a DuckLake, its extensions and catalog)
        is opened once."""
        with self.connect(read_only=True) as con:
            con.begin()
            try:
                yield Reader(con)
            finally:
                con.rollback()  # nothing to keep: a reader writes nothing

    def row_counts(self, names: Iterable[str]) -> dict[str, int]:
        """Rows of each named table or view of the registry."""
        with self.reader() as reader:
            return reader.row_counts(names)

    def query(self, sql: str, params: Sequence[object] | None = None) -> pa.Table:
        """Run one read-only SELECT (with `?` parameters) and return its result as Arrow."""
        with self.reader() as reader:
            return reader.query(sql, params)

    def show(self, sql: str, max_rows: int = 0) -> None:
        """Run one read-only SELECT and print it for people (see Reader.show)."""
        with self.reader() as reader:
            reader.show(sql, max_rows)


class _LoadConnection:
    """The writing connection of a load, set up for loads, the schema put in place at its first
    use; with `keep`, left open for the next load (`Warehouse.loader`) unless a load failed on it."""

    def __init__(self, warehouse: Warehouse, keep: bool) -> None:
        self._warehouse = warehouse
        self._keep = keep
        self._open: ExitStack | None = None
        self._con: duckdb.DuckDBPyConnection | None = None
        self._schema_ready = False

    def open(self) -> duckdb.DuckDBPyConnection:
        """The connection, opened if it is not yet (the schema waits for `use`: it is the
        load's work)."""
        if self._con is None:
            self._con = self._connect()
        return self._con

    @contextmanager
    def use(self, capped: bool, threads: int | None) -> Iterator[duckdb.DuckDBPyConnection]:
        """The connection with the schema in place, its memory capped to LOAD_MEMORY or not, on
        `threads` (DuckDB's default: every core)."""
        con = self.open()
        try:
            if not self._schema_ready:
                self._warehouse.ensure_schema(con)
                self._schema_ready = True
            if capped:
                con.execute("SET memory_limit = ?", [self._warehouse._load_memory])
            else:
                con.execute("RESET memory_limit")
            if threads is not None:
                con.execute("SET threads = ?", [threads])
            else:
                con.execute("RESET threads")
            yield con
        except BaseException:
            self.close()  # whatever it was, the next attempt starts on a new connection
            raise
        if not self._keep:
            self.close()

    def _connect(self) -> duckdb.DuckDBPyConnection:
        with ExitStack() as stack:
            warehouse = self._warehouse
            spill = stack.enter_context(tempfile.TemporaryDirectory(prefix="ei-assets-load-")) \
                if warehouse.ducklake else None
            con = stack.enter_context(warehouse.connect())
            con.execute("SET preserve_insertion_order = false")
            if spill is not None:  # an in-memory DuckDB would spill to ./.tmp
                con.execute("SET temp_directory = ?", [spill])
            self._open = stack.pop_all()
        return con

    def close(self) -> None:
        if self._open is not None:
            self._open.close()
        self._open = self._con = None
        self._schema_ready = False

    def __enter__(self) -> _LoadConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Reader:
    """Read-only queries on an open connection (`Warehouse.reader()`)."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con

    def row_counts(self, names: Iterable[str]) -> dict[str, int]:
        """Rows of each named table or view of the registry."""
        names = list(names)
        unknown = [n for n in names if n not in TABLES and n not in VIEWS]
        if unknown:  # names go into SQL text: only registry names may
            raise ValueError(f"not a warehouse table or view: {', '.join(unknown)}")
        sql = " UNION ALL ".join(f"SELECT '{n}' AS name, count(*) AS n FROM \"{n}\"" for n in names)
        return {name: int(n) for name, n in self._con.execute(sql).fetchall()}

    def query(self, sql: str, params: Sequence[object] | None = None) -> pa.Table:
        """Run one read-only SELECT (with `?` parameters) and return its result as Arrow."""
        result: pa.Table = _select(self._con, sql, params).to_arrow_table()
        return result

    def show(self, sql: str, max_rows: int = 0) -> None:
        """Run one read-only SELECT and print it with DuckDB's table rendering (column types,
        NULL, every column; past `max_rows` (0: no limit) the first and last rows, counted)."""
        _select(self._con, sql).show(max_width=1 << 20, max_rows=max_rows or 1 << 62,
                                     null_value="NULL")


def _select(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[object] | None = None
            ) -> duckdb.DuckDBPyRelation:
    """The relation of one SELECT statement; anything else is refused before it runs."""
    statements = con.extract_statements(sql)
    if len(statements) != 1:
        raise ReadOnlyQueryError(f"expected one SQL statement, got {len(statements)}")
    if statements[0].type.name != "SELECT":  # by name: duckdb 1.4's stubs name the member otherwise
        raise ReadOnlyQueryError(
            f"only SELECT queries are allowed here, not {statements[0].type.name}; "
            "the warehouse is written by `ei-assets refresh` and `ei-assets rebuild`"
        )
    return con.sql(sql, params=params)


def sql_text(value: str) -> str:
    """A string literal for DDL that takes no parameters (our own descriptions only)."""
    return "'" + value.replace("'", "''") + "'"


def create_table_sql(table: Relation) -> str:
    columns = ", ".join(f'"{c.name}" {c.sql_type}{"" if c.nullable else " NOT NULL"}'
                        for c in table.all_columns)
    return f'CREATE TABLE IF NOT EXISTS "{table.name}" ({columns})'


def comments_sql(relation: Relation, columns: bool = True) -> str:
    kind = "VIEW" if relation.is_view else "TABLE"
    statements = [f'COMMENT ON {kind} "{relation.name}" IS {sql_text(relation.description)}']
    statements += [f'COMMENT ON COLUMN "{relation.name}"."{c.name}" IS {sql_text(c.description)}'
                   for c in relation.all_columns if columns]
    return ";\n".join(statements)


@dataclass(frozen=True)
class _Listing:
    """What `load` found before its turn: the lake's snapshots (their COMMIT_TABLE files), the
    run logs' URIs by table."""

    committed: Sequence[pafs.FileInfo]
    logs: Mapping[str, Sequence[str]]


# per lake table, each new snapshot's rows: its lake file, or the same rows in memory
Sources = dict[str, dict[Key, pafs.FileInfo | pa.Table]]
ROWS_VIEW = "_ei_rows"  # the name rows in memory are read under, for one statement
ROWS = "{rows}"  # where an INSERT statement of _copy reads its rows


def _size(source: pafs.FileInfo | pa.Table) -> int:
    """What a source weighs against BATCH_BYTES: a lake file its size, rows in memory nothing."""
    return 0 if isinstance(source, pa.Table) else source.size or 0


def _copy(con: duckdb.DuckDBPyConnection, insert: str, paths: Sequence[str],
          rows: Sequence[pa.Table] = (), union_by_name: bool = False) -> int:
    """Rows of lake files and rows in memory through `insert` (an INSERT statement that reads
    {ROWS}); the rows inserted."""
    added = 0
    if paths:
        options = "hive_partitioning = false" + (", union_by_name = true" if union_by_name else "")
        added += _inserted(con.execute(insert.replace(ROWS, f"read_parquet(?, {options})"),
                                       [list(paths)]))
    if rows:
        con.register(ROWS_VIEW, pa.concat_tables(rows))
        try:
            added += _inserted(con.execute(insert.replace(ROWS, ROWS_VIEW)))
        finally:
            con.unregister(ROWS_VIEW)
    return added


def _inserted(result: duckdb.DuckDBPyConnection) -> int:
    found = result.fetchone()  # DuckDB answers an INSERT with the rows inserted
    return int(found[0]) if found else 0


def _insert_sql(table: str, rows: str, class_names: str | None = None) -> str:
    """INSERT of `rows` (a read_parquet call, a registered name, or ROWS) into a registry table,
    by name; the classification report gets its class names on the way (from the snapshots in
    `class_names`, by default the warehouse's), a snapshot its first fetch times."""
    if table not in TABLES:  # the name goes into SQL text: only registry names may
        raise ValueError(f"unknown table {table!r}")
    if table == "classification_report":
        snapshots = class_names or f'"{CLASS_NAMES_FROM}"'
        return CLASSIFICATION_REPORT_SQL.replace("{snapshots}", snapshots).replace(ROWS, rows)
    if table == "snapshots":
        return SNAPSHOTS_SQL.replace(ROWS, rows)
    return f'INSERT INTO "{table}" BY NAME SELECT * FROM {rows}'


def _key_of(path: str) -> Key:
    """The snapshot of a lake file, from its path `.../project_id=P/learn_id=L/<snapshot_id>.parquet`."""
    project, learn, name = path.rsplit("/", 3)[-3:]
    return (int(project.removeprefix("project_id=")), int(learn.removeprefix("learn_id=")),
            name.removesuffix(".parquet"))


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    found = con.execute(f'SELECT count(*) FROM "{table}"').fetchone()  # registry names only
    return int(found[0]) if found else 0


def _keys(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[object] | None = None
          ) -> list[Key]:
    return [(int(project), int(learn), str(sid))
            for project, learn, sid in con.execute(sql, params).fetchall()]


# the rows of keys given as `_columns`, as SQL (the same form as in sql/derived.sql)
UNNEST_KEYS = ("SELECT unnest($1::BIGINT[]) AS project_id, unnest($2::BIGINT[]) AS learn_id, "
               "unnest($3::VARCHAR[]) AS snapshot_id")


def _columns(keys: Sequence[Key]) -> list[list[int] | list[str]]:
    """Keys as the three lists the SQL unnests side by side: project ids, learn ids, snapshot ids."""
    return [[k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys]]
