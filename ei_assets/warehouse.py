"""The DuckDB warehouse (`<data dir>/ei.duckdb`, schema main): contract tables and comparison views.

Loading is incremental and set-based: DuckDB reads the new lake files itself (`read_parquet`,
file lists passed as parameters, never pasted into SQL), inside one transaction. A snapshot is
new when its `snapshots` file is committed in the lake and its id is not in `main.snapshots`.
Run logs (fetch_log, discoveries) are loaded file by file, each file once.

DuckDB allows one writing process per file. A second writer waits up to `lock_timeout` seconds
for the lock, then fails with WarehouseBusyError. Readers connect read-only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources

import duckdb
import pyarrow as pa

from ei_assets.lake import Lake
from ei_assets.raw_archive import RawArchive
from ei_assets.schema import COMMIT_TABLE, SNAPSHOT_TABLES, TABLES

log = logging.getLogger(__name__)

DATABASE_FILE = "ei.duckdb"
LOG_TABLES = ("fetch_log", "discoveries")
VIEWS = ("latest_snapshots", "prediction_agreement", "model_type_comparison", "model_type_trend",
         "prediction_disagreements")
CONTRACT_TABLES = (*SNAPSHOT_TABLES, "fetch_log", "learn_blocks")

LEARN_BLOCKS_SQL = """
CREATE OR REPLACE TABLE learn_blocks AS
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

FETCH_TIMES_SQL = """
UPDATE snapshots SET first_fetched_at = least(snapshots.first_fetched_at, f.first_at),
                     last_fetched_at = greatest(snapshots.last_fetched_at, f.last_at)
FROM (SELECT snapshot_id, min(fetched_at) AS first_at, max(fetched_at) AS last_at
      FROM fetch_log WHERE ok AND snapshot_id IS NOT NULL GROUP BY snapshot_id) f
WHERE snapshots.snapshot_id = f.snapshot_id
"""


class WarehouseBusyError(RuntimeError):
    """Another process holds the warehouse's write lock for longer than we wait."""


class ReadOnlyQueryError(ValueError):
    """`ei-assets sql` takes one SELECT statement; anything that could write is refused."""


@dataclass(frozen=True)
class Thresholds:
    """When model_type_trend flags a regression against the previous snapshot."""

    accuracy_drop: float = 0.01  # accuracy fell by more than this (absolute)
    resource_rise: float = 0.10  # latency, RAM or ROM rose by more than this (relative)


@dataclass
class LoadReport:
    new_snapshots: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    log_files: int = 0


class Warehouse:
    def __init__(
        self,
        data_dir: str,
        lake: Lake,
        raw: RawArchive,
        thresholds: Thresholds | None = None,
        lock_timeout: float = 60.0,
    ) -> None:
        self.path = f"{data_dir.rstrip('/')}/{DATABASE_FILE}"
        self.lake = lake
        self.raw = raw
        self.thresholds = thresholds or Thresholds()
        self.lock_timeout = lock_timeout

    # ---- connections ------------------------------------------------------------------------

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection, waiting up to lock_timeout for another process's write lock."""
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                connection = duckdb.connect(self.path, read_only=read_only)
                connection.execute("SET enable_progress_bar = false")
                break
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower():
                    raise
                if time.monotonic() >= deadline:
                    raise WarehouseBusyError(
                        f"the warehouse {self.path} is locked by another process "
                        f"(waited {self.lock_timeout:.0f}s): another refresh or rebuild is "
                        "writing. Wait for it to finish, then run this again."
                    ) from None
                time.sleep(0.2)
        try:
            yield connection
        finally:
            connection.close()

    # ---- schema -----------------------------------------------------------------------------

    def ensure_schema(self, con: duckdb.DuckDBPyConnection) -> None:
        for name in (*SNAPSHOT_TABLES, *LOG_TABLES):
            empty = TABLES[name].schema.empty_table()
            con.register("_empty", empty)
            con.execute(f'CREATE TABLE IF NOT EXISTS "{name}" AS SELECT * FROM _empty')
            con.unregister("_empty")
        con.execute("ALTER TABLE snapshots ADD COLUMN IF NOT EXISTS first_fetched_at TIMESTAMPTZ")
        con.execute("ALTER TABLE snapshots ADD COLUMN IF NOT EXISTS last_fetched_at TIMESTAMPTZ")
        con.execute("CREATE TABLE IF NOT EXISTS _loaded_files (path VARCHAR PRIMARY KEY, "
                    "loaded_at TIMESTAMPTZ DEFAULT current_timestamp)")
        exists = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'learn_blocks'"
                             ).fetchone()
        if not exists or not exists[0]:
            con.execute(LEARN_BLOCKS_SQL)
        con.execute(self._views_sql())

    def _views_sql(self) -> str:
        text = resources.files("ei_assets").joinpath("sql/views.sql").read_text()
        return text.replace("{accuracy_drop}", repr(float(self.thresholds.accuracy_drop))).replace(
            "{resource_rise}", repr(float(self.thresholds.resource_rise)))

    # ---- loading ----------------------------------------------------------------------------

    def load(self) -> LoadReport:
        """Bring the warehouse up to date with the lake and the run logs, in one transaction."""
        report = LoadReport()
        with self.connect() as con:
            self.ensure_schema(con)
            loaded = {row[0] for row in con.execute("SELECT snapshot_id FROM snapshots").fetchall()}
            committed = {_snapshot_of(path): path for path in self.lake.files(COMMIT_TABLE)}
            new = {sid for sid in committed if sid not in loaded}
            done_files = {row[0] for row in con.execute("SELECT path FROM _loaded_files").fetchall()}
            log_files = {t: sorted(p for p in self.raw.log_files(t) if p not in done_files)
                         for t in LOG_TABLES}
            con.begin()
            try:
                if new:
                    for table in SNAPSHOT_TABLES:
                        files = sorted(p for p in self.lake.files(table) if _snapshot_of(p) in new)
                        report.rows[table] = self._insert(con, table, files)
                    con.execute("UPDATE snapshots SET first_fetched_at = fetched_at, "
                                "last_fetched_at = fetched_at WHERE first_fetched_at IS NULL")
                for table, files in log_files.items():
                    if not files:
                        continue
                    report.rows[table] = self._insert(con, table, files)
                    con.execute("INSERT INTO _loaded_files (path) SELECT unnest(?)", [files])
                    report.log_files += len(files)
                if log_files["discoveries"]:
                    con.execute(LEARN_BLOCKS_SQL)
                con.execute(FETCH_TIMES_SQL)
                con.commit()
            except BaseException:
                con.rollback()
                raise
            report.new_snapshots = len(new)
        log.info("warehouse: %d new snapshots, rows %s", report.new_snapshots, report.rows)
        return report

    def _insert(self, con: duckdb.DuckDBPyConnection, table: str, files: list[str]) -> int:
        if not files:
            return 0
        if table not in TABLES:
            raise ValueError(f"unknown table {table!r}")
        inserted = con.execute(  # DuckDB answers an INSERT with the number of rows inserted
            f'INSERT INTO "{table}" BY NAME SELECT * FROM read_parquet(?, hive_partitioning = false)',
            [files],
        ).fetchone()
        return int(inserted[0]) if inserted else 0

    def reset(self) -> None:
        """Drop every table and view (for rebuilds); the next load starts from nothing."""
        with self.connect() as con:
            for view in VIEWS:
                con.execute(f'DROP VIEW IF EXISTS "{view}"')
            for table in (*SNAPSHOT_TABLES, *LOG_TABLES, "learn_blocks", "_loaded_files"):
                con.execute(f'DROP TABLE IF EXISTS "{table}"')

    # ---- reading ----------------------------------------------------------------------------

    def query(self, sql: str) -> pa.Table:
        """Run one read-only SELECT and return its result as Arrow."""
        with self.connect(read_only=True) as con:
            statements = con.extract_statements(sql)
            if len(statements) != 1:
                raise ReadOnlyQueryError(f"expected one SQL statement, got {len(statements)}")
            if statements[0].type != duckdb.StatementType.SELECT:
                raise ReadOnlyQueryError(
                    f"only SELECT queries are allowed here, not {statements[0].type.name}; "
                    "the warehouse is written by `ei-assets refresh` and `ei-assets rebuild`"
                )
            return con.sql(sql).to_arrow_table()


def _snapshot_of(path: str) -> str:
    return path.rsplit("/", 1)[-1].removesuffix(".parquet")
