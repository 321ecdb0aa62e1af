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
from collections.abc import Iterator
from pathlib import Path

from ei_assets.pipeline.data_dir import DataDir
from ei_assets.pipeline.refresh import RefreshResult, refresh
from ei_assets.schema import SNAPSHOT_TABLES
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


FANOUT_PROJECTS, LOADERS, FANOUT_GOAL_MS, FANOUT_ROUNDS = 40, 4, 25.0, 2
WORKER = "import sys, bench.scale; bench.scale.fanout_worker(sys.argv[1:])"


def fanout_worker(argv: list[str]) -> None:
    """One of the fan-out's runs, as its process does it: `refresh` of its projects with the
    warehouse loaded while fetching, then the warehouse step's load. Prints, as JSON, the seconds
    its loads held the DuckLake (ducklake.load_turn: loads take turns, so these add up to the
    fan-out's serial load time), and what it refreshed and loaded."""
    import json
    from contextlib import contextmanager

    from ei_assets.warehouse import ducklake

    url, api_keys, projects, location, warehouse, mode = argv
    held = 0.0
    turn = ducklake.load_turn

    @contextmanager
    def timed_turn(*args: object, **kwargs: object) -> Iterator[None]:
        nonlocal held
        with turn(*args, **kwargs):  # type: ignore[arg-type]
            started = time.perf_counter()
            try:
                yield
            finally:
                held += time.perf_counter() - started

    ducklake.load_turn = timed_turn
    data = DataDir.open(location, warehouse=warehouse, lock_timeout=600)
    keys = [ApiKey(k, f"#{i}") for i, k in enumerate(api_keys.split(","), start=1)]
    loading = mode == "load"
    started = time.perf_counter()
    with StudioClient(url, max_concurrency=8) as client:
        result = refresh(client, keys, data.store, max_workers=8,
                         warehouse=data.warehouse if loading else None,
                         projects=[int(p) for p in projects.split(",")])
    fetched = time.perf_counter()
    step = data.warehouse.load().new_snapshots if loading else 0
    print(json.dumps({"held_s": held, "refreshed": result.counts()["refreshed"],
                      "loaded": result.loaded.new_snapshots + step,
                      "refresh_s": fetched - started, "step_s": time.perf_counter() - fetched}))


def measure_fanout() -> list[str]:
    """The fan-out day's DuckLake load, on loopback S3 (moto) and Postgres: FANOUT_PROJECTS
    projects of 10 blocks refreshed by LOADERS processes at once (the fan-out's runs, a quarter
    of the projects each), each loading what it stores while it fetches, then its warehouse
    step. The figure is what loading adds to the fan-out, per new snapshot: its wall time with
    the warehouse less the same fan-out's without (storing only), averaged over FANOUT_ROUNDS
    such pairs, each into new buckets and catalogs (a busy machine moves one fan-out by seconds,
    so one pair moves the figure by more than the goal). Beside it, the seconds the loads held
    the DuckLake (they take turns: the fan-out's serial part).
    Then the last round's lake loaded again from its files by LOADERS loaders at once (a rebuild,
    or runs whose load was deferred). Every table's rows are checked against what the refresh
    wrote: none lost, none twice."""
    import json

    config = WorldConfig(projects=FANOUT_PROJECTS, blocks_per_project=BLOCKS_PER_PROJECT,
                         predictions=PREDICTIONS, profiling_seconds=0.0)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    failures: list[str] = []
    with s3_server() as s3, postgres_server() as (pg, createdb), Simulator(config) as sim:
        projects = sorted(sim.world.projects)
        shares = [",".join(map(str, projects[i::LOADERS])) for i in range(LOADERS)]

        def fan_out(where: str, warehouse: str, mode: str) -> tuple[float, list[dict[str, float]]]:
            started = time.perf_counter()
            processes = [subprocess.Popen([sys.executable, "-c", WORKER, sim.url,
                                           ",".join(sim.api_keys), share, where, warehouse, mode],
                                          stdout=subprocess.PIPE, text=True) for share in shares]
            runs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in processes]
            return time.perf_counter() - started, runs

        os.environ.update(s3.env)
        plains: list[float] = []
        walls: list[float] = []
        for round_ in range(1, FANOUT_ROUNDS + 1):
            # each run into a bucket of its own: moto lists a prefix by going over every key of
            # its bucket, so a shared one would slow the later fan-outs
            s3.create_bucket(f"ei-fanout-{round_}")
            s3.create_bucket(f"ei-fanout-plain-{round_}")
            createdb(f"fanout{round_}")
            location = f"s3://ei-fanout-{round_}/ei"
            warehouse = "ducklake:postgres:" + pg.conninfo(f"fanout{round_}")
            data = DataDir.open(location, warehouse=warehouse)
            data.warehouse.load()  # the schema, as a fan-out day finds it
            plain, plain_runs = fan_out(f"s3://ei-fanout-plain-{round_}/ei", warehouse, "store")
            wall, runs = fan_out(location, warehouse, "load")
            plains.append(plain)
            walls.append(wall)
            for name, fanout_runs in (("without", plain_runs), ("with", runs)):
                print(f"  round {round_}, runs {name} the warehouse: " + "; ".join(
                    f"refresh {r['refresh_s']:.1f}s, step {r['step_s']:.1f}s, held {r['held_s']:.1f}s"
                    for r in fanout_runs))
            snapshots = int(sum(r["refreshed"] for r in runs))
            wrong = _rows_mismatch(data, snapshots)
            if wrong:
                failures.append(f"fan-out load, round {round_}: {wrong}")
        held = sum(r["held_s"] for r in runs)
        added = [1000 * (wall - plain) / max(snapshots, 1) for plain, wall in zip(plains, walls, strict=True)]
        per = sum(added) / len(added)
        print(f"\n== the fan-out day's DuckLake load: {snapshots} new snapshots from {LOADERS} runs "
              f"at once (S3: moto, catalog: Postgres, loopback); goal <= {FANOUT_GOAL_MS:.0f} ms "
              "a snapshot")
        print(f"fan-out {'/'.join(f'{w:.1f}' for w in plains)}s without the warehouse, "
              f"{'/'.join(f'{w:.1f}' for w in walls)}s with the runs loading as they fetch "
              f"({FANOUT_ROUNDS} rounds): {per:.1f} ms a snapshot "
              f"({' and '.join(f'{a:.1f}' for a in added)} ms by round; the last "
              f"round's loads held the DuckLake {1000 * held / max(snapshots, 1):.1f} ms a "
              f"snapshot, taking turns); loaded {'+'.join(str(r['loaded']) for r in runs)}; "
              f"{'each table as written, once' if not failures else 'WRONG: ' + failures[-1]}")
        if per > FANOUT_GOAL_MS:
            failures.append(f"fan-out load: {per:.0f} ms a snapshot > {FANOUT_GOAL_MS:.0f}")
        data.warehouse.reset()
        started = time.perf_counter()
        loaders = [subprocess.Popen([sys.executable, "-c", LOAD_SCRIPT, location, warehouse],
                                    stdout=subprocess.PIPE, text=True) for _ in range(LOADERS)]
        each = [int(p.communicate()[0].strip() or -1) for p in loaders]
        wall = time.perf_counter() - started
        wrong = _rows_mismatch(data, snapshots)
        print(f"{LOADERS} loaders at once from the lake's files: {wall:.1f}s, "
              f"{1000 * wall / max(snapshots, 1):.1f} ms a snapshot; loaded {'+'.join(map(str, each))}; "
              f"{'each table as written, once' if not wrong else 'WRONG: ' + wrong}")
        if wrong:
            failures.append(f"loaders from the lake: {wrong}")
    return failures


LOAD_SCRIPT = ("import sys; from ei_assets.pipeline.data_dir import DataDir; "
               "print(DataDir.open(sys.argv[1], warehouse=sys.argv[2], lock_timeout=600)"
               ".warehouse.load().new_snapshots)")


def _rows_mismatch(data: DataDir, snapshots: int) -> str:
    """What differs between the warehouse and the lake ('' if nothing): a table's rows, a
    snapshot twice, or a snapshot count other than expected."""
    with data.warehouse.reader() as reader:
        counts = reader.row_counts(SNAPSHOT_TABLES)
        keys = reader.query("SELECT count(*) AS n, count(DISTINCT (project_id, learn_id, snapshot_id)) "
                            "AS k FROM snapshots").to_pylist()[0]
    wrong = [f"{t} {counts[t]} != {n} in the lake" for t in SNAPSHOT_TABLES
             if counts[t] != (n := data.store.lake.dataset(t).count_rows())]
    if keys["n"] != keys["k"]:
        wrong.append(f"{keys['n'] - keys['k']} snapshots twice")
    if keys["k"] != snapshots:
        wrong.append(f"{keys['k']} snapshots != {snapshots} refreshed")
    return ", ".join(wrong)
