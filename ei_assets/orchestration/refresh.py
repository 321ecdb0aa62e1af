"""`ei-assets refresh`: execute the refresh job of the project's definitions in this process."""

import logging
import os
from dataclasses import dataclass, field
from importlib import resources

import dagster as dg

log = logging.getLogger(__name__)

QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass
class RefreshSummary:
    success: bool
    run_id: str
    counts: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def all_refreshed(self) -> bool:
        return self.success and not self.failures and not self.errors


def ensure_instance_home(path: str) -> str:
    """A DAGSTER_HOME folder with the project's instance settings (the warehouse pool limit)."""
    os.makedirs(path, exist_ok=True)
    config = os.path.join(path, "dagster.yaml")
    if not os.path.exists(config):
        with open(config, "w") as handle:
            handle.write(resources.files("ei_assets").joinpath("instance.yaml").read_text())
    return os.path.abspath(path)


def instance_for_cli() -> dg.DagsterInstance:
    """The DAGSTER_HOME instance when set (the run then shows in the UI), else a throwaway one."""
    if os.environ.get("DAGSTER_HOME"):
        return dg.DagsterInstance.get()
    return dg.DagsterInstance.ephemeral()


def run_refresh(
    definitions: dg.Definitions, instance: dg.DagsterInstance, run_config: dict | None = None
) -> RefreshSummary:
    job = definitions.resolve_job_def("refresh")
    result = job.execute_in_process(
        instance=instance, raise_on_error=False, run_config={**QUIET_RUN_CONFIG, **(run_config or {})}
    )
    summary = RefreshSummary(success=result.success, run_id=result.run_id)
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data:
            last_line = event.step_failure_data.error_display_string.strip().splitlines()[-1]
            summary.errors.append(f"{event.step_key}: {last_line}")
    discovery = result.asset_materializations_for_node("learn_blocks")
    if discovery:
        errors = discovery[-1].metadata["error_list"].value
        summary.errors += [f"discovery: {error}" for error in errors]  # type: ignore[union-attr]
    materializations = result.asset_materializations_for_node("metadata_snapshots")
    own = [m for m in materializations if m.asset_key == dg.AssetKey("metadata_snapshots")]
    if own:
        metadata = own[-1].metadata
        for status in ("refreshed", "unchanged", "failed", "skipped"):
            summary.counts[status] = int(metadata[f"blocks_{status}"].value)  # type: ignore[arg-type]
        summary.failures = list(metadata["failure_list"].value)  # type: ignore[arg-type]
    return summary
