"""Issues 4 and 11: Warehouse.load() of 100 snapshots x 100 000 predictions, against a bare
`CREATE TABLE AS SELECT * FROM read_parquet(...)` of the same files, in the same run, in both
warehouse modes: the embedded DuckDB file, and a DuckLake (catalog in a throwaway Postgres started
here, data files on the local disk) where the bare CTAS goes into the same kind of DuckLake.

A load also fills the per-snapshot tables (prediction agreement and disagreements, anomaly score
statistics: joins over the predictions that the views used to run on every query). CTAS does not,
so each mode is measured twice: the whole load, and the load of the tables alone (the per-snapshot
SQL left out), which is the like-for-like figure the goal applies to. Each row also says how far
the process's peak RSS rose over its start during the load and during the CTAS (the largest of
the repeats): a load holds at most its mode's LOAD_MEMORY in DuckDB, a bare CTAS whatever DuckDB keeps."""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import duckdb

from bench.bodies import classifier_body
from bench.proc import reset_peak, status_kb
from ei_assets.ingest.flatten import flatten
from ei_assets.pipeline.data_dir import DataDir
from ei_assets.schema import SNAPSHOT_TABLES
from ei_assets.snapshot import Snapshot
from ei_assets.warehouse import ducklake
from ei_assets.warehouse import warehouse as warehouse_module

SNAPSHOTS = 100
PREDICTIONS = 100_002  # per snapshot, over its three model types
REPEATS = 3
GOAL = 1.2
T = TypeVar("T")


@dataclass(frozen=True)
class Result:
    load_s: float
    ctas_s: float
    predictions: int
    load_mb: float  # peak RSS growth
    ctas_mb: float


def make_lake(folder: str) -> DataDir:
    body = classifier_body(predictions=PREDICTIONS // 3)  # float32 + int8 + akida windows
    data = DataDir.open(folder)
    for index in range(SNAPSHOTS):
        snapshot = Snapshot(project_id=1000 + index % 10, learn_id=3 + index // 10, block_type="keras",
                            fetched_at=datetime.now(UTC), endpoints=("keras",),
                            snapshot_id=f"{index:032x}")
        data.store.lake.write_snapshot(snapshot, flatten(snapshot, {"keras": body}))
    return data


def ctas(con: duckdb.DuckDBPyConnection, data: DataDir) -> None:
    """The bare CTAS of every lake table, on an open connection."""
    for table in SNAPSHOT_TABLES:
        files = list(data.store.lake.files(table))
        if files:
            con.execute(f'CREATE TABLE "{table}" AS SELECT * FROM read_parquet(?)', [files])


def _growth(work: Callable[[], T]) -> tuple[float, float, T]:
    """Seconds, and MB of peak RSS over the RSS at the start (the kernel's high-water mark is
    reset first, through /proc/self/clear_refs), of one call; and what it returned."""
    reset_peak()
    before = status_kb("VmRSS") / 1024
    started = time.perf_counter()
    result = work()
    return time.perf_counter() - started, status_kb("VmHWM") / 1024 - before, result


def compare(load: Callable[[], int], bare: Callable[[], None]) -> Result:
    """Each on an empty warehouse, REPEATS times: the best time, the largest memory growth."""
    loads = [_growth(load) for _ in range(REPEATS)]
    bares = [_growth(bare) for _ in range(REPEATS)]
    return Result(min(r[0] for r in loads), min(r[0] for r in bares), loads[0][2],
                  max(r[1] for r in loads), max(r[1] for r in bares))


def embedded(folder: str, data: DataDir) -> Result:
    plain = os.path.join(folder, "plain.duckdb")

    def load() -> int:
        for suffix in ("", ".wal"):
            if os.path.exists(data.warehouse.path + suffix):
                os.remove(data.warehouse.path + suffix)
        return data.warehouse.load().rows["predictions"]

    def bare() -> None:
        if os.path.exists(plain):
            os.remove(plain)
        with duckdb.connect(plain) as con:
            con.execute("SET enable_progress_bar = false")
            ctas(con, data)

    return compare(load, bare)


def in_ducklake(folder: str, data: DataDir) -> Result | str:
    if not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        return "skipped: needs Debian's postgresql (make system)"
    from tests.servers import postgres_server

    with postgres_server() as (pg, createdb):
        runs = iter(range(2 * REPEATS))

        def fresh(kind: str) -> tuple[str, str]:
            name = f"{kind}{next(runs)}"
            createdb(name)  # type: ignore[operator]
            return pg.conninfo(name), os.path.join(folder, name) + "/"

        def load() -> int:  # a new catalog each time; data files under <folder>/warehouse/
            conninfo, _ = fresh("load")
            warehouse = DataDir.open(folder, warehouse=f"ducklake:postgres:{conninfo}").warehouse
            return warehouse.load().rows["predictions"]

        def bare() -> None:
            conninfo, path = fresh("ctas")
            with ducklake.connect(ducklake.DuckLake(conninfo, path), read_only=False) as con:
                ctas(con, data)

        return compare(load, bare)


def run() -> list[str]:
    folder = tempfile.mkdtemp(prefix="ei-bench-wh-")
    failures = []
    try:
        print(f"\n== issues 4 and 11: warehouse load of {SNAPSHOTS} snapshots vs CREATE TABLE AS "
              f"read_parquet of the same files, best of {REPEATS}; goal <= {GOAL} for the tables")
        started = time.perf_counter()
        data = make_lake(folder)
        files = sum(1 for _ in data.store.lake.files("predictions"))
        print(f"lake written in {time.perf_counter() - started:.1f}s ({files} prediction files)")
        print(f"{'mode':<22}{'predictions':>12}{'load s':>9}{'CTAS s':>9}{'ratio':>7}"
              f"{'load +MB':>10}{'CTAS +MB':>10}")
        derived_sql = warehouse_module.DERIVED_SQL
        for mode, measure in (("duckdb", embedded), ("ducklake", in_ducklake)):
            for what, derived in (("whole load", warehouse_module.DERIVED_SQL), ("tables", {})):
                warehouse_module.DERIVED_SQL = derived
                try:
                    result = measure(folder, data)
                finally:
                    warehouse_module.DERIVED_SQL = derived_sql
                name = f"{mode}, {what}"
                if isinstance(result, str):
                    print(f"{name:<22}{result}")
                    break
                ratio = result.load_s / result.ctas_s
                print(f"{name:<22}{result.predictions:>12}{result.load_s:>9.2f}{result.ctas_s:>9.2f}"
                      f"{ratio:>7.2f}{result.load_mb:>10.0f}{result.ctas_mb:>10.0f}")
                if what == "tables" and ratio > GOAL:
                    failures.append(f"{mode} warehouse load/CTAS ratio {ratio:.2f} > {GOAL}")
        return failures
    finally:
        shutil.rmtree(folder, ignore_errors=True)
