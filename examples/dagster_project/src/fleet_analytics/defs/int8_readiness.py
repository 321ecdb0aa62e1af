"""The project's own asset, downstream of both Edge Impulse instances: for each organisation,
how many of its latest models keep their accuracy within a point when quantized to int8."""

import os

import dagster as dg

from ei_assets import DataDir

READY = """
SELECT count(DISTINCT (c.project_id, c.learn_id)) FILTER (WHERE c.accuracy_delta >= -0.01) AS ready,
       count(DISTINCT (c.project_id, c.learn_id)) AS blocks
FROM model_type_comparison c JOIN latest_snapshots USING (project_id, learn_id, snapshot_id)
WHERE c.model_type = 'int8'
"""
ORGANISATIONS = {"vibration": "data/vibration", "vision": "data/vision"}  # as in their defs.yaml


@dg.asset(deps=[dg.AssetKey(["edge_impulse", org, "warehouse", "model_type_comparison"])
                for org in ORGANISATIONS])
def int8_readiness() -> dg.MaterializeResult:
    metadata = {}
    for org, default in ORGANISATIONS.items():
        data_dir = os.environ.get(f"EI_DATA_DIR_{org.upper()}", default)
        (row,) = DataDir.open(data_dir, writable=False).warehouse.query(READY).to_pylist()
        metadata[f"{org}_int8_ready"] = f"{row['ready']} of {row['blocks']} learn blocks"
    return dg.MaterializeResult(metadata=metadata)
