"""The code location for Kubernetes: the same definitions, each step a Kubernetes job.

Point the user-code deployment at this module (`-m ei_assets.k8s`, see docs/deploying.md). It
needs the `scale` extra (dagster-k8s, dagster-postgres, the DuckDB extensions).
"""

from __future__ import annotations

from dagster_k8s import k8s_job_executor

from ei_assets.definitions import build_definitions

defs = build_definitions(executor=k8s_job_executor)
