"""The names one instance of the definitions gives Dagster, all derived from its key prefix.

Two instances (two Edge Impulse organisations in one code location) differ in their key prefix,
and so in every asset key, op, job, schedule, sensor, partitions definition and resource key:
nothing collides. The instance without a prefix has the names the packaged code location always
had (`refresh`, `studio`, `learn_blocks`, ...). The pools are not derived, on purpose: they bound
Studio requests and warehouse writers across the whole deployment.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import dagster as dg

from ei_assets.settings import ConfigError

__all__ = ["STUDIO_POOL", "WAREHOUSE_POOL", "InstanceNames"]

STUDIO_POOL = "ei_studio_api"  # bounds the refreshes talking to Edge Impulse across all runs
WAREHOUSE_POOL = "ei_warehouse"  # one writer of a warehouse at a time
_PART = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class InstanceNames:
    """Every name of one instance: `key(...)` for asset keys, `name(...)` for everything else."""

    key_prefix: tuple[str, ...] = ()

    @classmethod
    def of(cls, key_prefix: Sequence[str] | str = ()) -> InstanceNames:
        """The names of an instance; each part of the prefix must be a Dagster name."""
        parts = (key_prefix,) if isinstance(key_prefix, str) else tuple(key_prefix)
        bad = [part for part in parts if not _PART.match(part)]
        if bad:
            raise ConfigError(f"key_prefix: {bad[0]!r} is not a name Dagster takes (a letter, then "
                              "letters, digits and underscores), e.g. key_prefix: [edge_impulse]")
        return cls(parts)

    def key(self, *path: str) -> dg.AssetKey:
        return dg.AssetKey([*self.key_prefix, *path])

    def name(self, base: str) -> str:
        return "_".join((*self.key_prefix, base))

    @property
    def refresh_op(self) -> str:
        """The step that discovers, fetches and stores (its run config selects blocks)."""
        return self.name("studio_refresh")

    @property
    def refresh_job(self) -> str:
        return self.name("refresh")

    # the resources of an instance, by role
    @property
    def studio(self) -> str:
        return self.name("studio")

    @property
    def data_dir(self) -> str:
        return self.name("data_dir")

    @property
    def result_sink(self) -> str:
        return self.name("result_sink")

    def resource_key(self, role: str) -> str:
        """The key of the resource that plays `role` (studio, data_dir or result_sink)."""
        return {"studio": self.studio, "data_dir": self.data_dir, "result_sink": self.result_sink}[role]
