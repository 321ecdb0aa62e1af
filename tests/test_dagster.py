"""The Dagster layer, in-process: the refresh job against the simulator over real HTTP with a
persistent temporary instance; per-block materializations, checks, sensors and the schedule."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from ei_assets.dagster.automation import refresh_run_config
from ei_assets.dagster.definitions import settings_resources
from ei_assets.dagster.names import InstanceNames
from ei_assets.dagster.resources import DataDirResource, ResultSink, StudioResource
from ei_assets.dagster.run import RunOutcome, run_refresh
from ei_assets.definitions import build_definitions
from ei_assets.pipeline.data_dir import DataDir
from ei_assets.schema import PUBLIC_VIEWS, WAREHOUSE_TABLES
from ei_assets.simulator import FaultPlan, Simulator, WorldConfig


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(WorldConfig(profiling_seconds=0.0), FaultPlan(seed=1)) as simulator:
        yield simulator


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as test_instance:  # as instance.yaml: no pool limit
        yield test_instance


def resources(sim: Simulator, data_dir: Path, **data_options: float) -> dict:
    return {
        "studio": StudioResource(api_key=",".join(sim.api_keys), api_url=sim.url, max_concurrency=3,
                                 timeout_seconds=5.0, max_attempts=3, backoff_seconds=0.01),
        "data_dir": DataDirResource(data_dir=str(data_dir), **data_options),
    }


def materializations(instance: dg.DagsterInstance, key: dg.AssetKey | str, partition: str | None = None
                     ) -> list[dg.AssetMaterialization]:
    asset_key = dg.AssetKey.from_coercible(key)
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=[partition] if partition else None),
        limit=1000,
    ).records
    return [r.asset_materialization for r in records if r.asset_materialization]


def counts(outcome: RunOutcome) -> dict[str, int]:
    assert outcome.report is not None, outcome.step_errors
    return dict(outcome.report.counts())


def check_results(instance: dg.DagsterInstance, run_id: str) -> dict[str, dg.AssetCheckEvaluation]:
    out = {}
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = record.dagster_event.event_specific_data  # type: ignore[union-attr]
        out[evaluation.check_name] = evaluation
    return out


def test_refresh_job_fills_everything_and_reports_each_block(
    sim: Simulator, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    res = resources(sim, tmp_path / "data")
    summary = run_refresh(res, instance)
    assert summary.all_refreshed, summary
    assert counts(summary) == {"refreshed": 8, "unchanged": 0, "failed": 0, "unsupported": 0,
                              "not_modified": 0}

    expected = {f"{p.id}-{b.learn_id}" for p, b in sim.world.blocks()}
    assert set(instance.get_dynamic_partitions("learn_blocks")) == expected

    gmm = materializations(instance, "learn_block_metadata", "100001-7")
    assert len(gmm) == 1
    assert gmm[0].metadata["changed"].value is True
    classifier = materializations(instance, "learn_block_metadata", "100001-3")[0].metadata
    for name in ("float32/accuracy", "int8/accuracy", "int8/latency_ms", "int8/ram_bytes",
                 "int8/rom_bytes", "int8-float32/accuracy", "int8-float32/latency_ms"):
        assert isinstance(classifier[name].value, float), name
    assert classifier["int8-float32/ram_bytes"].value < 0  # int8 saves RAM

    data = DataDir.open(str(tmp_path / "data"))
    assert data.warehouse.query("SELECT count(*) AS n FROM snapshots").to_pylist() == [{"n": 8}]
    comparison = materializations(instance, ["warehouse", "model_type_comparison"])[0].metadata
    assert comparison["dagster/row_count"].value > 0
    assert "cortex-m4f-80mhz" in comparison["latest_default_target"].value
    predictions = materializations(instance, ["warehouse", "predictions"])[0].metadata
    windows = sim.world.config.predictions * sum(len(b.model_types) for _, b in sim.world.blocks())
    assert predictions["dagster/row_count"].value == windows
    # loaded by the refresh step as it fetched, or by the warehouse step: counted once, either way
    assert predictions["rows_added"].value == windows
    assert materializations(instance, ["warehouse", "snapshots"])[0].metadata["rows_added"].value == 8
    columns = [c.name for c in predictions["dagster/column_schema"].value.columns]
    assert columns[:4] == ["snapshot_id", "project_id", "learn_id", "model_type"]
    lake = materializations(instance, ["lake", "predictions"])[0].metadata
    assert lake["rows_added"].value == windows

    checks = check_results(instance, summary.run_id)
    assert checks["all_blocks_refreshed"].passed
    assert checks["default_target_complete"].passed and checks["equal_prediction_counts"].passed
    assert checks["profiling_complete"].passed
    assert "int8_accuracy_drop" in checks and "no_regression" in checks

    # an unchanged second run, fetched in full: same snapshots, one more point per block
    again = run_refresh(res, instance, full=True)
    assert counts(again) == {"refreshed": 0, "unchanged": 8, "failed": 0, "unsupported": 0,
                             "not_modified": 0}
    history = materializations(instance, "learn_block_metadata", "100001-7")
    assert [m.metadata["changed"].value for m in history] == [False, True]  # newest first
    assert data.warehouse.query("SELECT count(*) AS n FROM snapshots").to_pylist() == [{"n": 8}]


def test_schema_change_checks_run_where_the_instance_keeps_runs(
    sim: Simulator, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    """They compare an asset's last two materializations: a kept instance runs them (the UI shows
    each), a throwaway one (`ei-assets refresh` without DAGSTER_HOME) never holds two and skips
    them; the warehouse's own checks run in both."""
    def evaluations(on: dg.DagsterInstance, run_id: str) -> list[str]:
        return [record.dagster_event.event_specific_data.check_name  # type: ignore[union-attr]
                for record in on.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)]

    kept = evaluations(instance, run_refresh(resources(sim, tmp_path / "kept"), instance).run_id)
    assert kept.count("column_schema_change") == len(WAREHOUSE_TABLES) + len(PUBLIC_VIEWS)
    with dg.DagsterInstance.ephemeral() as throwaway:
        outcome = run_refresh(resources(sim, tmp_path / "throwaway"), throwaway)
        assert outcome.success, outcome.step_errors
        skipped = evaluations(throwaway, outcome.run_id)
    assert "column_schema_change" not in skipped
    assert sorted(skipped) == sorted(name for name in kept if name != "column_schema_change")


def test_a_failing_block_is_reported_and_the_others_are_saved(
    sim: Simulator, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    sim.faults.script(r"/100002/training/keras/6/metadata$", ["503"] * 100)
    summary = run_refresh(resources(sim, tmp_path / "data"), instance)
    assert counts(summary) == {"refreshed": 7, "unchanged": 0, "failed": 1, "unsupported": 0,
                              "not_modified": 0}
    assert summary.report is not None
    failures = [b.describe() for b in summary.report.with_status("failed")]
    assert len(failures) == 1 and failures[0].startswith("100002-6:")
    assert "HTTP 503" in failures[0]
    assert not summary.all_refreshed
    checks = check_results(instance, summary.run_id)
    failed = checks["all_blocks_refreshed"]
    assert not failed.passed and failed.severity == dg.AssetCheckSeverity.ERROR
    assert materializations(instance, "learn_block_metadata", "100002-6") == []
    # the run log: the failure named at once, and the count of blocks done at the end
    messages = [(r.level, r.user_message) for r in instance.all_logs(summary.run_id)]
    warned = [m for level, m in messages if level == logging.WARNING and "100002-6" in m]
    assert len(warned) == 1 and "HTTP 503" in warned[0]
    done = "8 of 8 learn blocks done: 7 refreshed, 0 unchanged, 1 failed, 0 unsupported, 0 not_modified"
    assert (logging.INFO, done) in messages
    data = DataDir.open(str(tmp_path / "data"))
    saved = data.warehouse.query("SELECT count(*) AS n FROM snapshots").to_pylist()
    assert saved == [{"n": 7}]
    log = data.warehouse.query(
        "SELECT ok, http_status, error FROM fetch_log WHERE learn_id = 6 AND project_id = 100002"
    ).to_pylist()
    assert log[0]["ok"] is False and log[0]["http_status"] == 503


def test_the_key_never_reaches_dagster_events_or_files(
    sim: Simulator, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    sim.faults.script(r"/100003/training/", ["503"] * 100)
    summary = run_refresh(resources(sim, tmp_path / "data"), instance)
    events = instance.all_logs(summary.run_id)
    text = "\n".join(str(event) for event in events)
    for record in materializations(instance, "learn_block_metadata"):
        text += str(record.metadata)
    for key in sim.api_keys:
        assert key not in text
        assert key[3:20] not in text
        for path in (tmp_path / "data").rglob("*"):
            if path.is_file() and path.suffix not in (".duckdb", ".wal"):
                assert key.encode() not in path.read_bytes(), path


def test_partition_sensor_adds_new_blocks_and_removes_gone_ones(
    sim: Simulator, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    res = resources(sim, tmp_path / "data")
    instance.add_dynamic_partitions("learn_blocks", ["100001-3", "100001-99", "555-1"])
    sensor = build_definitions(res).resolve_sensor_def("learn_block_partitions_sensor")
    context = dg.build_sensor_context(instance=instance, resources={"studio": res["studio"]})
    result = sensor.evaluate_tick(context)  # as the daemon evaluates it
    requests = {type(r).__name__: r.partition_keys for r in result.dynamic_partitions_requests}
    assert set(requests["AddDynamicPartitionsRequest"]) == {
        f"{p.id}-{b.learn_id}" for p, b in sim.world.blocks()} - {"100001-3"}
    # 100001-99 vanished from a project we can read; 555 is a project we cannot see: kept
    assert requests["DeleteDynamicPartitionsRequest"] == ["100001-99"]


def test_profiling_sensor_refetches_a_block_after_its_profiling_was_pending(
    instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    with Simulator(WorldConfig(profiling_seconds=3600.0)) as sim:
        sim.world.retrain(100001, 3)  # profiling now pending for this block, until we end it
        res = resources(sim, tmp_path / "data", profiling_recheck_minutes=0.001)
        run_refresh(res, instance)
        time.sleep(0.2)  # past the (tiny) recheck delay: a lower bound, never a race
        profiling_pending_sensor = build_definitions(res).resolve_sensor_def("profiling_pending_sensor")
        context = dg.build_sensor_context(instance=instance, resources={"data_dir": res["data_dir"]})
        result = profiling_pending_sensor.evaluate_tick(context)
        (request,) = result.run_requests
        assert request.run_config == refresh_run_config(InstanceNames(), ["100001-3"])
        sim.world.finish_profiling(100001, 3)
        summary = run_refresh(res, instance, ["100001-3"])
        assert counts(summary)["refreshed"] == 1 and sum(counts(summary).values()) == 1
        after = profiling_pending_sensor.evaluate_tick(context)
        assert not after.run_requests and after.skip_message == "no block waits for profiling"


def test_schedule_sensors_and_job_are_defined_and_on_by_default(tmp_path: Path) -> None:
    defs = build_definitions({
        "studio": StudioResource(api_key="unused"), "data_dir": DataDirResource(data_dir=str(tmp_path)),
    })
    schedule = defs.resolve_schedule_def("hourly_refresh")
    assert schedule.cron_schedule == "0 * * * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    for name in ("learn_block_partitions_sensor", "profiling_pending_sensor"):
        assert defs.resolve_sensor_def(name).default_status == dg.DefaultSensorStatus.RUNNING
    job = defs.resolve_job_def("refresh")
    assert {node.name for node in job.graph.node_defs} >= {
        "studio_refresh", "warehouse_tables", "comparison_views"}
    assets = defs.resolve_all_asset_specs()
    pools = {spec.key.to_user_string(): spec for spec in assets}
    assert "warehouse/model_type_comparison" in pools and "lake/predictions" in pools
    warehouse_def = defs.resolve_assets_def(dg.AssetKey(["warehouse", "snapshots"]))
    assert warehouse_def.op.pool == "ei_warehouse"


def test_the_key_is_an_env_var_in_the_definitions() -> None:
    studio = settings_resources()["studio"]
    assert isinstance(studio.api_key, dg.EnvVar) and studio.api_key == "EI_API_KEY"


def test_dagster_definitions_validate() -> None:
    import os
    import subprocess
    import sys

    root = Path(__file__).parent.parent
    result = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=root, capture_output=True, text=True, timeout=180,
        env={**os.environ, "EI_API_KEY": "ei_unused"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All code locations passed validation" in result.stdout + result.stderr


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("EI_MAX_CONCURRENCY", "0", "EI_MAX_CONCURRENCY: 0 is out of range"),
    ("EI_MAX_CONCURRENCY", "many", 'env variable "EI_MAX_CONCURRENCY" cannot be coerced into an int'),
    ("EI_API_URL", "ftp://studio", "EI_API_URL: unknown URL scheme 'ftp'"),
])
def test_a_bad_setting_fails_the_run_not_the_code_location(
    variable: str, value: str, message: str, instance: dg.DagsterInstance, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EI_API_KEY", "ei_unused")
    monkeypatch.setenv("EI_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv(variable, value)
    resources = settings_resources()
    assert resources["studio"].max_concurrency == 8 or variable == "EI_MAX_CONCURRENCY"
    build_definitions(resources).resolve_job_def("refresh")  # the code location loads
    try:
        outcome = run_refresh(resources, instance)
    except dg.DagsterInvalidConfigError as exc:  # Dagster resolves EnvVar.int before the run
        assert message in str(exc)
        return
    assert not outcome.success and outcome.report is None
    assert len(outcome.step_errors) == 1 and message in outcome.step_errors[0], outcome.step_errors


def test_an_unsupported_block_is_named_once_in_the_run_log_and_fails_no_check(
    instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    with Simulator(WorldConfig(profiling_seconds=0.0, predictions=20, unsupported_blocks=("vlm",))) as sim:
        outcome = run_refresh(resources(sim, tmp_path / "data"), instance)
    assert outcome.all_refreshed
    assert counts(outcome) == {"refreshed": 8, "unchanged": 0, "failed": 0, "unsupported": 1,
                                    "not_modified": 0}
    named = [r.user_message for r in instance.all_logs(outcome.run_id) if "100001-91" in r.user_message]
    assert len(named) == 1 and "not an error" in named[0]
    checks = check_results(instance, outcome.run_id)
    refreshed = checks["all_blocks_refreshed"]
    assert refreshed.passed and "100001-91 (vlm)" in str(refreshed.metadata["unsupported"].value)
    assert checks["all_snapshots_loaded"].passed


def test_a_snapshot_the_warehouse_refuses_fails_its_check_and_nothing_else(
    sim: Simulator, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    run_refresh(resources(sim, tmp_path / "data"), instance, blocks=["100002-6"])
    data = DataDir.open(str(tmp_path / "data"))
    with data.warehouse.connect() as con:  # the load of that run undone: the snapshot is new again
        con.execute("DELETE FROM snapshots")
    (lake_file,) = (tmp_path / "data" / "lake" / "predictions").rglob("*.parquet")
    lake_file.write_bytes(b"not parquet at all")
    outcome = run_refresh(resources(sim, tmp_path / "data"), instance)
    assert outcome.success and not outcome.all_refreshed
    assert outcome.load is not None and [(f.project_id, f.learn_id) for f in outcome.load.failed] == [
        (100002, 6)]
    checks = check_results(instance, outcome.run_id)
    loaded = checks["all_snapshots_loaded"]
    assert not loaded.passed and loaded.severity == dg.AssetCheckSeverity.ERROR
    assert "100002, learn block 6" in str(loaded.metadata["failures"].value)
    assert checks["all_blocks_refreshed"].passed  # the fetch was fine
    errors = [r.user_message for r in instance.all_logs(outcome.run_id) if r.level == logging.ERROR]
    assert len(errors) == 1 and "could not be loaded into the warehouse" in errors[0]
    counts_by_block = data.warehouse.query(
        "SELECT count(*) AS n FROM snapshots WHERE NOT (project_id = 100002 AND learn_id = 6)").to_pylist()
    assert counts_by_block == [{"n": 7}]


def test_a_refresh_of_an_unchanged_world_skips_blocks_and_the_check_names_a_missed_change(
    sim: Simulator, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    res = resources(sim, tmp_path / "data")
    first = run_refresh(res, instance)
    assert counts(first)["refreshed"] == 8
    before = len(materializations(instance, "learn_block_metadata", "100001-3"))
    again = run_refresh(res, instance)
    assert counts(again) == {"refreshed": 0, "unchanged": 0, "failed": 0, "unsupported": 0,
                             "not_modified": 8}
    assert len(materializations(instance, "learn_block_metadata", "100001-3")) == before
    snapshots = materializations(instance, "metadata_snapshots")[0].metadata
    assert snapshots["blocks_not_modified"].value == 8
    assert check_results(instance, again.run_id)["change_signal_reliable"].passed

    sim.world.retrain(100001, 3, signal=False)
    every_time = StudioResource(api_key=",".join(sim.api_keys), api_url=sim.url, verify_every="0")
    caught = run_refresh(res | {"studio": every_time}, instance)
    check = check_results(instance, caught.run_id)["change_signal_reliable"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert "100001-3" in str(check.metadata["blocks"].value)
    assert caught.all_refreshed  # a warning, not a failure

    full = run_refresh(res, instance, full=True)
    assert counts(full)["not_modified"] == 0 and counts(full)["unchanged"] == 8
    for tag in ("full", "ei_assets/full"):  # the run tag does what the config does
        job = build_definitions({**res, "result_sink": ResultSink()}).resolve_job_def("refresh")
        tagged = job.execute_in_process(instance=instance, tags={tag: "true"})
        (materialization,) = [m for m in tagged.asset_materializations_for_node("studio_refresh")
                              if m.asset_key == dg.AssetKey("metadata_snapshots")]
        assert materialization.metadata["blocks_not_modified"].value == 0
        assert materialization.metadata["blocks_unchanged"].value == 8
