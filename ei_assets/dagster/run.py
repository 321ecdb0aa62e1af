"""`ei-assets refresh`: execute the refresh job of the project's definitions in this process."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import dagster as dg
from dagster_shared.error import SerializableErrorInfo

from ei_assets.dagster.automation import refresh_run_config
from ei_assets.dagster.definitions import instance_definitions
from ei_assets.dagster.names import InstanceNames
from ei_assets.dagster.process_lock import file_lock, is_alive_here, process_identity
from ei_assets.dagster.resources import ResultSink
from ei_assets.pipeline.refresh import RefreshResult
from ei_assets.progress import progress
from ei_assets.warehouse import LoadResult

PROCESS_TAG = "ei_assets/process"  # host:pid:start of the process executing a CLI run
INSTANCE_LOCK = ".ei_assets-instance.lock"
INSTANCE_LOCK_SECONDS = 120.0

# The CLI prints the outcome itself, once; Dagster's console logger would repeat it.
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
INSTANCE_FILE = "instance.yaml"  # packaged instance settings


@dataclass
class RunOutcome:
    """A refresh run: Dagster's verdict, the core's report (None if the step never got that far),
    and the steps that failed."""

    success: bool
    run_id: str
    report: RefreshResult | None
    step_errors: list[str] = field(default_factory=list)
    load: LoadResult | None = None  # the warehouse step's, if it ran

    @property
    def all_refreshed(self) -> bool:
        return (self.success and not self.step_errors and self.report is not None
                and self.report.all_refreshed and not (self.load and self.load.failed))


def ensure_instance_home(path: str) -> str:
    """A DAGSTER_HOME folder with the project's instance settings (the warehouse pool limit)."""
    os.makedirs(path, exist_ok=True)
    config = os.path.join(path, "dagster.yaml")
    if not os.path.exists(config):
        with open(config, "w") as handle:
            handle.write(resources.files("ei_assets").joinpath(INSTANCE_FILE).read_text())
    return os.path.abspath(path)


def instance_for_cli(home: str | None = None) -> dg.DagsterInstance:
    """The instance at `home` or DAGSTER_HOME when set (the run then shows in the UI), else a
    throwaway one. Opening is serialized across processes: two refreshes that start together on
    a new DAGSTER_HOME would otherwise both create its databases and race on their schema."""
    home = home or os.environ.get("DAGSTER_HOME")
    if not home:
        return dg.DagsterInstance.ephemeral()

    def say_waiting() -> None:
        progress.info(f"waiting for another ei-assets process to finish opening the Dagster "
                      f"instance in {home} (at most {INSTANCE_LOCK_SECONDS:.0f}s)")

    with file_lock(os.path.join(home, INSTANCE_LOCK), INSTANCE_LOCK_SECONDS, say_waiting):
        ensure_instance_home(home)
        instance = dg.DagsterInstance.from_config(home)
        reaped = reap_dead_runs(instance)  # also creates the run and event storage, under the lock
    for run_id in reaped:
        progress.info(f"run {run_id[:8]} was killed before it finished: marked failed, its "
                      "concurrency slots freed")
    return instance


def reap_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Runs started by `ei-assets` on this host whose process is gone (SIGKILL, OOM): reported
    failed, with their concurrency slots freed, so they never block a later run."""
    unfinished = instance.get_runs(filters=dg.RunsFilter(
        statuses=[dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING,
                  dg.DagsterRunStatus.NOT_STARTED],
    ))
    reaped = []
    for run in unfinished:
        identity = run.tags.get(PROCESS_TAG)
        if identity is None or is_alive_here(identity) is not False:
            continue
        instance.report_run_failed(run, "the process running it is gone (killed); "
                                        "reaped by the next `ei-assets refresh`")
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        reaped.append(run.run_id)
    return reaped


def run_refresh(resources: Mapping[str, Any], instance: dg.DagsterInstance,
                blocks: list[str] | None = None, verbose: bool = False,
                projects: list[int] | None = None, full: bool = False) -> RunOutcome:
    """Run the project's refresh job over `resources` (for `blocks` only, if given) and collect
    the core's report."""
    sink = ResultSink()
    names = InstanceNames()  # the packaged code location's instance
    # A schema change check compares an asset's last two materializations: a throwaway instance
    # never holds two, so there they could only pass, at the cost of a step and two events each.
    definitions = instance_definitions(names, {**resources, "result_sink": sink}, "stopped",
                                       schema_change_checks=not instance.is_ephemeral)
    job = definitions.resolve_job_def(names.refresh_job)
    run_config: dict[str, Any] = {**({} if verbose else QUIET_RUN_CONFIG),
                                  **refresh_run_config(names, blocks or [], projects or [], full)}
    result = job.execute_in_process(instance=instance, raise_on_error=False, run_config=run_config,
                                    tags={PROCESS_TAG: process_identity()})
    outcome = RunOutcome(success=result.success, run_id=result.run_id, report=sink.last,
                         load=sink.load)
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data:
            error = event.step_failure_data.error
            outcome.step_errors.append(f"{event.step_key}: {_root_cause(error) if error else 'failed'}")
    return outcome


def _root_cause(error: SerializableErrorInfo) -> str:
    """The innermost error's own words, without Dagster's wrapping or the exception's class path."""
    while error.cause is not None:
        error = error.cause
    message = error.message.strip().splitlines()[0] if error.message.strip() else error.cls_name or ""
    prefix = f"{error.cls_name}: "
    return message.split(prefix, 1)[1] if error.cls_name and prefix in message else message
