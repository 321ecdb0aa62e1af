"""What a deployment does every week, done for real: `ei-assets refresh` killed with SIGKILL at
random moments, refreshes started together on a new DAGSTER_HOME, and the few lines people read
when the API cannot be reached or refuses every key."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest

from ei_assets.schema import SNAPSHOT_TABLES
from ei_assets.simulator import FaultPlan, Simulator, WorldConfig

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parent.parent
# What a clean refresh and a refresh after kills must agree on: every row of every snapshot table.
# The run logs (fetches, discoveries, target constraints) grow with every run by nature.
COMPARED = SNAPSHOT_TABLES


def env_for(sim: Simulator, data: Path, home: Path | None = None) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("EI_", "DAGSTER_HOME"))}
    extra = {"EI_API_URL": sim.url, "EI_API_KEY": ",".join(sim.api_keys), "EI_DATA_DIR": str(data),
             "PYTHONFAULTHANDLER": "1"}
    if home is not None:
        extra["DAGSTER_HOME"] = str(home)
    return base | extra


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "ei_assets.cli", *args], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def ei(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ei_assets.cli", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def tables(data: Path) -> dict[str, list[tuple[Any, ...]]]:
    con = duckdb.connect(str(data / "ei.duckdb"), read_only=True)
    try:
        out = {}
        for table in COMPARED:
            columns = [c for (c,) in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
                "AND column_name NOT IN ('fetched_at', 'first_fetched_at', 'last_fetched_at')",
                [table]).fetchall()]
            select = ", ".join(f'"{c}"' for c in columns)
            out[table] = sorted(con.execute(f'SELECT {select} FROM "{table}"').fetchall(), key=repr)
        return out
    finally:
        con.close()


def test_twelve_kills_at_random_moments_never_block_the_next_refresh(tmp_path: Path) -> None:
    rng = random.Random(12)
    home = tmp_path / "home"
    with Simulator(WorldConfig(profiling_seconds=0.0, predictions=300),
                   FaultPlan(latency_seconds=0.05)) as sim:
        clean = tmp_path / "clean"
        started = time.monotonic()
        first = ei(["refresh"], env_for(sim, clean))
        clean_seconds = time.monotonic() - started
        assert first.returncode == 0, first.stdout + first.stderr
        env = env_for(sim, tmp_path / "killed", home)
        for _ in range(12):
            # its own process group, killed whole, as a pod eviction or the OOM killer of a
            # container does: Dagster's compute-log helper processes die with it
            process = subprocess.Popen([sys.executable, "-m", "ei_assets.cli", "refresh"], env=env,
                                       cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                       start_new_session=True)
            time.sleep(rng.uniform(0.0, clean_seconds))  # anywhere from start-up to the last write
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            assert process.wait(timeout=120) in (-signal.SIGKILL, 0, 1), process.returncode
        after = ei(["refresh"], env)
    assert after.returncode == 0, after.stdout + after.stderr
    assert "Traceback" not in after.stderr
    assert tables(tmp_path / "killed") == tables(clean)
    import dagster as dg

    runs = dg.DagsterInstance.from_config(str(home)).get_runs()
    assert runs and not [r.run_id for r in runs if not r.is_finished]  # the killed ones reaped


def test_refreshes_started_together_on_a_new_instance_lose_nothing(tmp_path: Path) -> None:
    with Simulator(WorldConfig(profiling_seconds=0.0, predictions=200)) as sim:
        env = env_for(sim, tmp_path / "data", tmp_path / "home")
        processes = [start(["refresh"], env) for _ in range(3)]
        outputs = [p.communicate(timeout=600) for p in processes]
        codes = [p.returncode for p in processes]
        clean = tmp_path / "clean"
        assert ei(["refresh"], env_for(sim, clean)).returncode == 0
        again = ei(["refresh", "--full"], env)
    assert codes == [0, 0, 0], outputs
    for _, stderr in outputs:
        assert "Traceback" not in stderr and "Fatal Python error" not in stderr
    assert again.returncode == 0, again.stdout + again.stderr
    assert "0 refreshed, 8 unchanged, 0 failed" in again.stdout
    assert tables(tmp_path / "data") == tables(clean)
    con = duckdb.connect(str(tmp_path / "data" / "ei.duckdb"), read_only=True)
    # each run logs each block once by its first endpoint, fetched or not modified (a run that
    # starts after another finished a project skips it: both are counted)
    assert con.execute("SELECT count(*) FROM fetch_log WHERE endpoint <> 'gmm'").fetchone() == (4 * 8,)
    con.close()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_unreachable_api_says_so_in_a_few_lines(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EI_", "DAGSTER_HOME"))}
    env |= {"EI_API_URL": f"http://127.0.0.1:{closed_port()}/v1", "EI_API_KEY": "ei_one,ei_two",
            "EI_DATA_DIR": str(tmp_path / "data")}
    result = ei(["refresh"], env)
    assert result.returncode == 1
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) <= 5, lines
    assert "Traceback" not in result.stdout + result.stderr
    assert "EI_API_KEY #1" in result.stdout and "connection failed" in result.stdout
    assert "check EI_API_URL" in lines[-1]
    assert "ei_one" not in result.stdout + result.stderr


def test_every_key_refused_exits_2_naming_the_key_by_position(tmp_path: Path) -> None:
    with Simulator(WorldConfig(profiling_seconds=0.0)) as sim:
        env = env_for(sim, tmp_path / "data") | {"EI_API_KEY": "ei_revoked_key"}
        result = ei(["refresh"], env)
        verbose = ei(["-v", "refresh"], env)
    assert result.returncode == 2
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) <= 5, lines
    assert "Traceback" not in result.stdout + result.stderr
    assert "EI_API_KEY #1: projects: HTTP 401" in result.stdout
    assert "Every key in EI_API_KEY was refused" in lines[-1]
    assert "ei_revoked_key" not in result.stdout + result.stderr
    assert verbose.returncode == 2 and len(verbose.stderr.splitlines()) > len(lines)  # details with -v


def test_a_killed_run_holding_a_pool_slot_is_reaped_by_the_next_refresh(tmp_path: Path) -> None:
    """An instance with a warehouse pool limit (as earlier versions wrote it), and a run whose
    process died while it held the slot: the next `ei-assets refresh` marks it failed and frees
    the slot, so the refresh runs instead of waiting forever."""
    import dagster as dg

    from ei_assets.dagster.names import WAREHOUSE_POOL
    from ei_assets.dagster.process_lock import process_identity
    from ei_assets.dagster.run import PROCESS_TAG, instance_for_cli

    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("concurrency:\n  pools:\n    default_limit: 1\n")
    dead = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    identity = process_identity(dead.pid)
    instance = dg.DagsterInstance.from_config(str(home))
    run = instance.create_run_for_job(dg.GraphDefinition("refresh").to_job(),
                                      tags={PROCESS_TAG: identity})
    instance.run_storage.handle_run_event(run.run_id, dg.DagsterEvent(  # the run started
        event_type_value=dg.DagsterEventType.RUN_START.value, job_name="refresh"))
    instance.event_log_storage.initialize_concurrency_limit_to_default(WAREHOUSE_POOL)
    claim = instance.event_log_storage.claim_concurrency_slot(WAREHOUSE_POOL, run.run_id, "load")
    assert claim.is_claimed
    dead.kill()
    dead.wait()

    reaped = instance_for_cli(str(home))
    assert reaped.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
    info = reaped.event_log_storage.get_concurrency_info(WAREHOUSE_POOL)
    assert info.active_slot_count == 0
    with Simulator(WorldConfig(profiling_seconds=0.0, predictions=50)) as sim:
        result = ei(["refresh"], env_for(sim, tmp_path / "data", home))
    assert result.returncode == 0, result.stdout + result.stderr
