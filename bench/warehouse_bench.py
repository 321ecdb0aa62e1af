"""Issue 4: Warehouse.load() of 100 snapshots x 100 000 predictions, against a bare
`CREATE TABLE AS SELECT * FROM read_parquet(...)` of the same files, in the same run."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from datetime import UTC, datetime

import duckdb

from bench.bodies import classifier_body
from ei_assets.datadir import DataDir
from ei_assets.flatten import flatten
from ei_assets.schema import SNAPSHOT_TABLES
from ei_assets.snapshot import Snapshot

SNAPSHOTS = 100
PREDICTIONS = 100_002  # per snapshot, over its three model types
REPEATS = 3


def make_lake(folder: str) -> DataDir:
    body = classifier_body(predictions=PREDICTIONS // 3)  # float32 + int8 + akida windows
    data = DataDir.open(folder)
    for index in range(SNAPSHOTS):
        snapshot = Snapshot(project_id=1000 + index % 10, learn_id=3 + index // 10, block_type="keras",
                            fetched_at=datetime.now(UTC), endpoints=("keras",),
                            snapshot_id=f"{index:032x}")
        data.store.lake.write_snapshot(snapshot, flatten(snapshot, {"keras": body}))
    return data


def run() -> list[str]:
    folder = tempfile.mkdtemp(prefix="ei-bench-wh-")
    try:
        print(f"\n== issue 4: warehouse load of {SNAPSHOTS} snapshots vs CREATE TABLE AS "
              f"read_parquet, best of {REPEATS}")
        started = time.perf_counter()
        data = make_lake(folder)
        rows = sum(1 for _ in data.store.lake.files("predictions"))
        print(f"lake written in {time.perf_counter() - started:.1f}s ({rows} prediction files)")
        load_s, ctas_s, predictions = [], [], 0
        for _ in range(REPEATS):
            for suffix in ("", ".wal"):
                if os.path.exists(data.warehouse.path + suffix):
                    os.remove(data.warehouse.path + suffix)
            started = time.perf_counter()
            report = data.warehouse.load()
            load_s.append(time.perf_counter() - started)
            predictions = report.rows["predictions"]
            plain = os.path.join(folder, "plain.duckdb")
            if os.path.exists(plain):
                os.remove(plain)
            started = time.perf_counter()
            con = duckdb.connect(plain)
            con.execute("SET enable_progress_bar = false")
            for table in SNAPSHOT_TABLES:
                files = list(data.store.lake.files(table))
                if files:
                    con.execute(f'CREATE TABLE "{table}" AS SELECT * FROM read_parquet(?)', [files])
            con.close()
            ctas_s.append(time.perf_counter() - started)
        ratio = min(load_s) / min(ctas_s)
        print(f"{'predictions':>12}{'load s':>9}{'CTAS s':>9}{'ratio':>7}")
        print(f"{predictions:>12}{min(load_s):>9.2f}{min(ctas_s):>9.2f}{ratio:>7.2f}")
        return [f"warehouse load/CTAS ratio {ratio:.2f} > 1.5"] if ratio > 1.5 else []
    finally:
        shutil.rmtree(folder, ignore_errors=True)
