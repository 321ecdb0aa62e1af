"""The Dagster UI as `make dev` starts it (python -m ei_assets.dev: dagster dev, webserver and
daemon, on loopback), driven through its GraphQL API: assets, checks, schedule and sensors are
there, and a refresh launched through it succeeds."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).parent.parent
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ui(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`make dev` without EI_API_KEY: the UI on its own simulator. Yields the GraphQL URL and the
    file with what it printed."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EI_", "DAGSTER_HOME"))}
    env |= {"EI_DATA_DIR": str(tmp_path / "data"), "EI_UI_PORT": str(port),
            "SIM_PORT": str(free_port())}
    printed = tmp_path / "dagster-dev.log"
    log = open(printed, "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen([sys.executable, "-m", "ei_assets.dev"], cwd=ROOT, env=env,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/graphql"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, printed.read_text()[-3000:]
            try:
                if "RepositoryConnection" in str(gql(url, REPOSITORIES)):
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the Dagster UI did not come up in 180s"
            time.sleep(1)
        yield url, printed
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


def gql(url: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    response = httpx.post(url, json={"query": query, "variables": variables or {}}, timeout=30)
    response.raise_for_status()
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


REPOSITORIES = """
{ repositoriesOrError { __typename ... on RepositoryConnection { nodes {
    name location { name }
    schedules { name scheduleState { status } }
    sensors { name sensorState { status } }
} } } }
"""

ASSETS = """
{ assetNodes { assetKey { path } groupName
  assetChecksOrError { ... on AssetChecks { checks { name } } } } }
"""

LAUNCH = """
mutation Launch($params: ExecutionParams!) { launchRun(executionParams: $params) {
  __typename
  ... on LaunchRunSuccess { run { runId } }
  ... on PythonError { message }
  ... on RunConfigValidationInvalid { errors { message } }
  ... on InvalidSubsetError { message }
} }
"""

RUN = """query Run($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status } } }"""


def test_ui_lists_everything_and_runs_a_refresh(ui: tuple[str, Path]) -> None:
    ui, printed = ui
    said = printed.read_text()
    assert "export EI_API_URL=http://127.0.0.1:" in said and "export EI_API_KEY=ei_" in said
    (repo,) = gql(ui, REPOSITORIES)["repositoriesOrError"]["nodes"]
    assert repo["location"]["name"] == "ei_assets"
    # on the simulator, dev_refresh is on too, so the history grows while you watch
    assert {s["name"]: s["scheduleState"]["status"] for s in repo["schedules"]} == {
        "hourly_refresh": "RUNNING", "dev_refresh": "RUNNING", "hourly_refresh_by_project": "STOPPED"}
    assert {s["name"] for s in repo["sensors"]} == {"learn_block_partitions_sensor",
                                                    "profiling_pending_sensor"}
    nodes = gql(ui, ASSETS)["assetNodes"]
    keys = {"/".join(n["assetKey"]["path"]): n for n in nodes}
    for key in ("learn_blocks", "metadata_snapshots", "learn_block_metadata", "lake/predictions",
                "warehouse/snapshots", "warehouse/model_type_comparison",
                "warehouse/model_type_trend", "warehouse/prediction_disagreements"):
        assert key in keys, key
    checks = {c["name"] for n in nodes for c in (n["assetChecksOrError"] or {}).get("checks", [])}
    assert {"all_blocks_refreshed", "int8_accuracy_drop", "no_regression", "profiling_complete",
            "default_target_complete", "equal_prediction_counts"} <= checks
    assert [g for g in ("studio_api", "raw_archive", "lake", "warehouse", "comparisons")
            if g in {n["groupName"] for n in nodes}] == [
        "studio_api", "raw_archive", "lake", "warehouse", "comparisons"]

    launched = gql(ui, LAUNCH, {"params": {
        "selector": {"repositoryLocationName": "ei_assets", "repositoryName": repo["name"],
                     "jobName": "refresh"},
        "runConfigData": {},
    }})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    deadline = time.monotonic() + 240
    status = None
    while time.monotonic() < deadline:
        status = gql(ui, RUN, {"id": run_id})["runOrError"]["status"]
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(2)
    assert status == "SUCCESS"
