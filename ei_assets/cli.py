"""The `ei-assets` command.

Each command imports what it needs when it runs: `--help` and `sql` never load Dagster, and
nothing here loads pandas, so a quick command starts quickly.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from ei_assets.memory import tune_process
from ei_assets.progress import progress
from ei_assets.settings import DEFAULT_DATA_DIR, DEFAULT_SIM_PORT, REPORT_PATH, ConfigError, Settings
from ei_assets.simulator import FAULT_KINDS, FaultPlan, WorldConfig

if TYPE_CHECKING:
    import pyarrow as pa

    from ei_assets.pipeline.data_dir import DataDir

EXIT_OK, EXIT_PARTIAL, EXIT_CONFIG = 0, 1, 2


def _fault_rate(text: str) -> tuple[str, float]:
    kind, sep, rate = text.partition("=")
    if not sep or kind not in FAULT_KINDS:
        raise argparse.ArgumentTypeError(
            f"expected KIND=RATE with KIND one of {', '.join(FAULT_KINDS)}, got {text!r}"
        )
    try:
        value = float(rate)
    except ValueError:
        raise argparse.ArgumentTypeError(f"rate must be a number in 0..1, got {rate!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"rate must be in 0..1, got {value}")
    return kind, value


def _block_key(text: str) -> str:
    project, sep, learn = text.partition("-")
    if not (sep and project.isdigit() and learn.isdigit()):
        raise argparse.ArgumentTypeError(f"expected PROJECT-LEARN as two numbers, e.g. 12345-3; got {text!r}")
    return text


def add_world_options(parser: argparse.ArgumentParser) -> None:
    defaults = WorldConfig()
    world = parser.add_argument_group("simulated world")
    world.add_argument("--seed", type=int, default=defaults.seed,
                       help="seed of the world: same seed, same keys, ids and metrics "
                            "(default %(default)s)")
    world.add_argument("--projects", type=int, default=defaults.projects,
                       help="number of projects, one API key each (default %(default)s)")
    world.add_argument("--blocks-per-project", type=int, default=None,
                       help="learn blocks per project, cycling through every block type "
                            "(default: the hand-made layout of 2-3 blocks in 2 impulses)")
    world.add_argument("--predictions", type=int, default=defaults.predictions,
                       help="validation windows per model type (default %(default)s)")
    world.add_argument("--grid", type=int, default=defaults.grid,
                       help="visual anomaly score grid size n, for n x n grids (default %(default)s)")
    world.add_argument("--targets", type=int, default=defaults.targets,
                       help="profiled targets per model type, 1-8 (default %(default)s)")
    world.add_argument("--profiling-seconds", type=float, default=defaults.profiling_seconds,
                       help="how long profiling stays pending after a retrain (default %(default)s)")
    world.add_argument("--retrain-every", type=float, default=None, metavar="SECONDS",
                       help="retrain one block every SECONDS, round robin (default: never)")


def world_config(args: argparse.Namespace) -> WorldConfig:
    return WorldConfig(
        seed=args.seed, projects=args.projects, blocks_per_project=args.blocks_per_project,
        predictions=args.predictions, grid=args.grid, targets=args.targets,
        profiling_seconds=args.profiling_seconds,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ei-assets",
        description="Keep the history of Edge Impulse models: every retrain, model type and target, "
                    "in Parquet and DuckDB, scheduled and shown in Dagster.",
        epilog="Configuration comes from the environment: EI_API_KEY (comma-separated project keys), "
               "EI_WAREHOUSE (duckdb, or ducklake:postgres:<conninfo>), "
               "EI_API_URL, EI_DATA_DIR (default ./data), EI_MAX_CONCURRENCY (default 8).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    simulate = commands.add_parser(
        "simulate", help="run the bundled Edge Impulse Studio simulator",
        description="Serve the Studio API paths on loopback with realistic, seeded data. "
                    "Prints the URL and the demo API keys, then serves until interrupted. "
                    "Control endpoints under /_sim/ retrain blocks and inject faults at run time.",
    )
    simulate.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    simulate.add_argument("--port", type=int, default=DEFAULT_SIM_PORT,
                          help="port, 0 for any free one (default %(default)s)")
    add_world_options(simulate)
    faults = simulate.add_argument_group("faults")
    faults.add_argument("--fault", type=_fault_rate, action="append", default=[], metavar="KIND=RATE",
                        help=f"answer this share of API requests with a fault; KIND is one of "
                             f"{', '.join(FAULT_KINDS)}; repeatable")
    faults.add_argument("--retry-after", default="1",
                        help="Retry-After header sent with 429s: seconds or an HTTP date "
                             "(default %(default)s)")
    faults.add_argument("--slow-seconds", type=float, default=5.0,
                        help="delay of a 'slow' response (default %(default)s)")
    faults.add_argument("--latency", type=float, default=0.0,
                        help="seconds added to every API response (default %(default)s)")
    simulate.set_defaults(handler=cmd_simulate)

    sql = commands.add_parser(
        "sql", help="run a read-only SQL query on the warehouse",
        description="Run one SELECT on EI_DATA_DIR/ei.duckdb (opened read-only) and print the "
                    "result. Tables and views: see docs/sql.md.",
    )
    sql.add_argument("query", help='one SELECT statement, e.g. "SELECT * FROM model_type_comparison"')
    sql.add_argument("--format", choices=("table", "csv"), default="table",
                     help="aligned table for people, CSV for scripts (default %(default)s)")
    sql.add_argument("--max-rows", type=int, default=200,
                     help="rows printed in table format, 0 for all (default %(default)s)")
    sql.set_defaults(handler=cmd_sql)

    refresh = commands.add_parser(
        "refresh", help="discover, fetch, archive, flatten and load every configured project",
        description="Execute the project's Dagster refresh job in this process: discovery, fetch, "
                    "raw archive, lake and warehouse for every key in EI_API_KEY. With DAGSTER_HOME "
                    "set, the run is recorded there and shows in the Dagster UI. A project Studio "
                    "says did not change since its last full fetch (GET last-modification) is not "
                    "downloaded, unless that fetch is older than EI_VERIFY_EVERY (default 7d). "
                    "Exit 0: every learn block refreshed, unchanged, not modified or of an "
                    "unsupported type; 1: some failed (all others saved); 2: configuration.",
    )
    refresh.add_argument("--full", action="store_true",
                         help="fetch every block, whatever Studio's change signal says")
    refresh.add_argument("--block", action="append", default=[], metavar="PROJECT-LEARN", type=_block_key,
                         help="refresh only this learn block, e.g. 12345-3 (repeatable; default all)")
    refresh.add_argument("--project", action="append", default=[], type=int, metavar="PROJECT",
                         help="refresh only the learn blocks of this project (repeatable; one "
                              "process per project fans a refresh out)")
    refresh.set_defaults(handler=cmd_refresh)

    demo = commands.add_parser(
        "demo", help="run the simulator, refresh twice around a retrain, print the comparison",
        description="Start the bundled Studio simulator, refresh from it into EI_DATA_DIR, let it "
                    "retrain every block, refresh again, print the latest int8 vs float32 "
                    "comparison and the regressions, then stop the simulator. Runs are recorded "
                    "in DAGSTER_HOME (default EI_DATA_DIR/dagster_home, the one `make dev` shows).",
    )
    demo.add_argument("--seed", type=int, default=WorldConfig().seed,
                      help="seed of the simulated world (default %(default)s)")
    demo.set_defaults(handler=cmd_demo)

    report = commands.add_parser(
        "report", help="write the HTML report: every learn block's history in charts",
        description="Write one self-contained HTML file (opens offline: scripts, styles and data "
                    "inline) with an overview table and, per learn block, charts over its "
                    "snapshots: accuracy per model type; latency, RAM and ROM per target and "
                    "engine with the budget lines; flipped windows.",
    )
    report.add_argument("--out", default=None, metavar="FILE",
                        help=f"where to write it; its folder is created (default "
                             f"EI_DATA_DIR/{REPORT_PATH})")
    report.set_defaults(handler=cmd_report)

    rebuild = commands.add_parser(
        "rebuild", help="regenerate the lake and the warehouse from the raw archive",
        description="Delete EI_DATA_DIR/lake and the warehouse tables, then flatten every "
                    "archived response again and reload. Use after a schema change.",
    )
    rebuild.set_defaults(handler=cmd_rebuild)
    return parser


def cmd_simulate(args: argparse.Namespace) -> int:
    from ei_assets.simulator import Simulator

    plan = FaultPlan(seed=args.seed, rates=dict(args.fault), retry_after=args.retry_after,
                     slow_seconds=args.slow_seconds, latency_seconds=args.latency)
    sim = Simulator(world_config(args), plan, host=args.host, port=args.port,
                    retrain_every=args.retrain_every)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with sim:
        print(f"Edge Impulse Studio simulator on {sim.url}")
        print(f"  export EI_API_URL={sim.url}")
        print(f"  export EI_API_KEY={','.join(sim.api_keys)}")
        for project in sim.world.projects.values():
            blocks = ", ".join(
                f"{b.learn_id}:{b.block_type}" for i in project.impulses for b in i.blocks
            )
            print(f"  project {project.id} {project.name!r}: {blocks}")
        control = sim.url.removesuffix("/v1") + "/_sim"
        first = next(iter(sim.world.projects))
        print(f"Retrain: curl -X POST {control}/retrain -d '{{\"projectId\": {first}}}'")
        print("Press Ctrl-C to stop.", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    print("simulator stopped")
    return EXIT_OK


def _existing_warehouse() -> DataDir:
    """The data dir of a command that only reads: nothing is created, and the warehouse must be
    there already."""
    from ei_assets.pipeline.data_dir import DataDir

    data = DataDir.open(os.environ.get("EI_DATA_DIR"), lock_timeout=10.0, writable=False,
                        warehouse=os.environ.get("EI_WAREHOUSE"))
    if not data.warehouse.exists():
        raise ConfigError(f"no warehouse yet at {data.warehouse.location}; run `ei-assets refresh` "
                          "(or `ei-assets demo`) first")
    return data


def cmd_sql(args: argparse.Namespace) -> int:
    import duckdb

    from ei_assets.warehouse import ReadOnlyQueryError

    data = _existing_warehouse()
    try:
        if args.format == "csv":
            print_csv(data.warehouse.query(args.query))
        else:
            data.warehouse.show(args.query, args.max_rows)
    except ReadOnlyQueryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except duckdb.Error as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_PARTIAL
    return EXIT_OK


def print_csv(table: pa.Table) -> None:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    sink = pa.BufferOutputStream()
    pacsv.write_csv(table, sink)
    sys.stdout.write(sink.getvalue().to_pybytes().decode())


def _show_progress() -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("  %(message)s"))
    progress.addHandler(handler)
    progress.setLevel(logging.INFO)
    progress.propagate = False


def _refresh(resources: dict[str, Any], blocks: list[str], keys: int, api_url: str,
             home: str | None = None, verbose: bool = False, projects: list[int] | None = None,
             full: bool = False) -> int:
    """Run the refresh job and tell people, once and briefly, what happened and what to do."""
    from ei_assets.dagster.names import InstanceNames
    from ei_assets.dagster.run import instance_for_cli, run_refresh
    from ei_assets.pipeline.refresh import STATUSES

    started = time.monotonic()
    outcome = run_refresh(resources, instance_for_cli(home), blocks, verbose=verbose,
                          projects=projects, full=full)
    report = outcome.report
    took = f"{time.monotonic() - started:.1f}s"
    if report is None:  # the refresh step failed before it could report: settings, say
        errors = outcome.step_errors or ["the refresh run failed"]
        print(f"refresh failed after {took} (run {outcome.run_id[:8]}):")
        print("\n".join(f"  error: {error}" for error in errors))
        print("Fix the setting named above and run `ei-assets refresh` again"
              + ("." if verbose else " (add -v for details)."))
        return EXIT_CONFIG if any(": EI_" in e for e in errors) else EXIT_PARTIAL
    counts = report.counts()
    refused_loads = outcome.load.failed if outcome.load else []
    # a block whose snapshot the warehouse refused in this run failed, whatever the fetch said
    refused_blocks = {(f.project_id, f.learn_id) for f in refused_loads}
    for block in report.blocks:
        if block.status in ("refreshed", "unchanged", "not_modified") and \
                (block.block.project_id, block.block.learn_id) in refused_blocks:
            counts[block.status] -= 1
            counts["failed"] += 1
    summary = ", ".join(f"{counts[status]} {status}" for status in STATUSES)
    problems = report.discovery.errors
    refused = [p for p in problems if p.refused]
    keys_note = f"; {len(refused)} of {keys} API keys refused" if refused else ""
    print(f"done in {took}: {summary}{keys_note} (run {outcome.run_id[:8]})")
    lines = [f"  failed: {b.describe()}" for b in report.with_status("failed")]
    lines += [f"  failed: {failure.describe()}" for failure in refused_loads]
    lines += [f"  error: {problem}" for problem in problems]
    refresh_step = f"{InstanceNames().refresh_op}:"  # its failure is the report's, listed above
    lines += [f"  error: {e}" for e in outcome.step_errors if not e.startswith(refresh_step)]
    lines += [f"  warning: {error}" for error in report.constraint_errors]
    lines += [f"  warning: {error}" for error in report.signal_errors]
    if report.signal_missed:
        missed = ", ".join(report.signal_missed)
        lines.append("  warning: Studio's change signal missed a change (a new snapshot although the "
                     f"project's date had not moved; this fetch caught it): {missed}")
    unsupported = report.with_status("unsupported")
    if unsupported:
        lines.append(f"  unsupported (no metadata endpoint is known for the type; not fetched, not "
                     f"an error): {', '.join(b.describe() for b in unsupported)}")
    if lines:
        print("\n".join(lines))
    if not report.discovery.keys_by_project:
        if problems and len(refused) == len(problems):
            print("Every key in EI_API_KEY was refused: copy current keys from Studio (your project > "
                  "Dashboard > Keys) into EI_API_KEY, then run `ei-assets refresh` again.")
            return EXIT_CONFIG
        print(f"No project could be read from {api_url}: check EI_API_URL and the network, then "
              "run `ei-assets refresh` again.")
        return EXIT_PARTIAL
    if any(line.startswith(("  failed:", "  error:")) for line in lines):
        print("Fix or wait out the failures above and run `ei-assets refresh` again: "
              "blocks already saved are not fetched twice.")
    return EXIT_OK if outcome.all_refreshed else EXIT_PARTIAL


def cmd_refresh(args: argparse.Namespace) -> int:
    from ei_assets.dagster.definitions import settings_resources

    _show_progress()
    settings = Settings.from_env()  # fails fast, with exit 2, on a bad variable
    print(f"refreshing {len(settings.api_keys)} API key(s) from {settings.api_url} "
          f"into {settings.data_dir}")
    return _refresh(settings_resources(), args.block, len(settings.api_keys), settings.api_url,
                    verbose=args.verbose, projects=args.project, full=args.full)


def cmd_demo(args: argparse.Namespace) -> int:
    from ei_assets.dagster.resources import DataDirResource, StudioResource
    from ei_assets.dagster.run import ensure_instance_home
    from ei_assets.pipeline.data_dir import DataDir
    from ei_assets.simulator import Simulator
    from ei_assets.warehouse.queries import LATEST_DEFAULT_TARGET_COMPARISON

    _show_progress()
    data_dir = os.path.abspath(os.environ.get("EI_DATA_DIR") or DEFAULT_DATA_DIR)
    data = DataDir.open(data_dir)  # checks the folder before the simulator starts
    home = ensure_instance_home(os.environ.get("DAGSTER_HOME") or os.path.join(data_dir, "dagster_home"))
    with Simulator(WorldConfig(seed=args.seed, profiling_seconds=0.0)) as sim:
        resources = {"studio": StudioResource(api_key=",".join(sim.api_keys), api_url=sim.url),
                     "data_dir": DataDirResource(data_dir=data_dir)}
        blocks = len(sim.world.blocks())
        print(f"Studio simulator on {sim.url}: {len(sim.world.projects)} projects, "
              f"{blocks} learn blocks; data in {data_dir}")
        print("\n== refresh 1 of 2")
        first = _refresh(resources, [], len(sim.api_keys), sim.url, home)
        retrained = sim.world.retrain_matching()
        print(f"\n== the simulator retrained {len(retrained)} learn blocks; refresh 2 of 2")
        second = _refresh(resources, [], len(sim.api_keys), sim.url, home)
    print("\n== int8 against float32 (and other model types) at each block's default target, "
          "latest models (ratios: model type / float32)")
    with data.warehouse.reader() as reader:
        reader.show(LATEST_DEFAULT_TARGET_COMPARISON, max_rows=200)
        regressions = reader.query(
            "SELECT count(*) AS n FROM model_type_trend WHERE is_regression").column("n")[0].as_py()
    prog = "ei-assets" if shutil.which("ei-assets") else ".venv/bin/ei-assets"
    print(f"\n{regressions} regressed rows after the retrain: "
          f'{prog} sql "SELECT * FROM model_type_trend WHERE is_regression"')
    path, _ = _write_report(data, None)
    print(f"\nThe history in charts: {path}")
    print(f'Explore: {prog} sql "SELECT * FROM prediction_disagreements LIMIT 20"; '
          "the Dagster UI with these runs: make dev")
    return max(first, second)


def _write_report(data: DataDir, out: str | None) -> tuple[str, int]:
    """The report at `out`, or EI_DATA_DIR's; returns where, and how many learn blocks."""
    import pyarrow.fs as pafs

    from ei_assets.report import write_report

    if out is None:
        filesystem, path = data.store.filesystem, data.report_path
    else:
        filesystem, path = pafs.LocalFileSystem(), os.path.abspath(out)
    return path, len(write_report(data.warehouse, filesystem, path))


def cmd_report(args: argparse.Namespace) -> int:
    path, blocks = _write_report(_existing_warehouse(), args.out)
    print(f"report of {blocks} learn blocks: {path}")
    return EXIT_OK


def cmd_rebuild(args: argparse.Namespace) -> int:
    from ei_assets.pipeline.data_dir import DataDir
    from ei_assets.pipeline.rebuild import rebuild

    data = DataDir.open(os.environ.get("EI_DATA_DIR"), warehouse=os.environ.get("EI_WAREHOUSE"))

    def progress(done: int, total: int) -> None:
        if done == total or done % 50 == 0:
            print(f"  flattened {done}/{total} archived snapshots", flush=True)

    print(f"rebuilding {data.store.lake.root} and {data.warehouse.location} from {data.store.raw.root}")
    report = rebuild(data.store, data.warehouse, progress)
    for failure in report.failed:
        print(f"  failed: {failure}")
    rows = report.load.rows if report.load else {}
    print(f"rebuilt {report.snapshots} snapshots ({len(report.failed)} failed); "
          f"{rows.get('predictions', 0)} predictions, {rows.get('fetch_log', 0)} fetches loaded")
    return EXIT_PARTIAL if report.failed else EXIT_OK


def _is_busy(exc: Exception) -> bool:
    """The warehouse is being written: a clear message of its own, no traceback. (Its module is
    loaded only by commands that open the warehouse.)"""
    warehouse = sys.modules.get("ei_assets.warehouse")
    return warehouse is not None and isinstance(exc, warehouse.WarehouseBusyError)


def main(argv: Sequence[str] | None = None) -> int:
    tune_process()  # this process is ours to tune; a host's is not (see ei_assets.memory)
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        return int(args.handler(args))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except Exception as exc:  # anything else: one line for people, the traceback with -v
        if _is_busy(exc):
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_PARTIAL
        if args.verbose:
            raise
        first = (str(exc).strip().splitlines() or [""])[0]
        print(f"error: {type(exc).__name__}: {first} (run with -v for details)", file=sys.stderr)
        return EXIT_PARTIAL


def run() -> NoReturn:
    """The console script: `main`, then out at once. Every file is closed and every thread
    joined by then, and the streams are flushed here; what is skipped is the interpreter's
    teardown of Dagster's and the other libraries' modules, which does nothing useful."""
    code = main()
    logging.shutdown()
    with contextlib.suppress(OSError, ValueError):  # a closed or broken pipe: nothing to flush to
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
