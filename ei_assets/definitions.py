"""The Dagster code location: `dagster dev -w workspace.yaml`, `ei-assets refresh` and the tests all
load these same definitions."""


import os

import dagster as dg

from ei_assets.orchestration.assets import (
    comparison_views,
    lake_tables,
    learn_block_metadata,
    learn_blocks,
    metadata_snapshots,
    warehouse_tables,
)
from ei_assets.orchestration.automation import (
    daily_refresh,
    learn_block_partitions_sensor,
    profiling_pending_sensor,
    refresh_job,
)
from ei_assets.orchestration.checks import CHECKS
from ei_assets.orchestration.resources import DataDirResource, StudioResource
from ei_assets.settings import DEFAULT_API_URL, DEFAULT_DATA_DIR, DEFAULT_MAX_CONCURRENCY


def build_resources() -> dict[str, dg.ConfigurableResource]:
    """The key stays an EnvVar (shown by name in the UI); the rest are plain, non-secret settings."""
    return {
        "studio": StudioResource(
            api_key=dg.EnvVar("EI_API_KEY"),
            api_url=os.environ.get("EI_API_URL") or DEFAULT_API_URL,
            max_concurrency=int(os.environ.get("EI_MAX_CONCURRENCY") or DEFAULT_MAX_CONCURRENCY),
        ),
        "data_dir": DataDirResource(
            data_dir=os.path.abspath(os.environ.get("EI_DATA_DIR") or DEFAULT_DATA_DIR)),
    }


def build_definitions(resources: dict[str, dg.ConfigurableResource] | None = None) -> dg.Definitions:
    return dg.Definitions(
        assets=[learn_blocks, metadata_snapshots, learn_block_metadata, lake_tables,
                warehouse_tables, comparison_views],
        asset_checks=CHECKS,
        jobs=[refresh_job],
        schedules=[daily_refresh],
        sensors=[learn_block_partitions_sensor, profiling_pending_sensor],
        resources=resources if resources is not None else build_resources(),
    )


defs = build_definitions()
