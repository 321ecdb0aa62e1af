"""Asset checks on the warehouse, always about the latest snapshot of each learn block."""

__all__ = ["WAREHOUSE_CHECKS", "build_checks"]


import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import dagster as dg

from ei_assets.dagster.names import InstanceNames
from ei_assets.dagster.resources import DataDirResource
from ei_assets.schema import PUBLIC_VIEWS, WAREHOUSE_TABLES

# A snapshot belongs to one learn block: two blocks with identical responses share its id.
LATEST = ("(project_id, learn_id, snapshot_id) IN "
          "(SELECT project_id, learn_id, snapshot_id FROM latest_snapshots)")


@dataclass(frozen=True)
class _Check:
    """One check: it passes when `sql` finds no rows; those rows are listed under `listing`."""

    name: str
    asset: str  # a warehouse table or view
    description: str
    severity: dg.AssetCheckSeverity
    listing: str
    sql: str
    threshold: str | None = None  # the DataDirResource field bound to the query's one `?`


WARN, ERROR = dg.AssetCheckSeverity.WARN, dg.AssetCheckSeverity.ERROR
WAREHOUSE_CHECKS = (
    _Check("int8_accuracy_drop", "model_type_comparison",
           "int8 accuracy is not below float32's by more than int8_max_accuracy_drop (latest "
           "snapshot of each block).", WARN, "blocks", f"""
        SELECT DISTINCT project_id, learn_id, snapshot_id, round(accuracy, 4) AS int8_accuracy,
               round(baseline_accuracy, 4) AS float32_accuracy, round(accuracy_delta, 4) AS delta
        FROM model_type_comparison
        WHERE model_type = 'int8' AND {LATEST} AND accuracy_delta < -?
        ORDER BY delta""", threshold="int8_max_accuracy_drop"),
    _Check("no_regression", "model_type_trend",
           "The latest snapshot of a block did not regress against the previous one (accuracy, "
           "latency, RAM, ROM).", WARN, "regressions", f"""
        SELECT project_id, learn_id, model_type, mcu, engine,
               round(accuracy_change, 4) AS accuracy_change, round(latency_change, 3) AS latency_change,
               round(ram_change, 3) AS ram_change, round(rom_change, 3) AS rom_change
        FROM model_type_trend WHERE is_regression AND {LATEST}
        ORDER BY project_id, learn_id, model_type, mcu, engine"""),
    _Check("profiling_complete", "model_metrics",
           "No model type of a block's latest snapshot is still being profiled or failed "
           "profiling.", WARN, "model_types", f"""
        SELECT project_id, learn_id, model_type, profiling_job_id,
               CASE WHEN profiling_failed THEN 'failed' ELSE 'pending' END AS state
        FROM model_metrics WHERE (profiling_pending OR profiling_failed) AND {LATEST}
        ORDER BY project_id, learn_id, model_type"""),
    _Check("default_target_complete", "on_device_performance",
           "Every model type of a profiled latest snapshot has rows for its default target.",
           ERROR, "missing", f"""
        SELECT m.project_id, m.learn_id, m.snapshot_id, m.model_type
        FROM model_metrics m
        WHERE {LATEST} AND NOT m.profiling_pending AND NOT m.profiling_failed
          AND NOT EXISTS (SELECT 1 FROM on_device_performance p
                          WHERE p.project_id = m.project_id AND p.learn_id = m.learn_id
                            AND p.snapshot_id = m.snapshot_id AND p.model_type = m.model_type
                            AND p.is_default)
        ORDER BY 1, 2, 4"""),
    _Check("equal_prediction_counts", "predictions",
           "The model types of a latest snapshot were validated on the same number of windows.",
           ERROR, "snapshots", f"""
        SELECT project_id, learn_id, snapshot_id,
               string_agg(model_type || ':' || n_predictions, ', ' ORDER BY model_type) AS counts
        FROM model_metrics WHERE {LATEST}
        GROUP BY project_id, learn_id, snapshot_id
        HAVING count(DISTINCT n_predictions) > 1"""),
    _Check("recommended_model_fits_budget", "budget_fit",
           "The latest model of each block's recommended type fits the project's selected "
           "application budget on its selected target.", WARN, "over_budget", """
        SELECT f.project_id, f.learn_id, f.model_type, f.engine, f.mcu,
               concat_ws('; ',
                   CASE WHEN f.latency_headroom < 0 THEN 'latency ' || round(f.latency_ms, 3) ||
                        ' ms > ' || f.latency_budget_ms || ' ms (+' || round(-f.latency_headroom, 3) ||
                        ' ms)' END,
                   CASE WHEN f.ram_headroom < 0 THEN 'RAM ' || f.ram_bytes || ' B > ' ||
                        f.ram_budget_bytes || ' B (+' || -f.ram_headroom || ' B)' END,
                   CASE WHEN f.rom_headroom < 0 THEN 'ROM ' || f.rom_bytes || ' B > ' ||
                        f.rom_budget_bytes || ' B (+' || -f.rom_headroom || ' B)' END) AS overshoot
        FROM budget_fit f JOIN latest_snapshots s USING (project_id, learn_id, snapshot_id)
        WHERE f.model_type = s.recommended_model_type AND NOT f.fits
        ORDER BY 1, 2, 4"""),
)


def build_checks(names: InstanceNames, *, schema_changes: bool = True
                 ) -> list[dg.AssetChecksDefinition]:
    """The warehouse checks of one instance, and (with `schema_changes`) the column schema change
    checks of its tables and views."""
    def key(check: _Check) -> dg.AssetCheckKey:
        return dg.AssetCheckKey(names.key("warehouse", check.asset), check.name)

    @dg.multi_asset_check(
        name=names.name("warehouse_checks"),
        specs=[dg.AssetCheckSpec(c.name, asset=key(c).asset_key, description=c.description)
               for c in WAREHOUSE_CHECKS],
        can_subset=True,
        required_resource_keys={names.data_dir},
    )
    def warehouse_checks(context: dg.AssetCheckExecutionContext) -> Iterator[dg.AssetCheckResult]:
        """Every selected check in one step (each step costs a run events of its own)."""
        data_dir: DataDirResource = getattr(context.resources, names.data_dir)
        selected = [c for c in WAREHOUSE_CHECKS if key(c) in context.selected_asset_check_keys]
        with data_dir.open().warehouse.reader() as reader:  # every check sees the same state
            found = [reader.query(c.sql, [getattr(data_dir, c.threshold)] if c.threshold else None)
                     .to_pylist() for c in selected]
        for check, rows in zip(selected, found, strict=True):
            listing = "\n".join("- " + ", ".join(f"{k}={v}" for k, v in row.items()) for row in rows[:50])
            yield dg.AssetCheckResult(
                asset_key=key(check).asset_key, check_name=check.name, passed=not rows,
                severity=check.severity,
                metadata={"count": len(rows), check.listing: dg.MetadataValue.md(listing or "none")},
            )

    if not schema_changes:
        return [warehouse_checks]
    with warnings.catch_warnings():  # the builder is marked beta; its behaviour is what we test
        warnings.simplefilter("ignore", dg.BetaWarning)
        # The warehouse's tables hold the lake's columns and more, so their checks cover the lake's.
        schema_change_checks = dg.build_column_schema_change_checks(
            assets=[names.key("warehouse", r) for r in (*WAREHOUSE_TABLES, *PUBLIC_VIEWS)],
            severity=dg.AssetCheckSeverity.WARN,
        )
    return [warehouse_checks, *schema_change_checks]
