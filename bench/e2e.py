"""`ei-assets refresh` end to end, against the floor of downloading and parsing the bytes.

The world: 40 learn blocks over 8 projects (classifiers with float32, int8 and akida builds and
50k windows each, visual anomaly with 13x13 score grids, object detection, K-means and GMM), about
226 MB of metadata JSON, served by the simulator in a process of its own with 20 ms of latency
on every request. Every command runs as its own process against the same server, one at a time,
as a user would run it (EI_MAX_CONCURRENCY=8, no DAGSTER_HOME):

- floor: `python -m bench.floor`, discovery + every body fetched concurrently + orjson.loads;
- first: `ei-assets refresh` into an empty data dir;
- unchanged: `ei-assets refresh` again, nothing changed on the server: Studio's change signal says
  so, and no metadata is downloaded (the requests and bytes it made are counted by the server);
- unchanged, --full: the same, every block downloaded (the bytes recalled by their digest);
- `ei-assets --help`, and `ei-assets sql` on a small query.

Wall time is the process's, start-up included; peak RSS is its own high-water mark (VmHWM; no
command starts a child process). Each figure is the best of REPEATS: the floor moves by a second
from run to run on a busy 2-core machine. The growth table
runs the floor and a first refresh on worlds of 2x and 4x the blocks, and of 2x and 4x the body
size, each against a new server.
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.synchronize import Event

import httpx
import orjson

from bench.proc import status_kb
from ei_assets.simulator import Simulator, WorldConfig

WORLD = WorldConfig(
    projects=8, blocks_per_project=5, akida=True, grid=13, predictions=2_000, targets=4,
    predictions_by_type=(("keras", 50_000), ("keras-visual-anomaly", 3_100),
                         ("keras-object-detection", 5_000)),
    profiling_seconds=0.0,
)
LATENCY_S = 0.020
CONCURRENCY = 8
REPEATS = 3
GOALS = {"first": 2.0, "unchanged": 1.0, "unchanged_full": 1.3, "rss_mb": 512, "help_s": 0.3,
         "sql_s": 0.6}
GROWTH = ((2, 1), (4, 1), (1, 2), (1, 4))  # (blocks, body size) multipliers
GROWTH_SLACK = 1.15  # "linear" allows 15% for noise on a busy machine

BIN = os.path.dirname(sys.executable)


def scaled(blocks: int = 1, body: int = 1) -> WorldConfig:
    return dataclasses.replace(
        WORLD, projects=WORLD.projects * blocks, predictions=WORLD.predictions * body,
        predictions_by_type=tuple((kind, n * body) for kind, n in WORLD.predictions_by_type))


def _serve(config: WorldConfig, ready: mp.Queue, stop: Event) -> None:
    with Simulator(config, cache_size=2 * config.projects * (config.blocks_per_project or 3)) as sim:
        sim.faults.latency_seconds = LATENCY_S
        ready.put((sim.url, sim.api_keys))
        stop.wait()


@dataclass(frozen=True)
class Server:
    url: str
    keys: list[str]

    def env(self, data_dir: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("EI_", "DAGSTER_"))}
        return {**env, "EI_API_URL": self.url, "EI_API_KEY": ",".join(self.keys),
                "EI_DATA_DIR": data_dir, "EI_MAX_CONCURRENCY": str(CONCURRENCY)}


@contextmanager
def server(config: WorldConfig) -> Iterator[Server]:
    context = mp.get_context("spawn")
    ready, stop = context.Queue(), context.Event()
    process = context.Process(target=_serve, args=(config, ready, stop), daemon=True)
    process.start()
    try:
        url, keys = ready.get(timeout=120)
        yield Server(url, keys)
    finally:
        stop.set()
        process.join(30)


@dataclass(frozen=True)
class Run:
    wall_s: float
    rss_mb: float
    stdout: str


def run(command: Sequence[str], env: dict[str, str], ok: Sequence[int] = (0,)) -> Run:
    """One process, timed from its start to its exit. Its peak RSS is the kernel's high-water mark
    of its own memory (VmHWM), read every 10 ms while it runs: wait4's figure would include the
    pages it shared with this process before exec."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, stdout=out, stderr=err)
        peak_kb = 0
        while process.poll() is None:
            peak_kb = max(peak_kb, _hwm_kb(process.pid))
            time.sleep(0.01)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if process.returncode not in ok:
        raise RuntimeError(f"{' '.join(command)} exited {process.returncode}:\n{stderr[-3000:]}")
    return Run(wall, peak_kb / 1024, stdout)


def _hwm_kb(pid: int) -> int:
    try:
        return status_kb("VmHWM", pid)
    except (FileNotFoundError, ProcessLookupError, RuntimeError):  # gone, or a zombie by now
        return 0


def best(runs: Sequence[Run]) -> Run:
    return Run(min(r.wall_s for r in runs), min(r.rss_mb for r in runs), runs[0].stdout)


def floor(srv: Server, repeats: int = REPEATS) -> tuple[Run, dict[str, int]]:
    runs = [run([sys.executable, "-m", "bench.floor"], srv.env("")) for _ in range(repeats)]
    return best(runs), orjson.loads(runs[0].stdout)


def refresh(srv: Server, data_dir: str, *args: str) -> Run:
    return run([f"{BIN}/ei-assets", "refresh", *args], srv.env(data_dir))


def server_stats(srv: Server, reset: bool = False) -> dict[str, int]:
    """The simulator's own count of what it answered (and a reset of it)."""
    control = srv.url.replace("/v1", "/_sim")
    if reset:
        httpx.post(f"{control}/stats/reset", timeout=30)
        return {}
    stats: dict[str, int] = httpx.get(f"{control}/stats", timeout=30).json()
    return stats


def first_refresh(srv: Server, work: str, repeats: int = REPEATS) -> tuple[Run, str]:
    """Each repeat into a new, empty data dir; returns the data dir of the last."""
    runs = []
    for index in range(repeats):
        data_dir = f"{work}/data-{index}"
        shutil.rmtree(data_dir, ignore_errors=True)
        runs.append(refresh(srv, data_dir))
    return best(runs), data_dir


def _line(name: str, r: Run, base: Run | None, goal: str = "") -> str:
    ratio = f"{r.wall_s / base.wall_s:>8.2f}" if base else f"{'':>8}"
    return f"{name:<34}{r.wall_s:>8.2f}{ratio}{r.rss_mb:>9.0f}  {goal}"


def measure_world() -> list[str]:
    failures: list[str] = []
    work = tempfile.mkdtemp(prefix="ei-bench-e2e-")
    try:
        print(f"\n== ei-assets refresh vs the floor (fetch + orjson), {CONCURRENCY} "
              f"requests at once, {LATENCY_S * 1000:.0f} ms latency, best of {REPEATS}")
        with server(WORLD) as srv:
            run([sys.executable, "-m", "bench.floor"], srv.env(""))  # the server builds its bodies
            base, world = floor(srv)
            first, data_dir = first_refresh(srv, work)
            unchanged_full = best([refresh(srv, data_dir, "--full") for _ in range(REPEATS)])
            server_stats(srv, reset=True)
            unchanged = best([refresh(srv, data_dir) for _ in range(REPEATS)])
            asked = server_stats(srv)
            env = srv.env(data_dir)
            help_run = best([run([f"{BIN}/ei-assets", "--help"], env) for _ in range(3)])
            sql_run = best([run([f"{BIN}/ei-assets", "sql", "select count(*) from snapshots"], env)
                            for _ in range(3)])
        print(f"world: {world['blocks']} learn blocks, {world['bodies']} bodies, "
              f"{world['bytes'] / 1e6:.0f} MB of JSON")
        print(f"{'':<34}{'wall s':>8}{'÷ floor':>8}{'peak MB':>9}  goal")
        print(_line("floor (fetch + orjson)", base, None))
        print(_line("ei-assets refresh, first", first, base,
                    f"≤ {GOALS['first']}x floor, ≤ {GOALS['rss_mb']} MB"))
        print(_line("ei-assets refresh, unchanged", unchanged, base,
                    f"≤ {GOALS['unchanged']}x floor, ≤ {GOALS['rss_mb']} MB"))
        print(_line("ei-assets refresh --full, unchanged", unchanged_full, base,
                    f"≤ {GOALS['unchanged_full']}x floor, ≤ {GOALS['rss_mb']} MB"))
        print(f"  the unchanged refreshes ({REPEATS}) asked Studio {asked['requests']} times for "
              f"{asked['bytes'] / 1e3:.0f} kB: {asked['metadataRequests']} metadata requests "
              f"({asked['metadataBytes']} bytes); the floor downloads {world['bytes'] / 1e6:.0f} MB")
        print(_line("ei-assets --help", help_run, None, f"≤ {GOALS['help_s']} s"))
        print(_line("ei-assets sql (count snapshots)", sql_run, None, f"≤ {GOALS['sql_s']} s"))
        if asked["metadataRequests"]:
            failures.append(f"unchanged refresh: {asked['metadataRequests']} metadata requests > 0")
        for name, r, goal in (("first refresh", first, GOALS["first"]),
                              ("unchanged refresh", unchanged, GOALS["unchanged"]),
                              ("unchanged refresh --full", unchanged_full, GOALS["unchanged_full"])):
            if r.wall_s > goal * base.wall_s:
                failures.append(f"{name}: {r.wall_s / base.wall_s:.2f}x the floor > {goal}x")
            if r.rss_mb > GOALS["rss_mb"]:
                failures.append(f"{name}: peak RSS {r.rss_mb:.0f} MB > {GOALS['rss_mb']} MB")
        for name, r, limit in (("ei-assets --help", help_run, GOALS["help_s"]),
                               ("ei-assets sql", sql_run, GOALS["sql_s"])):
            if r.wall_s > limit:
                failures.append(f"{name}: {r.wall_s:.2f}s > {limit}s")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return failures


def measure_growth() -> list[str]:
    failures: list[str] = []
    work = tempfile.mkdtemp(prefix="ei-bench-growth-")
    print(f"\n== growth, floor and first refresh, one run each; linear means "
          f"≤ k x the 1x figure (+{GROWTH_SLACK - 1:.0%})")
    print(f"{'world':<22}{'MB':>6}{'floor s':>9}{'refresh s':>10}{'÷ 1x s':>8}{'peak MB':>9}"
          f"{'÷ 1x MB':>9}")
    try:
        baseline: Run | None = None
        for blocks, body in ((1, 1), *GROWTH):
            with server(scaled(blocks, body)) as srv:
                run([sys.executable, "-m", "bench.floor"], srv.env(""))  # bodies built
                base, world = floor(srv, repeats=1)
                first, _ = first_refresh(srv, work, repeats=1)
            k = blocks * body
            baseline = baseline or first
            time_growth, rss_growth = first.wall_s / baseline.wall_s, first.rss_mb / baseline.rss_mb
            print(f"{f'{blocks}x blocks, {body}x body':<22}{world['bytes'] / 1e6:>6.0f}"
                  f"{base.wall_s:>9.2f}{first.wall_s:>10.2f}{time_growth:>8.2f}{first.rss_mb:>9.0f}"
                  f"{rss_growth:>9.2f}")
            if time_growth > k * GROWTH_SLACK:
                failures.append(f"{blocks}x blocks, {body}x body: time grew {time_growth:.2f}x")
            if rss_growth > k * GROWTH_SLACK:
                failures.append(f"{blocks}x blocks, {body}x body: peak RSS grew {rss_growth:.2f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return failures
