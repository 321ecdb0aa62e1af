"""The Dagster code location: `dagster dev -w workspace.yaml`, `ei-assets refresh` and the tests all
load these same definitions."""

from __future__ import annotations

import os
from typing import Any

import dagster as dg

from ei_assets.orchestration.assets import (
    comparison_views,
    history_report,
    learn_block_metadata,
    studio_refresh,
    warehouse_tables,
)
from ei_assets.orchestration.automation import (
    daily_refresh,
    daily_refresh_by_project,
    dev_refresh,
    learn_block_partitions_sensor,
    profiling_pending_sensor,
    refresh_job,
)
from ei_assets.orchestration.checks import CHECKS
from ei_assets.orchestration.resources import DataDirResource, ReportSink, StudioResource
from ei_assets.settings import (
    DEFAULT_API_URL,
    DEFAULT_DATA_DIR,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_WAREHOUSE,
)


def _env(name: str, default: Any, kind: type = str) -> Any:
    """The variable as a Dagster EnvVar (read, and validated by the resource, when a run starts);
    the default when it is not set at all. Only presence is looked at here, never the value."""
    if not os.environ.get(name):
        return default
    return dg.EnvVar.int(name) if kind is int else dg.EnvVar(name)


def build_resources() -> dict[str, Any]:
    """Every setting from the environment, as the contract names it (../shared/CONTRACT.md)."""
    return {
        "studio": StudioResource(
            api_key=dg.EnvVar("EI_API_KEY"),
            api_url=_env("EI_API_URL", DEFAULT_API_URL),
            max_concurrency=_env("EI_MAX_CONCURRENCY", DEFAULT_MAX_CONCURRENCY, int),
        ),
        "data_dir": DataDirResource(data_dir=_env("EI_DATA_DIR", DEFAULT_DATA_DIR),
                                    warehouse=_env("EI_WAREHOUSE", DEFAULT_WAREHOUSE)),
    }


def build_definitions(resources: dict[str, Any] | None = None,
                      executor: dg.ExecutorDefinition = dg.in_process_executor) -> dg.Definitions:
    """The definitions over `resources` (default: from the environment); a `report_sink` is added
    when none is given. Steps run in one process by default (a few steps; the fan-out within a
    refresh is threads); ei_assets.k8s runs each step as a Kubernetes job instead."""
    return dg.Definitions(
        executor=executor,
        assets=[studio_refresh, learn_block_metadata, warehouse_tables, comparison_views,
                history_report],
        asset_checks=CHECKS,
        jobs=[refresh_job],
        schedules=[daily_refresh, daily_refresh_by_project, dev_refresh],
        sensors=[learn_block_partitions_sensor, profiling_pending_sensor],
        resources={"report_sink": ReportSink(),
                   **(resources if resources is not None else build_resources())},
    )


defs = build_definitions()
