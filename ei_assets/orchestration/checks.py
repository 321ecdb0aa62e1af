"""Asset checks on the warehouse, always about the latest snapshot of each learn block."""


import warnings
from typing import Any

import dagster as dg

from ei_assets.orchestration.resources import DataDirResource
from ei_assets.schema import PUBLIC_VIEWS, WAREHOUSE_TABLES

LATEST = "snapshot_id IN (SELECT snapshot_id FROM latest_snapshots)"


def _rows(data_dir: DataDirResource, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    return data_dir.open().warehouse.query(sql, params).to_pylist()


def _result(rows: list[dict[str, Any]], severity: dg.AssetCheckSeverity, what: str) -> dg.AssetCheckResult:
    listing = "\n".join("- " + ", ".join(f"{k}={v}" for k, v in row.items()) for row in rows[:50])
    return dg.AssetCheckResult(
        passed=not rows, severity=severity,
        metadata={"count": len(rows), what: dg.MetadataValue.md(listing or "none")},
    )


@dg.asset_check(asset=["warehouse", "model_type_comparison"],
                description="int8 accuracy is not below float32's by more than "
                            "int8_max_accuracy_drop (latest snapshot of each block).")
def int8_accuracy_drop(data_dir: DataDirResource) -> dg.AssetCheckResult:
    rows = _rows(data_dir, f"""
        SELECT DISTINCT project_id, learn_id, snapshot_id, round(accuracy, 4) AS int8_accuracy,
               round(baseline_accuracy, 4) AS float32_accuracy, round(accuracy_delta, 4) AS delta
        FROM model_type_comparison
        WHERE model_type = 'int8' AND {LATEST} AND accuracy_delta < -?
        ORDER BY delta""", [data_dir.int8_max_accuracy_drop])
    return _result(rows, dg.AssetCheckSeverity.WARN, "blocks")


@dg.asset_check(asset=["warehouse", "model_type_trend"],
                description="The latest snapshot of a block did not regress against the previous "
                            "one (accuracy, latency, RAM, ROM).")
def no_regression(data_dir: DataDirResource) -> dg.AssetCheckResult:
    rows = _rows(data_dir, f"""
        SELECT project_id, learn_id, model_type, mcu, engine,
               round(accuracy_change, 4) AS accuracy_change, round(latency_change, 3) AS latency_change,
               round(ram_change, 3) AS ram_change, round(rom_change, 3) AS rom_change
        FROM model_type_trend WHERE is_regression AND {LATEST}
        ORDER BY project_id, learn_id, model_type, mcu, engine""")
    return _result(rows, dg.AssetCheckSeverity.WARN, "regressions")


@dg.asset_check(asset=["warehouse", "model_metrics"],
                description="No model type of a block's latest snapshot is still being profiled "
                            "or failed profiling.")
def profiling_complete(data_dir: DataDirResource) -> dg.AssetCheckResult:
    rows = _rows(data_dir, f"""
        SELECT project_id, learn_id, model_type, profiling_job_id,
               CASE WHEN profiling_failed THEN 'failed' ELSE 'pending' END AS state
        FROM model_metrics WHERE (profiling_pending OR profiling_failed) AND {LATEST}
        ORDER BY project_id, learn_id, model_type""")
    return _result(rows, dg.AssetCheckSeverity.WARN, "model_types")


@dg.asset_check(asset=["warehouse", "on_device_performance"],
                description="Every model type of a profiled latest snapshot has rows for its "
                            "default target.")
def default_target_complete(data_dir: DataDirResource) -> dg.AssetCheckResult:
    rows = _rows(data_dir, f"""
        SELECT m.project_id, m.learn_id, m.snapshot_id, m.model_type
        FROM model_metrics m
        WHERE m.{LATEST} AND NOT m.profiling_pending AND NOT m.profiling_failed
          AND NOT EXISTS (SELECT 1 FROM on_device_performance p
                          WHERE p.snapshot_id = m.snapshot_id AND p.model_type = m.model_type
                            AND p.is_default)
        ORDER BY 1, 2, 4""")
    return _result(rows, dg.AssetCheckSeverity.ERROR, "missing")


@dg.asset_check(asset=["warehouse", "predictions"],
                description="The model types of a latest snapshot were validated on the same "
                            "number of windows.")
def equal_prediction_counts(data_dir: DataDirResource) -> dg.AssetCheckResult:
    rows = _rows(data_dir, f"""
        SELECT project_id, learn_id, snapshot_id,
               string_agg(model_type || ':' || n_predictions, ', ' ORDER BY model_type) AS counts
        FROM model_metrics WHERE {LATEST}
        GROUP BY project_id, learn_id, snapshot_id
        HAVING count(DISTINCT n_predictions) > 1""")
    return _result(rows, dg.AssetCheckSeverity.ERROR, "snapshots")


@dg.asset_check(asset=["warehouse", "budget_fit"],
                description="The latest model of each block's recommended type fits the project's "
                            "selected application budget on its selected target.")
def recommended_model_fits_budget(data_dir: DataDirResource) -> dg.AssetCheckResult:
    rows = _rows(data_dir, f"""
        SELECT f.project_id, f.learn_id, f.model_type, f.engine, f.mcu,
               concat_ws('; ',
                   CASE WHEN f.latency_headroom < 0 THEN 'latency ' || round(f.latency_ms, 3) ||
                        ' ms > ' || f.latency_budget_ms || ' ms (+' || round(-f.latency_headroom, 3) ||
                        ' ms)' END,
                   CASE WHEN f.ram_headroom < 0 THEN 'RAM ' || f.ram_bytes || ' B > ' ||
                        f.ram_budget_bytes || ' B (+' || -f.ram_headroom || ' B)' END,
                   CASE WHEN f.rom_headroom < 0 THEN 'ROM ' || f.rom_bytes || ' B > ' ||
                        f.rom_budget_bytes || ' B (+' || -f.rom_headroom || ' B)' END) AS overshoot
        FROM budget_fit f JOIN latest_snapshots s USING (snapshot_id)
        WHERE f.{LATEST} AND f.model_type = s.recommended_model_type AND NOT f.fits
        ORDER BY 1, 2, 4""")
    return _result(rows, dg.AssetCheckSeverity.WARN, "over_budget")


with warnings.catch_warnings():  # the builder is marked beta; its behaviour is what we test
    warnings.simplefilter("ignore", dg.BetaWarning)
    # The warehouse's tables hold the lake's columns and more, so their checks cover the lake's.
    schema_change_checks = dg.build_column_schema_change_checks(
        assets=[
            *[dg.AssetKey(["warehouse", t]) for t in WAREHOUSE_TABLES],
            *[dg.AssetKey(["warehouse", v]) for v in PUBLIC_VIEWS],
        ],
        severity=dg.AssetCheckSeverity.WARN,
    )

CHECKS = [int8_accuracy_drop, no_regression, profiling_complete, default_target_complete,
          equal_prediction_counts, recommended_model_fits_budget, *schema_change_checks]
__all__ = ["CHECKS"]
