"""The packaged code location: `dagster dev -w workspace.yaml`, `make dev`, `ei-assets refresh` and
the demo all load these definitions. They are one instance of the plugin's (`build_defs`), without
a key prefix, with schedules and sensors running, settings from the `EI_*` variables, and steps
in one process (a few steps; the fan-out within a refresh is threads)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg

from ei_assets.dagster.definitions import instance_definitions, settings_resources
from ei_assets.dagster.names import InstanceNames

__all__ = ["build_definitions", "defs"]


def build_definitions(resources: Mapping[str, Any] | None = None,
                      executor: dg.ExecutorDefinition = dg.in_process_executor) -> dg.Definitions:
    """The packaged definitions over `resources` by role (default: from the environment);
    ei_assets.k8s runs each step as a Kubernetes job instead."""
    instance = instance_definitions(InstanceNames(), resources or settings_resources(), "running")
    return dg.Definitions.merge(instance, dg.Definitions(executor=executor))


defs = build_definitions()
