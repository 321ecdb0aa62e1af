"""The refresh job, its daily schedule, and two sensors.

All three start ON by default: the product's promise is a history that keeps itself. The partition
sensor only reads the API's project and impulse lists (two small requests per project every
10 minutes), and the profiling sensor only launches a run when a block's profiling was pending.
"""


import os
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
from dagster import SensorEvaluationContext

from ei_assets.orchestration.assets import (
    REFRESH_OP,
    comparison_views,
    history_report,
    learn_block_partitions,
    partition_changes,
    studio_refresh,
    warehouse_tables,
)
from ei_assets.orchestration.resources import DataDirResource, StudioResource
from ei_assets.studio import StudioError

refresh_job = dg.define_asset_job(
    "refresh",
    selection=dg.AssetSelection.assets(studio_refresh, warehouse_tables, comparison_views,
                                       history_report),
    description="Discover every learn block, fetch its metadata, archive, flatten, load, compare.",
)

daily_refresh = dg.ScheduleDefinition(
    name="daily_refresh",
    job=refresh_job,
    cron_schedule="0 6 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Refresh everything every day at 06:00 UTC.",
)


DEV_MODE = "EI_DEV_MODE"  # set by `make dev` when it serves the simulator

# `make dev` on the simulator: the simulator retrains a block every 10 minutes, so a refresh every
# 5 minutes lets the history grow while you watch. Elsewhere it exists, stopped: turn it on in
# the UI to refresh more often than daily.
dev_refresh = dg.ScheduleDefinition(
    name="dev_refresh",
    job=refresh_job,
    cron_schedule="*/5 * * * *",
    execution_timezone="UTC",
    default_status=(dg.DefaultScheduleStatus.RUNNING if os.environ.get(DEV_MODE)
                    else dg.DefaultScheduleStatus.STOPPED),
    description="Refresh every 5 minutes: on under `make dev` with the simulator, off elsewhere.",
)


@dg.sensor(minimum_interval_seconds=600, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Adds a learn_block_metadata partition for every new learn block and "
                       "removes those gone from their impulses.")
def learn_block_partitions_sensor(
    context: SensorEvaluationContext, studio: StudioResource
) -> dg.SensorResult | dg.SkipReason:
    with studio.client() as client:
        found = client.discover(studio.api_keys())
    if not found.keys_by_project:
        return dg.SkipReason("no project reachable: " + "; ".join(str(e) for e in found.errors))
    add, remove = partition_changes(context.instance, found.blocks, set(found.keys_by_project))
    if not add and not remove:
        return dg.SkipReason(f"{len(found.blocks)} learn blocks, no change")
    requests: list[dg.AddDynamicPartitionsRequest | dg.DeleteDynamicPartitionsRequest] = []
    if add:
        requests.append(learn_block_partitions.build_add_request(add))
    if remove:
        requests.append(learn_block_partitions.build_delete_request(remove))
    return dg.SensorResult(dynamic_partitions_requests=requests)


PROFILING_PENDING_SQL = """
SELECT DISTINCT s.project_id, s.learn_id, s.snapshot_id
FROM latest_snapshots s JOIN model_metrics m USING (project_id, learn_id, snapshot_id)
WHERE m.profiling_pending AND s.last_fetched_at < ?
ORDER BY 1, 2
"""


def refresh_run_config(blocks: Sequence[str] = (), projects: Sequence[int] = ()) -> dict[str, Any]:
    """Run config of the refresh job for some learn blocks (`<project_id>-<learn_id>`) or some
    projects only."""
    return {"ops": {REFRESH_OP: {"config": {"blocks": list(blocks), "projects": list(projects)}}}}


@dg.schedule(job=refresh_job, cron_schedule="0 6 * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.STOPPED,
             description="The daily refresh fanned out: one run per project, so that many "
                         "workers share the work (deployments with a run queue; see deploy/). "
                         "Turn it on instead of daily_refresh.")
def daily_refresh_by_project(context: dg.ScheduleEvaluationContext, studio: StudioResource
                             ) -> list[dg.RunRequest] | dg.SkipReason:
    projects: set[int] = set()
    with studio.client() as client:
        for key in studio.api_keys():
            try:
                projects.update(p.id for p in client.list_projects(key))
            except StudioError as exc:
                context.log.warning(f"EI_API_KEY {key.label}: {exc}")
    if not projects:
        return dg.SkipReason("no project reachable with EI_API_KEY")
    day = context.scheduled_execution_time.strftime("%Y-%m-%d")
    return [dg.RunRequest(run_key=f"{day}-{project}", run_config=refresh_run_config(projects=[project]),
                          tags={"ei_assets/project": str(project)})
            for project in sorted(projects)]


@dg.sensor(job=refresh_job, minimum_interval_seconds=120,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="Fetches a block again some minutes after its profiling was pending, so "
                       "the on-device figures of a retrain arrive without waiting a day.")
def profiling_pending_sensor(
    context: SensorEvaluationContext, data_dir: DataDirResource
) -> dg.SensorResult | dg.SkipReason:
    warehouse = data_dir.open().warehouse
    if not warehouse.exists():
        return dg.SkipReason("no warehouse yet")
    rows = warehouse.query(PROFILING_PENDING_SQL, [
        datetime.now(UTC) - timedelta(minutes=data_dir.profiling_recheck_minutes)]).to_pylist()
    if not rows:
        return dg.SkipReason("no block waits for profiling")
    return dg.SensorResult(run_requests=[dg.RunRequest(
        run_key="profiling-" + "-".join(row["snapshot_id"][:8] for row in rows),
        run_config=refresh_run_config([f"{row['project_id']}-{row['learn_id']}" for row in rows]),
        tags={"ei_assets/reason": "profiling-pending"},
    )])
