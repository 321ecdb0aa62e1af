"""The refresh job, its daily schedule, and two sensors.

All three start ON by default: the product's promise is a history that keeps itself. The partition
sensor only reads the API's project and impulse lists (two small requests per project every
10 minutes), and the profiling sensor only launches a run when a block's profiling was pending.
"""


from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
from dagster import SensorEvaluationContext

from ei_assets.orchestration.assets import (
    comparison_views,
    lake_tables,
    learn_block_partitions,
    learn_blocks,
    metadata_snapshots,
    partition_changes,
    warehouse_tables,
)
from ei_assets.orchestration.resources import DataDirResource, StudioResource

refresh_job = dg.define_asset_job(
    "refresh",
    selection=dg.AssetSelection.assets(learn_blocks, metadata_snapshots, lake_tables,
                                       warehouse_tables, comparison_views),
    executor_def=dg.in_process_executor,  # a few steps; the fan-out is threads inside one step
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
    requests: list = []
    if add:
        requests.append(learn_block_partitions.build_add_request(add))
    if remove:
        requests.append(learn_block_partitions.build_delete_request(remove))
    return dg.SensorResult(dynamic_partitions_requests=requests)


@dg.sensor(job=refresh_job, minimum_interval_seconds=120,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="Fetches a block again some minutes after its profiling was pending, so "
                       "the on-device figures of a retrain arrive without waiting a day.")
def profiling_pending_sensor(
    context: SensorEvaluationContext, data_dir: DataDirResource
) -> dg.SensorResult | dg.SkipReason:
    warehouse = data_dir.open().warehouse
    if not Path(warehouse.path).exists():
        return dg.SkipReason("no warehouse yet")
    with warehouse.connect(read_only=True) as con:
        rows = con.execute("""
            SELECT DISTINCT s.project_id, s.learn_id, s.snapshot_id
            FROM latest_snapshots s JOIN model_metrics m USING (snapshot_id)
            WHERE m.profiling_pending AND s.last_fetched_at < ?
            ORDER BY 1, 2""", [datetime.now(UTC) - timedelta(minutes=data_dir.profiling_recheck_minutes)]
        ).fetchall()
    if not rows:
        return dg.SkipReason("no block waits for profiling")
    blocks = [f"{project}-{learn}" for project, learn, _ in rows]
    return dg.SensorResult(run_requests=[dg.RunRequest(
        run_key="profiling-" + "-".join(sid[:8] for _, _, sid in rows),
        run_config={"ops": {"metadata_snapshots": {"config": {"blocks": blocks}}}},
        tags={"ei_assets/reason": "profiling-pending"},
    )])
