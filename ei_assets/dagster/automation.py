"""The refresh job of one instance, its schedules, and two sensors.

In the packaged code location they start ON: the product's promise is a history that keeps
itself. In an instance a host project adds (the component or `build_defs`), they start stopped
unless `automation: running` is asked for: merging definitions must not start polling Studio.
The partition sensor only reads the API's project and impulse lists (two small requests per
project every 10 minutes), and the profiling sensor only launches a run when a block's
profiling was pending.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import dagster as dg

from ei_assets.dagster.assets import Assets, partition_changes
from ei_assets.dagster.names import InstanceNames
from ei_assets.dagster.resources import DataDirResource, StudioResource
from ei_assets.studio import StudioError

__all__ = ["DEV_MODE", "Automation", "AutomationMode", "build_automation", "refresh_run_config"]

AutomationMode = Literal["stopped", "running"]
DEV_MODE = "EI_DEV_MODE"  # set by `make dev` when it serves the simulator

PROFILING_PENDING_SQL = """
SELECT DISTINCT s.project_id, s.learn_id, s.snapshot_id
FROM latest_snapshots s JOIN model_metrics m USING (project_id, learn_id, snapshot_id)
WHERE m.profiling_pending AND s.last_fetched_at < ?
ORDER BY 1, 2
"""


def refresh_run_config(names: InstanceNames, blocks: Sequence[str] = (), projects: Sequence[int] = (),
                       full: bool = False) -> dict[str, Any]:
    """Run config of an instance's refresh job for some learn blocks (`<project_id>-<learn_id>`)
    or some projects only; `full` fetches every block whatever the change signal says."""
    config = {"blocks": list(blocks), "projects": list(projects), "full": full}
    return {"ops": {names.refresh_op: {"config": config}}}


@dataclass(frozen=True)
class Automation:
    """The job, schedules and sensors of one instance."""

    job: dg.UnresolvedAssetJobDefinition
    schedules: list[dg.ScheduleDefinition]
    sensors: list[dg.SensorDefinition]


def build_automation(assets: Assets, mode: AutomationMode) -> Automation:
    """The refresh job over `assets`; schedules and sensors running only in mode `running`."""
    names = assets.names
    running = mode == "running"
    schedule_on = dg.DefaultScheduleStatus.RUNNING if running else dg.DefaultScheduleStatus.STOPPED
    sensor_on = dg.DefaultSensorStatus.RUNNING if running else dg.DefaultSensorStatus.STOPPED
    stopped = dg.DefaultScheduleStatus.STOPPED

    refresh_job = dg.define_asset_job(
        names.refresh_job,
        selection=dg.AssetSelection.assets(*assets.refreshed),
        description="Discover every learn block, fetch its metadata, archive, flatten, load, compare.",
    )
    # Hourly: a project Studio says did not change costs one small request (change detection), so
    # the history can follow retrains within the hour at the price of a daily download.
    hourly_refresh = dg.ScheduleDefinition(
        name=names.name("hourly_refresh"), job=refresh_job, cron_schedule="0 * * * *",
        execution_timezone="UTC", default_status=schedule_on,
        description="Refresh every hour: projects Studio says did not change are not downloaded.",
    )
    # `make dev` on the simulator: the simulator retrains a block every 10 minutes, so a refresh
    # every 5 minutes lets the history grow while you watch. Elsewhere it exists, stopped: turn it
    # on in the UI to refresh more often than daily.
    dev_refresh = dg.ScheduleDefinition(
        name=names.name("dev_refresh"), job=refresh_job, cron_schedule="*/5 * * * *",
        execution_timezone="UTC",
        default_status=schedule_on if running and os.environ.get(DEV_MODE) else stopped,
        description="Refresh every 5 minutes: on under `make dev` with the simulator, off elsewhere.",
    )

    @dg.schedule(name=names.name("hourly_refresh_by_project"), job=refresh_job,
                 cron_schedule="0 * * * *", execution_timezone="UTC", default_status=stopped,
                 required_resource_keys={names.studio},
                 description="The hourly refresh fanned out: one run per project, so that many "
                             "workers share the work (deployments with a run queue; see "
                             "docs/deploying.md). Turn it on instead of hourly_refresh.")
    def hourly_refresh_by_project(context: dg.ScheduleEvaluationContext
                                 ) -> list[dg.RunRequest] | dg.SkipReason:
        studio: StudioResource = getattr(context.resources, names.studio)
        projects: set[int] = set()
        with studio.client() as client:
            for key in studio.api_keys():
                try:
                    projects.update(p.id for p in client.list_projects(key))
                except StudioError as exc:
                    context.log.warning(f"API key {key.label}: {exc}")
        if not projects:
            return dg.SkipReason("no project reachable with the configured API keys")
        hour = context.scheduled_execution_time.strftime("%Y-%m-%dT%H")
        return [dg.RunRequest(run_key=f"{hour}-{project}",
                              run_config=refresh_run_config(names, projects=[project]),
                              tags={"ei_assets/project": str(project)})
                for project in sorted(projects)]

    @dg.sensor(name=names.name("learn_block_partitions_sensor"), minimum_interval_seconds=600,
               default_status=sensor_on, required_resource_keys={names.studio},
               description="Adds a learn_block_metadata partition for every new learn block and "
                           "removes those gone from their impulses.")
    def learn_block_partitions_sensor(context: dg.SensorEvaluationContext
                                      ) -> dg.SensorResult | dg.SkipReason:
        studio: StudioResource = getattr(context.resources, names.studio)
        with studio.client() as client:
            found = client.discover(studio.api_keys())
        if not found.keys_by_project:
            return dg.SkipReason("no project reachable: " + "; ".join(str(e) for e in found.errors))
        add, remove = partition_changes(context.instance, assets.partitions.name or "", found.blocks,
                                        set(found.keys_by_project))
        if not add and not remove:
            return dg.SkipReason(f"{len(found.blocks)} learn blocks, no change")
        requests: list[dg.AddDynamicPartitionsRequest | dg.DeleteDynamicPartitionsRequest] = []
        if add:
            requests.append(assets.partitions.build_add_request(add))
        if remove:
            requests.append(assets.partitions.build_delete_request(remove))
        return dg.SensorResult(dynamic_partitions_requests=requests)

    @dg.sensor(name=names.name("profiling_pending_sensor"), job=refresh_job,
               minimum_interval_seconds=120, default_status=sensor_on,
               required_resource_keys={names.data_dir},
               description="Fetches a block again some minutes after its profiling was pending, so "
                           "the on-device figures of a retrain arrive without waiting a day.")
    def profiling_pending_sensor(context: dg.SensorEvaluationContext
                                 ) -> dg.SensorResult | dg.SkipReason:
        data_dir: DataDirResource = getattr(context.resources, names.data_dir)
        warehouse = data_dir.open().warehouse
        if not warehouse.exists():
            return dg.SkipReason("no warehouse yet")
        rows = warehouse.query(PROFILING_PENDING_SQL, [
            datetime.now(UTC) - timedelta(minutes=data_dir.profiling_recheck_minutes)]).to_pylist()
        if not rows:
            return dg.SkipReason("no block waits for profiling")
        return dg.SensorResult(run_requests=[dg.RunRequest(
            run_key="profiling-" + "-".join(row["snapshot_id"][:8] for row in rows),
            run_config=refresh_run_config(names, [f"{row['project_id']}-{row['learn_id']}"
                                                   for row in rows]),
            tags={"ei_assets/reason": "profiling-pending"},
        )])

    return Automation(refresh_job, [hourly_refresh, hourly_refresh_by_project, dev_refresh],
                      [learn_block_partitions_sensor, profiling_pending_sensor])
