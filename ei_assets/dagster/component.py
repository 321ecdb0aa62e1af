"""`EdgeImpulseComponent`: ei_assets as a Dagster Component, added to a project with a defs.yaml.

    dg scaffold defs ei_assets.EdgeImpulseComponent edge_impulse

writes `defs/edge_impulse/defs.yaml`; each attribute is optional (see `build_defs`, which builds
the same definitions). The API key is never in the YAML: `api_key_env_var` names the variable
that holds it, read when a run starts.
"""

from __future__ import annotations

from typing import Literal

import dagster as dg
from pydantic import BaseModel, Field

from ei_assets.dagster.definitions import build_defs

__all__ = ["EdgeImpulseComponent"]


class EdgeImpulseScaffolder(dg.Scaffolder[BaseModel]):
    """Writes a defs.yaml whose key prefix is the new folder's name, automation stopped."""

    def scaffold(self, request: dg.ScaffoldRequest[BaseModel]) -> None:
        dg.scaffold_component(request, {
            "key_prefix": [request.target_path.name],
            "api_key_env_var": "EI_API_KEY",
            "automation": "stopped",
        })


@dg.scaffold_with(EdgeImpulseScaffolder)
class EdgeImpulseComponent(dg.Component, dg.Model, dg.Resolvable):
    """The history of Edge Impulse models: every learn block's metadata archived, flattened to
    Parquet and loaded into DuckDB, with the comparisons of model types over time."""

    api_key_env_var: str = Field(
        default="EI_API_KEY",
        description="Name of the environment variable that holds the project API keys "
                    "(comma-separated); its value is read when a run starts, never stored.")
    api_url: str | None = Field(default=None, description="Studio API base URL (default: EI_API_URL, "
                                                          "else https://studio.edgeimpulse.com/v1).")
    data_dir: str | None = Field(default=None, description="Where raw/, lake/ and the warehouse live: "
                                                           "a path or s3://bucket/prefix (default: "
                                                           "EI_DATA_DIR, else ./data).")
    warehouse: str | None = Field(default=None, description="duckdb or ducklake:postgres:<conninfo> "
                                                            "(default: EI_WAREHOUSE, else duckdb).")
    max_concurrency: int | None = Field(default=None, description="Most Studio requests in flight at "
                                                                  "once (default: EI_MAX_CONCURRENCY, "
                                                                  "else 8).")
    verify_every: str | None = Field(default=None, description="How old a project's last full fetch "
                                                               "may be before its blocks are fetched "
                                                               "although Studio says it did not "
                                                               "change: 7d, 12h, 30m, 0 (default: "
                                                               "EI_VERIFY_EVERY, else 7d).")
    key_prefix: list[str] = Field(default=[],  # pydantic copies it: not shared between instances
                                  description="Prefix of every asset key (and of every job, schedule, "
                                              "sensor and resource name) of this instance.")
    automation: Literal["stopped", "running"] = Field(
        default="stopped", description="Whether its schedules and sensors start running.")

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        return build_defs(key_prefix=self.key_prefix, api_key_env_var=self.api_key_env_var,
                          api_url=self.api_url, data_dir=self.data_dir, warehouse=self.warehouse,
                          max_concurrency=self.max_concurrency, verify_every=self.verify_every,
                          automation=self.automation)
