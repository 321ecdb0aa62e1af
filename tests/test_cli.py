"""The `ei-assets` command as a user runs it: demo into an empty data dir, refresh exit codes,
configuration errors, and no key in anything printed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from ei_assets.simulator import FaultPlan, Simulator, WorldConfig

pytestmark = pytest.mark.slow


def ei(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("EI_", "DAGSTER_HOME"))}
    return subprocess.run([sys.executable, "-m", "ei_assets.cli", *args], env=base | env,
                          cwd=cwd, capture_output=True, text=True, timeout=300)


def test_demo_into_an_empty_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "fresh"
    result = ei(["demo"], {"EI_DATA_DIR": str(data)}, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "refresh 1 of 2" in out and "refresh 2 of 2" in out
    assert out.count("8 refreshed, 0 unchanged, 0 failed") == 2
    assert "int8 against float32" in out and "cortex-m4f-80mhz" in out
    assert result.stderr.strip() == ""
    con = duckdb.connect(str(data / "ei.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM snapshots").fetchone() == (16,)
    assert con.execute("SELECT count(DISTINCT snapshot_id) FROM model_type_trend "
                       "WHERE previous_snapshot_id IS NOT NULL").fetchone()[0] > 0
    con.close()
    assert (data / "dagster_home" / "dagster.yaml").exists()  # the instance `make dev` opens
    # every line printed once
    lines = [line for line in out.splitlines() if line.strip().startswith("[")]
    assert len(lines) == len(set(lines)) == 16


def test_refresh_with_a_failing_block_exits_1_and_keeps_the_others(tmp_path: Path) -> None:
    with Simulator(WorldConfig(profiling_seconds=0.0), FaultPlan(seed=3)) as sim:
        sim.faults.script(r"/100001/training/anomaly/4/metadata$", ["500"] * 100)
        env = {"EI_API_URL": sim.url, "EI_API_KEY": ",".join(sim.api_keys),
               "EI_DATA_DIR": str(tmp_path / "data")}
        result = ei(["refresh"], env, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "7 refreshed, 0 unchanged, 1 failed" in result.stdout
    # no DAGSTER_HOME: the run's instance knew no block before it, so none is called new
    assert "discovered 8 learn blocks in 3 projects (0 errors)" in result.stdout, result.stdout
    assert "failed: 100001-4: project 100001, learn block 4, anomaly: gave up after 5 attempts" \
        in result.stdout
    for key in sim.api_keys:
        assert key not in result.stdout + result.stderr
    con = duckdb.connect(str(tmp_path / "data" / "ei.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM snapshots").fetchone() == (7,)
    con.close()


def test_refresh_then_again_is_idempotent_and_exits_0(tmp_path: Path) -> None:
    with Simulator(WorldConfig(profiling_seconds=0.0)) as sim:
        env = {"EI_API_URL": sim.url, "EI_API_KEY": ",".join(sim.api_keys),
               "EI_DATA_DIR": str(tmp_path / "data"), "DAGSTER_HOME": str(tmp_path / "home")}
        (tmp_path / "home").mkdir()
        first = ei(["refresh"], env, tmp_path)
        second = ei(["refresh", "--block", "100001-3"], env, tmp_path)
    assert first.returncode == 0 and second.returncode == 0, first.stdout + second.stdout
    assert "0 refreshed, 1 unchanged, 0 failed" in second.stdout
    assert "learn blocks in 3 projects (8 new, 0 gone, 0 errors)" in first.stdout, first.stdout
    assert "learn blocks in 3 projects (0 new, 0 gone, 0 errors)" in second.stdout, second.stdout
    runs = list((tmp_path / "home").rglob("*.db"))
    assert runs, "runs are recorded in DAGSTER_HOME"


def test_a_refused_key_among_good_ones_exits_1_and_says_which(tmp_path: Path) -> None:
    with Simulator(WorldConfig(profiling_seconds=0.0)) as sim:
        env = {"EI_API_URL": sim.url, "EI_API_KEY": ",".join([*sim.api_keys, "ei_revoked"]),
               "EI_DATA_DIR": str(tmp_path / "data")}
        result = ei(["refresh"], env, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "8 refreshed, 0 unchanged, 0 failed" in result.stdout
    assert "error: EI_API_KEY #4: projects: HTTP 401: the API key was refused" in result.stdout
    assert "1 of 4 API keys refused" in result.stdout
    assert "ei_revoked" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"EI_API_KEY": " , "}, "EI_API_KEY"),
        ({"EI_API_KEY": "ei_x", "EI_API_URL": "ftp://studio"}, "EI_API_URL"),
        ({"EI_API_KEY": "ei_x", "EI_MAX_CONCURRENCY": "many"}, "EI_MAX_CONCURRENCY"),
        ({"EI_API_KEY": "ei_x", "EI_DATA_DIR": "/proc/ei-assets-cannot-write-here"}, "EI_DATA_DIR"),
    ],
)
def test_configuration_errors_exit_2_with_one_line_naming_the_variable(
    env: dict[str, str], variable: str, tmp_path: Path
) -> None:
    env.setdefault("EI_DATA_DIR", str(tmp_path / "data"))
    result = ei(["refresh"], env, tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {variable}:")
    assert "ei_x" not in result.stderr


def test_help_lists_every_command() -> None:
    result = subprocess.run([sys.executable, "-m", "ei_assets.cli", "--help"], capture_output=True,
                            text=True, timeout=60)
    for command in ("refresh", "simulate", "demo", "sql", "rebuild"):
        assert command in result.stdout
    for variable in ("EI_API_KEY", "EI_API_URL", "EI_DATA_DIR", "EI_MAX_CONCURRENCY"):
        assert variable in result.stdout
