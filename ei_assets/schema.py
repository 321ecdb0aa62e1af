"""Arrow schemas of every lake and warehouse table, declared once.

The flattener builds these exact schemas, the lake writes them, the warehouse creates its tables
from them and the Dagster layer publishes them as `dagster/column_schema`. Column names and types
are the contract (../shared/CONTRACT.md): add freely, never rename or drop.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

UTC_TS = pa.timestamp("us", tz="UTC")


def _keys(*, model_type: bool = True) -> list[pa.Field]:
    fields = [
        pa.field("snapshot_id", pa.string(), nullable=False),
        pa.field("project_id", pa.int64(), nullable=False),
        pa.field("learn_id", pa.int64(), nullable=False),
    ]
    if model_type:
        fields.append(pa.field("model_type", pa.string(), nullable=False))
    return fields


def _window() -> list[pa.Field]:
    return [
        pa.field("sample_id", pa.int64(), nullable=False),
        pa.field("start_ms", pa.float64(), nullable=False),
        pa.field("end_ms", pa.float64(), nullable=False),
    ]


@dataclass(frozen=True)
class Table:
    name: str
    description: str
    schema: pa.Schema
    per_snapshot: bool = True  # lake file per snapshot; False: an append-only log


TABLES: dict[str, Table] = {
    t.name: t
    for t in [
        Table(
            "snapshots",
            "One row per distinct metadata response of a learn block.",
            pa.schema([
                *_keys(model_type=False),
                pa.field("block_type", pa.string()),
                pa.field("model_created_at", UTC_TS),
                pa.field("fetched_at", UTC_TS),
                pa.field("recommended_model_type", pa.string()),
                pa.field("available_model_types", pa.list_(pa.string())),
                pa.field("has_trained_model", pa.bool_()),
                pa.field("default_minimum_confidence_rating", pa.float64()),
                pa.field("axes", pa.list_(pa.int32())),
                pa.field("scale", pa.list_(pa.float64())),
                pa.field("mean", pa.list_(pa.float64())),
                pa.field("mode", pa.string()),
                pa.field("class_names", pa.list_(pa.string())),
                pa.field("raw_path", pa.string()),
            ]),
        ),
        Table(
            "model_metrics",
            "One row per snapshot and model type (float32, int8, akida, ...).",
            pa.schema([
                *_keys(),
                pa.field("loss", pa.float64()),
                pa.field("accuracy", pa.float64()),
                pa.field("visualization", pa.string()),
                pa.field("is_supported_on_mcu", pa.bool_()),
                pa.field("mcu_support_error", pa.string()),
                pa.field("profiling_job_id", pa.int64()),
                pa.field("profiling_pending", pa.bool_()),
                pa.field("profiling_failed", pa.bool_()),
                pa.field("n_predictions", pa.int64()),
            ]),
        ),
        Table(
            "predictions",
            "One row per validation window of a model type.",
            pa.schema([
                *_keys(),
                *_window(),
                pa.field("label", pa.string()),
                pa.field("prediction", pa.string()),
                pa.field("prediction_correct", pa.bool_()),
                pa.field("expected_anomaly_outcome", pa.string()),
                pa.field("f1_score", pa.float64()),
                pa.field("anomaly_score_max", pa.float32()),
                pa.field("anomaly_score_mean", pa.float64()),
                pa.field("n_bounding_boxes", pa.int32()),
            ]),
        ),
        Table(
            "anomaly_scores",
            "One row per prediction that carries a visual-anomaly score grid.",
            pa.schema([
                *_keys(),
                *_window(),
                pa.field("grid_rows", pa.int32()),
                pa.field("grid_cols", pa.int32()),
                pa.field("scores", pa.list_(pa.list_(pa.float32()))),
            ]),
        ),
        Table(
            "bounding_boxes",
            "One row per predicted bounding box (object detection), coordinates scaled 0..1.",
            pa.schema([
                *_keys(),
                *_window(),
                pa.field("box_index", pa.int32(), nullable=False),
                pa.field("label", pa.string()),
                pa.field("x", pa.float64()),
                pa.field("y", pa.float64()),
                pa.field("width", pa.float64()),
                pa.field("height", pa.float64()),
                pa.field("score", pa.float64()),
            ]),
        ),
        Table(
            "on_device_performance",
            "One row per snapshot, model type, target and engine (tflite, eon, eon_ram_optimized).",
            pa.schema([
                *_keys(),
                pa.field("mcu", pa.string(), nullable=False),
                pa.field("device_name", pa.string()),
                pa.field("is_default", pa.bool_()),
                pa.field("has_performance", pa.bool_()),
                pa.field("profiling_error", pa.string()),
                pa.field("latency_ms", pa.float64()),
                pa.field("engine", pa.string(), nullable=False),
                pa.field("ram_bytes", pa.int64()),
                pa.field("rom_bytes", pa.int64()),
                pa.field("arena_bytes", pa.int64()),
                pa.field("model_bytes", pa.int64()),
            ]),
        ),
        Table(
            "custom_metrics",
            "One row per device-specific custom metric of a target.",
            pa.schema([
                *_keys(),
                pa.field("mcu", pa.string(), nullable=False),
                pa.field("name", pa.string()),
                pa.field("value", pa.string()),
            ]),
        ),
        Table(
            "additional_metrics",
            "One row per additional metric of a model type (F1, mAP, AUROC, ...).",
            pa.schema([
                *_keys(),
                pa.field("name", pa.string()),
                pa.field("value", pa.string()),
                pa.field("full_precision_value", pa.float64()),
                pa.field("tooltip_text", pa.string()),
                pa.field("link", pa.string()),
            ]),
        ),
        Table(
            "confusion_matrix",
            "One row per confusion matrix cell.",
            pa.schema([
                *_keys(),
                pa.field("actual_index", pa.int32(), nullable=False),
                pa.field("predicted_index", pa.int32(), nullable=False),
                pa.field("count", pa.float64()),
            ]),
        ),
        Table(
            "classification_report",
            "One row per report entry: each class, and the averages under their own keys "
            "('macro avg', 'weighted avg'); a bare number such as 'accuracy' lands in f1_score.",
            pa.schema([
                *_keys(),
                pa.field("class", pa.string(), nullable=False),
                pa.field("precision", pa.float64()),
                pa.field("recall", pa.float64()),
                pa.field("f1_score", pa.float64()),
                pa.field("support", pa.float64()),
            ]),
        ),
        Table(
            "clusters",
            "One row per K-means cluster of an anomaly block.",
            pa.schema([
                *_keys(model_type=False),
                pa.field("cluster_index", pa.int32(), nullable=False),
                pa.field("center", pa.list_(pa.float64())),
                pa.field("max_error", pa.float64()),
            ]),
        ),
        Table(
            "gmm_components",
            "One row per Gaussian mixture component of an anomaly-gmm block.",
            pa.schema([
                *_keys(model_type=False),
                pa.field("component_index", pa.int32(), nullable=False),
                pa.field("weight", pa.float64()),
                pa.field("mean", pa.list_(pa.float64())),
                pa.field("covariance", pa.list_(pa.list_(pa.float64()))),
            ]),
        ),
        Table(
            "thresholds",
            "One row per configurable threshold of a block; the value is numeric or text.",
            pa.schema([
                *_keys(model_type=False),
                pa.field("key", pa.string(), nullable=False),
                pa.field("description", pa.string()),
                pa.field("help_text", pa.string()),
                pa.field("value_number", pa.float64()),
                pa.field("value_text", pa.string()),
                pa.field("suggested_value", pa.float64()),
                pa.field("suggested_value_text", pa.string()),
            ]),
        ),
        Table(
            "fetch_log",
            "One row per HTTP fetch of a metadata endpoint, successful or not.",
            pa.schema([
                pa.field("fetched_at", UTC_TS, nullable=False),
                pa.field("project_id", pa.int64(), nullable=False),
                pa.field("learn_id", pa.int64(), nullable=False),
                pa.field("endpoint", pa.string(), nullable=False),
                pa.field("http_status", pa.int32()),
                pa.field("ok", pa.bool_(), nullable=False),
                pa.field("attempts", pa.int32()),
                pa.field("duration_ms", pa.float64()),
                pa.field("bytes", pa.int64()),
                pa.field("snapshot_id", pa.string()),
                pa.field("changed", pa.bool_()),
                pa.field("error", pa.string()),
            ]),
            per_snapshot=False,
        ),
        Table(
            "discoveries",
            "One row per learn block seen by a discovery run (source of learn_blocks).",
            pa.schema([
                pa.field("seen_at", UTC_TS, nullable=False),
                pa.field("project_id", pa.int64(), nullable=False),
                pa.field("project_name", pa.string()),
                pa.field("impulse_id", pa.int64()),
                pa.field("impulse_name", pa.string()),
                pa.field("learn_id", pa.int64(), nullable=False),
                pa.field("block_type", pa.string()),
                pa.field("block_name", pa.string()),
                pa.field("block_title", pa.string()),
            ]),
            per_snapshot=False,
        ),
    ]
}

SNAPSHOT_TABLES = [name for name, table in TABLES.items() if table.per_snapshot]
# Written last for a snapshot: its presence in the lake means every other table file is there.
COMMIT_TABLE = "snapshots"


def empty(name: str) -> pa.Table:
    return TABLES[name].schema.empty_table()
