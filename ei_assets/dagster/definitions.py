"""The definitions of one ei_assets instance, as a host project merges them: `build_defs`.

They set no executor (the host's applies), name everything after the instance's key prefix
(`ei_assets.dagster.names`), and leave schedules and sensors stopped unless asked. Every setting
not given reads its `EI_*` variable when a run starts, as a Dagster `EnvVar`, if the variable is
set where the definitions load; otherwise the contract's default applies. The API key is always
an `EnvVar` of the variable named by `api_key_env_var`: its value never reaches YAML, metadata or
the UI.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg

from ei_assets.dagster.assets import build_assets
from ei_assets.dagster.automation import AutomationMode, build_automation
from ei_assets.dagster.checks import build_checks
from ei_assets.dagster.names import InstanceNames
from ei_assets.dagster.resources import DataDirResource, ResultSink, StudioResource
from ei_assets.settings import (
    DEFAULT_API_URL,
    DEFAULT_DATA_DIR,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_VERIFY_EVERY,
    DEFAULT_WAREHOUSE,
    ConfigError,
)

__all__ = ["build_defs", "instance_definitions", "settings_resources"]

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def build_defs(
    *,
    key_prefix: Sequence[str] | str = (),
    api_key_env_var: str = "EI_API_KEY",
    api_url: str | None = None,
    data_dir: str | None = None,
    warehouse: str | None = None,
    max_concurrency: int | None = None,
    verify_every: str | None = None,
    automation: AutomationMode = "stopped",
) -> dg.Definitions:
    """One instance of ei_assets: its assets (keys under `key_prefix`), checks, refresh job,
    schedules and sensors (stopped unless `automation="running"`), and its resources. Merge it
    into a host's definitions with `dagster.Definitions.merge`; it sets no executor."""
    resources = settings_resources(api_key_env_var=api_key_env_var, api_url=api_url, data_dir=data_dir,
                                   warehouse=warehouse, max_concurrency=max_concurrency,
                                   verify_every=verify_every)
    return instance_definitions(InstanceNames.of(key_prefix), resources, automation)


def instance_definitions(names: InstanceNames, resources: Mapping[str, Any],
                         automation: AutomationMode, *, schema_change_checks: bool = True
                         ) -> dg.Definitions:
    """The definitions of the instance `names` over `resources` by role (`studio`, `data_dir`,
    and optionally `result_sink`, where a caller collects the run's results); the column schema
    change checks unless `schema_change_checks` is False."""
    assets = build_assets(names)
    jobs = build_automation(assets, automation)
    by_role = {"result_sink": ResultSink(), **resources}
    return dg.Definitions(
        assets=assets.all,
        asset_checks=build_checks(names, schema_changes=schema_change_checks),
        jobs=[jobs.job],
        schedules=jobs.schedules,
        sensors=jobs.sensors,
        resources={names.resource_key(role): resource for role, resource in by_role.items()},
    )


def settings_resources(*, api_key_env_var: str = "EI_API_KEY", api_url: str | None = None,
                       data_dir: str | None = None, warehouse: str | None = None,
                       max_concurrency: int | None = None, verify_every: str | None = None
                       ) -> dict[str, Any]:
    """The resources by role, from the values given, else the `EI_*` variables, else defaults."""
    if not _ENV_NAME.match(api_key_env_var):
        raise ConfigError(f"api_key_env_var: {api_key_env_var!r} is not an environment variable "
                          "name; give the name of the variable that holds the keys, e.g. EI_API_KEY")
    return {
        "studio": StudioResource(
            api_key=dg.EnvVar(api_key_env_var),
            api_url=_setting(api_url, "EI_API_URL", DEFAULT_API_URL),
            max_concurrency=_setting(max_concurrency, "EI_MAX_CONCURRENCY", DEFAULT_MAX_CONCURRENCY, int),
            verify_every=_setting(verify_every, "EI_VERIFY_EVERY", DEFAULT_VERIFY_EVERY),
        ),
        "data_dir": DataDirResource(data_dir=_setting(data_dir, "EI_DATA_DIR", DEFAULT_DATA_DIR),
                                    warehouse=_setting(warehouse, "EI_WAREHOUSE", DEFAULT_WAREHOUSE)),
    }


def _setting(value: Any, variable: str, default: Any, kind: type = str) -> Any:
    """A value given; else the variable as a Dagster EnvVar (read, and validated by the resource,
    when a run starts) if it is set; else the default. Only presence is looked at here."""
    if value is not None:
        return value
    if not os.environ.get(variable):
        return default
    return dg.EnvVar.int(variable) if kind is int else dg.EnvVar(variable)
