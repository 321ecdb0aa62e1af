"""Change detection (contract section 6), as a user runs it: `ei-assets refresh` against the
simulator over real HTTP, in both warehouse modes. A project Studio says did not change is not
downloaded; a retrain fetches only its project; a change the signal missed is caught by
EI_VERIFY_EVERY=0 or --full and named; pending profiling is fetched without a signal; a failing
or dateless answer means fetching as before; a bad EI_VERIFY_EVERY is named."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ei_assets.pipeline.data_dir import DataDir
from ei_assets.simulator import FaultPlan, Simulator, WorldConfig
from tests.test_cli import ei

pytestmark = pytest.mark.slow


@dataclass
class Mode:
    """Where a refresh writes: the environment it runs with, and the data dir to look in."""

    env: dict[str, str]

    def data(self, monkeypatch: pytest.MonkeyPatch) -> DataDir:
        for name, value in self.env.items():
            if name.startswith("AWS_"):
                monkeypatch.setenv(name, value)
        return DataDir.open(self.env["EI_DATA_DIR"], warehouse=self.env.get("EI_WAREHOUSE"),
                            writable=False)


@pytest.fixture(params=["duckdb", "ducklake"])
def mode(request: pytest.FixtureRequest, tmp_path: Path) -> Mode:
    if request.param == "duckdb":
        return Mode({"EI_DATA_DIR": str(tmp_path / "data")})
    s3, pg, createdb = request.getfixturevalue("scale_servers")
    name = f"cd{uuid.uuid4().hex[:10]}"
    s3.create_bucket(name)
    createdb(name)
    return Mode({**s3.env, "EI_DATA_DIR": f"s3://{name}/ei",
                 "EI_WAREHOUSE": "ducklake:postgres:" + pg.conninfo(name)})


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(WorldConfig(profiling_seconds=0.0, predictions=20), FaultPlan(seed=5)) as simulator:
        yield simulator


def refresh(sim: Simulator, mode: Mode, tmp_path: Path, *args: str, **env: str) -> tuple[str, list[str]]:
    """`ei-assets refresh`; returns what it printed and the Studio paths it asked for."""
    sim.stats.reset()
    result = ei(["refresh", *args], {"EI_API_URL": sim.url, "EI_API_KEY": ",".join(sim.api_keys),
                                     **mode.env, **env}, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout, [r.path for r in sim.stats.requests]


def metadata(paths: list[str]) -> list[str]:
    return [p for p in paths if "/training/" in p]


def blocks(sim: Simulator) -> int:
    return len(sim.world.blocks())


def fetch_log(data: DataDir, since_outcome: str = "not_modified") -> list[dict[str, Any]]:
    return data.warehouse.query(
        "SELECT project_id, learn_id, endpoint, http_status, ok, bytes, changed, snapshot_id, outcome "
        "FROM fetch_log WHERE outcome = ? ORDER BY fetched_at, project_id, learn_id",
        [since_outcome]).to_pylist()


def test_an_unchanged_world_makes_no_metadata_request(
        sim: Simulator, mode: Mode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, _ = refresh(sim, mode, tmp_path)
    assert f"{blocks(sim)} refreshed" in first
    second, paths = refresh(sim, mode, tmp_path)
    assert f"0 refreshed, 0 unchanged, 0 failed, 0 unsupported, {blocks(sim)} not_modified" in second
    assert metadata(paths) == []
    assert sorted(p.split("/")[3] for p in paths if p.endswith("/last-modification")) == \
        sorted(str(p) for p in sim.world.projects)
    assert "project 100001: not modified since" in second
    data = mode.data(monkeypatch)
    rows = fetch_log(data)
    current = {(r["project_id"], r["learn_id"]): r["snapshot_id"] for r in data.warehouse.query(
        "SELECT project_id, learn_id, snapshot_id FROM latest_snapshots").to_pylist()}
    assert len(rows) == blocks(sim)
    for row in rows:
        assert (row["http_status"], row["ok"], row["bytes"], row["changed"]) == (None, True, 0, False)
        assert row["snapshot_id"] == current[(row["project_id"], row["learn_id"])]
    assert data.warehouse.query("SELECT count(*) AS n FROM snapshots").to_pylist() == [{"n": blocks(sim)}]


def test_a_retrain_in_one_project_fetches_only_that_project(
        sim: Simulator, mode: Mode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    refresh(sim, mode, tmp_path)
    sim.world.retrain(100002, 3)
    out, paths = refresh(sim, mode, tmp_path)
    fetched = metadata(paths)
    assert fetched and all("/api/100002/" in p for p in fetched)
    others = sum(p.id != 100002 for p, _ in sim.world.blocks())
    assert f"1 refreshed, 1 unchanged, 0 failed, 0 unsupported, {others} not_modified" in out
    assert "missed" not in out


def test_a_change_the_signal_missed_is_caught_by_a_full_fetch_and_named(
        sim: Simulator, mode: Mode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    refresh(sim, mode, tmp_path)
    sim.world.retrain(100001, 3, signal=False)  # Studio's date does not move
    quiet, paths = refresh(sim, mode, tmp_path)
    assert metadata(paths) == [] and "missed" not in quiet  # within EI_VERIFY_EVERY: not seen yet
    caught, paths = refresh(sim, mode, tmp_path, EI_VERIFY_EVERY="0")
    assert len(metadata(paths)) == blocks(sim) + 1  # every block (the GMM block twice)
    assert "1 refreshed" in caught
    assert ("warning: Studio's change signal missed a change (a new snapshot although the project's "
            "date had not moved; this fetch caught it): 100001-3") in caught
    sim.world.retrain(100002, 6, signal=False)
    full, paths = refresh(sim, mode, tmp_path, "--full")
    assert len(metadata(paths)) == blocks(sim) + 1 and "caught it): 100002-6" in full
    after, paths = refresh(sim, mode, tmp_path)
    assert metadata(paths) == [] and "missed" not in after


def test_pending_profiling_is_fetched_again_without_a_signal(tmp_path: Path) -> None:
    mode = Mode({"EI_DATA_DIR": str(tmp_path / "data")})
    with Simulator(WorldConfig(profiling_seconds=3600.0, predictions=20)) as sim:
        refresh(sim, mode, tmp_path)
        sim.world.retrain(100003, 6)  # profiling pending until told
        out, paths = refresh(sim, mode, tmp_path)
        assert "1 refreshed" in out and all("/api/100003/" in p for p in metadata(paths))
        sim.world.finish_profiling(100003, 6)  # does not move the project's date
        out, paths = refresh(sim, mode, tmp_path)
        assert {p for p in metadata(paths)} == {"/v1/api/100003/training/keras/3/metadata",
                                                "/v1/api/100003/training/keras/6/metadata"}
        assert "1 refreshed, 1 unchanged" in out and "missed" not in out
        out, paths = refresh(sim, mode, tmp_path)
        assert metadata(paths) == []


@pytest.mark.parametrize("fault", ["500", "dateless"])
def test_a_failing_or_dateless_answer_means_fetching_as_before(
        sim: Simulator, tmp_path: Path, fault: str) -> None:
    mode = Mode({"EI_DATA_DIR": str(tmp_path / "data")})
    refresh(sim, mode, tmp_path)
    sim.faults.script(r"/100001/last-modification$", [fault] * 20)
    out, paths = refresh(sim, mode, tmp_path)
    fetched = metadata(paths)
    assert fetched and all("/api/100001/" in p for p in fetched)
    project_blocks = sum(p.id == 100001 for p, _ in sim.world.blocks())
    assert f"0 refreshed, {project_blocks} unchanged" in out
    if fault == "500":
        assert "warning: project 100001, last-modification: " in out and "its blocks are fetched" in out


def test_a_bad_verify_every_exits_2_with_one_line(tmp_path: Path) -> None:
    result = ei(["refresh"], {"EI_API_KEY": "ei_unused", "EI_VERIFY_EVERY": "weekly",
                              "EI_DATA_DIR": str(tmp_path / "data")}, tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: EI_VERIFY_EVERY: 'weekly' is not a duration; use a number and a unit, e.g. 7d, 12h, "
        "30m, 90s, or 0 to fetch every block on every refresh"]
