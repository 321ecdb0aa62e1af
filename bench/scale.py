"""`python -m bench.scale`: the figures behind docs/scale.md, measured on loopback servers.

The same simulated world is refreshed into the embedded mode (local files, DuckDB) and into the
scale-out mode (moto's S3 server, a DuckLake with its catalog in Postgres), with the core refresh
(no Dagster) so that the storage costs stand alone; then one `ei-assets refresh` process for one
block measures what a run costs to start. Counts S3 requests by method from moto's request log.
"""

from __future__ import annotations

import collections
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ei_assets.pipeline.data_dir import DataDir
from ei_assets.pipeline.refresh import RefreshResult, refresh
from ei_assets.settings import ApiKey
from ei_assets.simulator import FaultPlan, Simulator, WorldConfig
from ei_assets.studio import StudioClient
from tests.servers import postgres_server, s3_server

PROJECTS, BLOCKS_PER_PROJECT, PREDICTIONS = 4, 10, 2_000


class S3Requests(logging.Handler):
    """Counts the requests moto's server logs (werkzeug), by HTTP method."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: collections.Counter[str] = collections.Counter()

    def emit(self, record: logging.LogRecord) -> None:
        match = re.search(r'"(GET|PUT|POST|HEAD|DELETE) ', record.getMessage())
        if match:
            self.counts[match.group(1)] += 1


def run_refresh(sim: Simulator, data: DataDir) -> tuple[RefreshResult, float, float]:
    keys = [ApiKey(k, f"#{i}") for i, k in enumerate(sim.api_keys, start=1)]
    started = time.perf_counter()
    with StudioClient(sim.url, max_concurrency=8) as client:
        report = refresh(client, keys, data.store, max_workers=8)
    fetched = time.perf_counter() - started
    started = time.perf_counter()
    data.warehouse.load()
    return report, fetched, time.perf_counter() - started


def main() -> int:
    counter = S3Requests()
    werkzeug = logging.getLogger("werkzeug")
    werkzeug.addHandler(counter)
    werkzeug.setLevel(logging.INFO)
    werkzeug.propagate = False
    config = WorldConfig(projects=PROJECTS, blocks_per_project=BLOCKS_PER_PROJECT,
                         predictions=PREDICTIONS, profiling_seconds=0.0)
    folder = Path(tempfile.mkdtemp(prefix="ei-scale-bench-"))
    lines = []
    with s3_server() as s3, postgres_server() as (pg, createdb), \
            Simulator(config, FaultPlan(latency_seconds=0.02)) as sim:
        s3.create_bucket("ei-bench")
        createdb("lake")
        os.environ.update(s3.env)
        embedded = DataDir.open(str(folder / "embedded"))
        scale = DataDir.open("s3://ei-bench/ei", warehouse="ducklake:postgres:" + pg.conninfo("lake"))
        blocks = len(sim.world.blocks())
        for phase in ("first (all new)", "unchanged", "after retraining every block"):
            if phase.startswith("after"):
                sim.world.retrain_matching()
            before_api = sim.stats.snapshot()["requests"]
            report, local_fetch, local_load = run_refresh(sim, embedded)
            api_requests = sim.stats.snapshot()["requests"] - before_api
            counter.counts.clear()
            _, s3_fetch, lake_load = run_refresh(sim, scale)
            s3_counts = dict(counter.counts)
            changed = sum(b.changed for b in report.blocks)
            body_bytes = sum(f["bytes"] or 0 for b in report.blocks for f in b.fetches)
            lines.append(
                f"{phase:32} blocks {blocks:3} changed {changed:3} | API requests {api_requests:4} "
                f"bytes {body_bytes / 1e6:6.1f} MB | embedded fetch+store {local_fetch:5.2f}s "
                f"load {local_load:5.2f}s | S3 fetch+store {s3_fetch:5.2f}s DuckLake load "
                f"{lake_load:5.2f}s | S3 requests {sum(s3_counts.values()):5} {s3_counts} "
                f"({sum(s3_counts.values()) / max(changed, 1):.0f} per changed block)")
        api = {**os.environ, "EI_API_URL": sim.url, "EI_API_KEY": ",".join(sim.api_keys)}
        one = f"{next(iter(sim.world.projects))}-10"
        run_seconds = {}
        for mode, env in (("embedded", {"EI_DATA_DIR": str(folder / "embedded")}),
                          ("scale-out", {"EI_DATA_DIR": "s3://ei-bench/ei",
                                         "EI_WAREHOUSE": "ducklake:postgres:" + pg.conninfo("lake")})):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "ei_assets.cli", "refresh", "--block", one],
                           env=api | env, capture_output=True, check=True)
            run_seconds[mode] = time.perf_counter() - started
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import ei_assets.definitions"], check=True)
        import_seconds = time.perf_counter() - started
    lines.append("one `ei-assets refresh --block` process (Dagster run, 1 block): "
                 + ", ".join(f"{mode} {seconds:.2f}s" for mode, seconds in run_seconds.items())
                 + f"; importing the definitions alone: {import_seconds:.2f}s")
    print(f"== scale-out figures ({PROJECTS} projects x {BLOCKS_PER_PROJECT} blocks, "
          f"{PREDICTIONS} windows per model type, 20 ms API latency, concurrency 8)")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
