"""The schema registry: every lake table, warehouse table and view, declared once.

Each relation lists its columns with type, nullability and a one-line description. Everything
else derives from here: the Parquet schemas the flattener builds and the lake writes
(`Relation.arrow_schema`), the DuckDB DDL and comments (`ei_assets.warehouse`), the parse schema
of prediction objects (`PREDICTION_PARSE_SCHEMA`, from the columns' JSON `source` names), the
Dagster column schemas, and the tests that compare a built warehouse with this file. Names and
types are the contract (../shared/CONTRACT.md): add freely, never rename or drop.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import Enum

import pyarrow as pa

UTC_TS = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    description: str
    nullable: bool = True
    source: str | None = None  # where a prediction column comes from in the API's JSON

    @property
    def field(self) -> pa.Field[pa.DataType]:
        return pa.field(self.name, self.type, nullable=self.nullable)

    @property
    def sql_type(self) -> str:
        return sql_type(self.type)


class Kind(Enum):
    """Where a table's rows come from, and so how the warehouse loads it."""

    SNAPSHOT = "snapshot"  # one lake file per snapshot, loaded when the snapshot is committed
    LOG = "log"  # raw/_log run files, each loaded once
    DERIVED = "derived"  # built in the warehouse by SQL (a table rebuilt on load, or a view)


@dataclass(frozen=True)
class Relation:
    name: str
    description: str
    columns: tuple[Column, ...]
    kind: Kind
    is_view: bool = False
    # columns only the warehouse has (maintained by SQL on load), after the lake's columns
    warehouse_columns: tuple[Column, ...] = ()
    public: bool = True  # part of the contract; False: a helper the other views use

    @property
    def arrow_schema(self) -> pa.Schema:
        """The lake's (or run log's) Parquet schema."""
        return pa.schema([c.field for c in self.columns])

    @property
    def all_columns(self) -> tuple[Column, ...]:
        """The columns as the warehouse has them, in order."""
        return self.columns + self.warehouse_columns

    def column(self, name: str) -> Column:
        for column in self.all_columns:
            if column.name == name:
                return column
        raise KeyError(f"{self.name} has no column {name!r}")

    def empty(self) -> pa.Table:
        return self.arrow_schema.empty_table()


def sql_type(arrow: pa.DataType) -> str:
    """DuckDB's name for an Arrow type, as information_schema.columns spells it."""
    if pa.types.is_list(arrow):
        return sql_type(arrow.value_type) + "[]"
    if pa.types.is_timestamp(arrow):
        return "TIMESTAMP WITH TIME ZONE" if arrow.tz else "TIMESTAMP"
    names = {pa.int64(): "BIGINT", pa.int32(): "INTEGER", pa.string(): "VARCHAR",
             pa.float64(): "DOUBLE", pa.float32(): "FLOAT", pa.bool_(): "BOOLEAN"}
    if arrow not in names:
        raise ValueError(f"no DuckDB type declared for {arrow}")
    return names[arrow]


# ---- shared columns ------------------------------------------------------------------------------

SNAPSHOT_ID = Column("snapshot_id", pa.string(), "Content id of the metadata response (SHA-256 of its "
                     "bytes without insignificant whitespace, 32 hex digits): the same response always "
                     "has the same id. "
                     "A snapshot belongs to one learn block: (project_id, learn_id, snapshot_id) "
                     "identifies it.", nullable=False)
PROJECT_ID = Column("project_id", pa.int64(), "Edge Impulse project id.", nullable=False)
LEARN_ID = Column("learn_id", pa.int64(), "Learn block id within the project.", nullable=False)
MODEL_TYPE = Column("model_type", pa.string(), "Model build as the API names it: float32, int8, akida, "
                    "requiresRetrain or any new one.", nullable=False)
SAMPLE_ID = Column("sample_id", pa.int64(), "Validation sample id.", nullable=False, source="sampleId")
START_MS = Column("start_ms", pa.float64(), "Window start within the sample, ms (0 for object detection).",
                  nullable=False, source="startMs")
END_MS = Column("end_ms", pa.float64(), "Window end within the sample, ms (0 for object detection).",
                nullable=False, source="endMs")
MCU = Column("mcu", pa.string(), "Target (latency device) the figures were profiled for.", nullable=False)
ENGINE = Column("engine", pa.string(), "Inference engine: tflite, eon or eon_ram_optimized.",
                nullable=False)
FETCHED_AT = Column("fetched_at", UTC_TS, "When the response was fetched.", nullable=False)

CLASS_NAME = Column("class_name", pa.string(), "The class's label where `class` is an index into "
                    "the snapshot's class names (snapshots.class_names), else NULL.")

KEYS = (SNAPSHOT_ID, PROJECT_ID, LEARN_ID)
MODEL_KEYS = (*KEYS, MODEL_TYPE)
WINDOW = (SAMPLE_ID, START_MS, END_MS)


def _snapshot_table(name: str, description: str, *columns: Column) -> Relation:
    return Relation(name, description, columns, Kind.SNAPSHOT)


_c = Column


SNAPSHOTS = Relation(
    "snapshots", "One row per distinct metadata response of a learn block.",
    (
        *KEYS,
        _c("block_type", pa.string(), "Learn block type (keras, anomaly, anomaly-gmm, keras-*)."),
        _c("model_created_at", UTC_TS, "When the model was trained (the response's `created`)."),
        _c("fetched_at", UTC_TS, "When this response was first fetched."),
        _c("recommended_model_type", pa.string(), "The model type Studio recommends deploying."),
        _c("available_model_types", pa.list_(pa.string()), "Model types built for this snapshot."),
        _c("has_trained_model", pa.bool_(), "Whether the block has a trained model."),
        _c("default_minimum_confidence_rating", pa.float64(), "Default minimum confidence rating."),
        _c("axes", pa.list_(pa.int32()), "Indexes of the feature axes the model reads."),
        _c("scale", pa.list_(pa.float64()), "Per-feature scale of the anomaly block."),
        _c("mean", pa.list_(pa.float64()), "Per-feature mean of the anomaly block."),
        _c("mode", pa.string(), "Block mode as the API reports it (e.g. classification)."),
        _c("class_names", pa.list_(pa.string()), "Class names of the model, in output order."),
        _c("raw_path", pa.string(), "Folder of the archived response, relative to EI_DATA_DIR."),
    ),
    Kind.SNAPSHOT,
    warehouse_columns=(
        _c("first_fetched_at", UTC_TS, "First fetch that returned this snapshot."),
        _c("last_fetched_at", UTC_TS, "Latest fetch that returned this snapshot."),
    ),
)

PREDICTIONS = _snapshot_table(
    "predictions", "One row per validation window of a model type.",
    *MODEL_KEYS, *WINDOW,
    _c("label", pa.string(), "Expected label of the window.", source="label"),
    _c("prediction", pa.string(), "The model's prediction for the window.", nullable=False,
       source="prediction"),
    _c("prediction_correct", pa.bool_(), "Whether the prediction matches the label.",
       source="predictionCorrect"),
    _c("expected_anomaly_outcome", pa.string(), "Expected anomaly outcome (anomaly blocks).",
       source="expectedAnomalyOutcome"),
    _c("f1_score", pa.float64(), "Per-window F1 score (object detection).", source="f1Score"),
    _c("anomaly_score_max", pa.float32(), "Largest cell of the window's anomaly score grid."),
    _c("anomaly_score_mean", pa.float64(), "Mean cell of the window's anomaly score grid."),
    _c("n_bounding_boxes", pa.int32(), "Number of predicted bounding boxes."),
)

ANOMALY_SCORES = _snapshot_table(
    "anomaly_scores", "One row per prediction that carries a visual-anomaly score grid.",
    *MODEL_KEYS, *WINDOW,
    _c("grid_rows", pa.int32(), "Rows of the score grid."),
    _c("grid_cols", pa.int32(), "Columns of the score grid (of its first row)."),
    _c("scores", pa.list_(pa.list_(pa.float32())), "The score grid, row by row.",
       source="anomalyScores"),
)

BOUNDING_BOXES = _snapshot_table(
    "bounding_boxes", "One row per predicted bounding box (object detection), coordinates scaled 0..1.",
    *MODEL_KEYS, *WINDOW,
    _c("box_index", pa.int32(), "Position of the box in the window's list.", nullable=False),
    _c("label", pa.string(), "Predicted class of the box.", source="boundingBoxes.label"),
    _c("x", pa.float64(), "Left edge.", source="boundingBoxes.x"),
    _c("y", pa.float64(), "Top edge.", source="boundingBoxes.y"),
    _c("width", pa.float64(), "Width.", source="boundingBoxes.width"),
    _c("height", pa.float64(), "Height.", source="boundingBoxes.height"),
    _c("score", pa.float64(), "Confidence of the box.", source="boundingBoxes.score"),
)

ON_DEVICE_PERFORMANCE = _snapshot_table(
    "on_device_performance",
    "One row per snapshot, model type, target and engine (tflite, eon, eon_ram_optimized).",
    *MODEL_KEYS, MCU,
    _c("device_name", pa.string(), "Readable name of the target."),
    _c("is_default", pa.bool_(), "Whether this is the project's default target."),
    _c("has_performance", pa.bool_(), "Whether the target was profiled (false: figures are NULL)."),
    _c("profiling_error", pa.string(), "Why profiling failed or was not possible."),
    _c("latency_ms", pa.float64(), "Inference latency on the target, ms."),
    ENGINE,
    _c("ram_bytes", pa.int64(), "RAM the engine needs, bytes (NULL when not profiled, or when the "
       "model is too large for the target: Studio then sends 0)."),
    _c("rom_bytes", pa.int64(), "ROM (flash) the engine needs, bytes."),
    _c("arena_bytes", pa.int64(), "Tensor arena size, bytes (NULL as ram_bytes)."),
    _c("model_bytes", pa.int64(), "Model size, bytes."),
)

TABLES: dict[str, Relation] = {t.name: t for t in [
    SNAPSHOTS,
    _snapshot_table(
        "model_metrics", "One row per snapshot and model type (float32, int8, akida, ...).",
        *MODEL_KEYS,
        _c("loss", pa.float64(), "Validation loss."),
        _c("accuracy", pa.float64(), "Validation accuracy, 0..1."),
        _c("visualization", pa.string(), "How Studio visualises the validation set."),
        _c("is_supported_on_mcu", pa.bool_(), "Whether this model type runs on microcontrollers."),
        _c("mcu_support_error", pa.string(), "Why it does not run on microcontrollers."),
        _c("profiling_job_id", pa.int64(), "Id of the profiling job, while or after it ran."),
        _c("profiling_pending", pa.bool_(), "Profiling job started and not finished or failed."),
        _c("profiling_failed", pa.bool_(), "Profiling job failed."),
        _c("n_predictions", pa.int64(), "Number of validation windows."),
    ),
    PREDICTIONS,
    ANOMALY_SCORES,
    BOUNDING_BOXES,
    ON_DEVICE_PERFORMANCE,
    _snapshot_table(
        "custom_metrics", "One row per device-specific custom metric of a target.",
        *MODEL_KEYS, MCU,
        _c("name", pa.string(), "Metric name."),
        _c("value", pa.string(), "Metric value as text."),
    ),
    _snapshot_table(
        "additional_metrics", "One row per additional metric of a model type (F1, mAP, AUROC, ...).",
        *MODEL_KEYS,
        _c("name", pa.string(), "Metric name."),
        _c("value", pa.string(), "Metric value as Studio shows it."),
        _c("full_precision_value", pa.float64(), "Metric value as a number."),
        _c("tooltip_text", pa.string(), "Studio's explanation of the metric."),
        _c("link", pa.string(), "Link to the metric's documentation."),
    ),
    _snapshot_table(
        "confusion_matrix", "One row per confusion matrix cell.",
        *MODEL_KEYS,
        _c("actual_index", pa.int32(), "Row: index of the actual class.", nullable=False),
        _c("predicted_index", pa.int32(), "Column: index of the predicted class.", nullable=False),
        _c("count", pa.float64(), "Cell value as Studio sends it."),
    ),
    Relation(
        "classification_report",
        "One row per report entry: each class, and the averages under their own keys "
        "('macro avg', 'weighted avg'); a bare number such as 'accuracy' lands in f1_score.",
        (
            *MODEL_KEYS,
            _c("class", pa.string(), "The report's key as the API sends it: a class index (\"0\", "
               "\"1\", ...; classes that never occur are left out), a class name, or an average "
               "key.", nullable=False),
            _c("precision", pa.float64(), "Precision."),
            _c("recall", pa.float64(), "Recall."),
            _c("f1_score", pa.float64(), "F1 score (or a bare number such as accuracy)."),
            _c("support", pa.float64(), "Number of windows of the class."),
        ),
        Kind.SNAPSHOT,
        warehouse_columns=(CLASS_NAME,),
    ),
    _snapshot_table(
        "clusters", "One row per K-means cluster of an anomaly block.",
        *KEYS,
        _c("cluster_index", pa.int32(), "Position of the cluster.", nullable=False),
        _c("center", pa.list_(pa.float64()), "Cluster center in feature space."),
        _c("max_error", pa.float64(), "Largest distance to the center seen in training."),
    ),
    _snapshot_table(
        "gmm_components", "One row per Gaussian mixture component of an anomaly-gmm block.",
        *KEYS,
        _c("component_index", pa.int32(), "Position of the component.", nullable=False),
        _c("weight", pa.float64(), "Mixture weight."),
        _c("mean", pa.list_(pa.float64()), "Component mean."),
        _c("covariance", pa.list_(pa.list_(pa.float64())), "Component covariance matrix."),
    ),
    _snapshot_table(
        "thresholds", "One row per configurable threshold of a block; the value is numeric or text.",
        *KEYS,
        _c("key", pa.string(), "Threshold key, e.g. min_anomaly_score.", nullable=False),
        _c("description", pa.string(), "What the threshold does."),
        _c("help_text", pa.string(), "Studio's help text."),
        _c("value_number", pa.float64(), "The value, when it is a number."),
        _c("value_text", pa.string(), "The value as text."),
        _c("suggested_value", pa.float64(), "Studio's suggested value."),
        _c("suggested_value_text", pa.string(), "Studio's suggested value as text."),
    ),
    Relation(
        "fetch_log", "One row per HTTP fetch of a metadata endpoint, successful or not, or per block "
        "not fetched because its project did not change.",
        (
            _c("fetched_at", UTC_TS, "When the fetch started.", nullable=False),
            PROJECT_ID, LEARN_ID,
            _c("endpoint", pa.string(), "Endpoint name: keras, anomaly or gmm.", nullable=False),
            _c("http_status", pa.int32(), "Last HTTP status (NULL when no response came)."),
            _c("ok", pa.bool_(), "Whether the HTTP fetch succeeded (error may still say storing "
               "failed).", nullable=False),
            _c("attempts", pa.int32(), "Requests made, retries included."),
            _c("duration_ms", pa.float64(), "Time from first request to response, ms."),
            _c("bytes", pa.int64(), "Body size, bytes."),
            _c("snapshot_id", pa.string(), "Snapshot the response belongs to."),
            _c("changed", pa.bool_(), "Whether the response was a new snapshot."),
            _c("error", pa.string(), "What went wrong, naming the block (a snapshot the warehouse "
               "refused, too)."),
            _c("outcome", pa.string(), "fetched, or not_modified: not fetched because Studio said its "
               "project did not change (then http_status is NULL, bytes 0)."),
        ),
        Kind.LOG,
    ),
    Relation(
        "discoveries", "One row per learn block seen by a discovery run (source of learn_blocks).",
        (
            _c("seen_at", UTC_TS, "When the discovery ran.", nullable=False),
            PROJECT_ID,
            _c("project_name", pa.string(), "Project name."),
            _c("impulse_id", pa.int64(), "Impulse id."),
            _c("impulse_name", pa.string(), "Impulse name."),
            LEARN_ID,
            _c("block_type", pa.string(), "Learn block type."),
            _c("block_name", pa.string(), "Learn block name."),
            _c("block_title", pa.string(), "Learn block title."),
        ),
        Kind.LOG,
    ),
    Relation(
        "target_constraints",
        "One row per target device in a project's target constraints, per fetch; the first "
        "(target_index 0) is the selected target.",
        (
            _c("fetched_at", UTC_TS, "When the target constraints were fetched.", nullable=False),
            PROJECT_ID,
            _c("target_index", pa.int32(), "Position in the API's list; 0 is the selected target.",
               nullable=False),
            _c("is_selected", pa.bool_(), "Whether this is the project's selected target.",
               nullable=False),
            _c("device_name", pa.string(), "Display name of the device."),
            _c("board", pa.string(), "Dev board part number, if known."),
            _c("mcu", pa.string(), "The device's latencyDevice: the target profiled models name."),
            _c("ram_min_bytes", pa.int64(), "First processor's RAM, minimum (fast + slow)."),
            _c("ram_max_bytes", pa.int64(), "First processor's RAM, maximum (fast + slow)."),
            _c("rom_min_bytes", pa.int64(), "First processor's ROM, minimum (fast + slow)."),
            _c("rom_max_bytes", pa.int64(), "First processor's ROM, maximum (fast + slow)."),
            _c("clock_min_mhz", pa.float64(), "First processor's clock rate, minimum, MHz."),
            _c("clock_max_mhz", pa.float64(), "First processor's clock rate, maximum, MHz."),
        ),
        Kind.LOG,
    ),
    Relation(
        "application_budgets",
        "One row per application budget in a project's target constraints, per fetch; the first "
        "(budget_index 0) is the selected budget.",
        (
            _c("fetched_at", UTC_TS, "When the target constraints were fetched.", nullable=False),
            PROJECT_ID,
            _c("budget_index", pa.int32(), "Position in the API's list; 0 is the selected budget.",
               nullable=False),
            _c("is_selected", pa.bool_(), "Whether this is the project's selected budget.",
               nullable=False),
            _c("latency_max_ms", pa.float64(), "Most latency allowed per inference, ms."),
            _c("ram_max_bytes", pa.int64(), "Most RAM the model may use (memory overhead, fast + slow)."),
            _c("rom_max_bytes", pa.int64(), "Most ROM the model may use (memory overhead, fast + slow)."),
            _c("energy_max_joules", pa.float64(), "Most energy allowed per inference, J."),
        ),
        Kind.LOG,
    ),
]}


def _from(relation: Relation, *names: str) -> tuple[Column, ...]:
    """Columns a derived relation takes over unchanged (same type, same description)."""
    return tuple(relation.column(name) for name in names)


def _nullable(columns: Iterable[Column]) -> tuple[Column, ...]:
    """Columns as a view or outer join shows them: DuckDB reports view columns as nullable."""
    return tuple(replace(c, nullable=True, source=None) for c in columns)


_DISCOVERY = TABLES["discoveries"]
TABLES["learn_blocks"] = Relation(
    "learn_blocks", "One row per learn block ever discovered, as last seen, with presence.",
    (
        *_from(_DISCOVERY, "project_id", "project_name", "impulse_id", "impulse_name", "learn_id",
               "block_type", "block_name", "block_title"),
        _c("first_seen_at", UTC_TS, "First discovery that listed the block."),
        _c("last_seen_at", UTC_TS, "Latest discovery that listed the block."),
        _c("is_present", pa.bool_(), "Listed by the latest discovery of its project."),
    ),
    Kind.DERIVED,
)

# ---- views ----------------------------------------------------------------------------------------

_PERF = ON_DEVICE_PERFORMANCE
_METRICS = TABLES["model_metrics"]
_REPORT = TABLES["classification_report"]


def _baseline(column: Column, what: str) -> Column:
    return _c(f"baseline_{column.name}", column.type, f"{what} of the baseline (float32).")


COMPARISON_COLUMNS = _nullable((
    PROJECT_ID, LEARN_ID, SNAPSHOT_ID,
    *_from(SNAPSHOTS, "model_created_at", "first_fetched_at"),
    *_from(_PERF, "mcu", "device_name", "is_default", "engine"),
    MODEL_TYPE,
    _c("baseline_model_type", pa.string(), "The model type compared against: float32."),
    _METRICS.column("accuracy"), _baseline(_METRICS.column("accuracy"), "Accuracy"),
    _c("accuracy_delta", pa.float64(), "accuracy - baseline_accuracy."),
    _METRICS.column("loss"), _baseline(_METRICS.column("loss"), "Loss"),
    _c("loss_delta", pa.float64(), "loss - baseline_loss."),
    _PERF.column("latency_ms"), _baseline(_PERF.column("latency_ms"), "Latency"),
    _c("latency_ratio", pa.float64(), "latency_ms / baseline_latency_ms (NULL if that is 0 or NULL)."),
    _PERF.column("ram_bytes"), _baseline(_PERF.column("ram_bytes"), "RAM"),
    _c("ram_ratio", pa.float64(), "ram_bytes / baseline_ram_bytes."),
    _PERF.column("rom_bytes"), _baseline(_PERF.column("rom_bytes"), "ROM"),
    _c("rom_ratio", pa.float64(), "rom_bytes / baseline_rom_bytes."),
    _c("prediction_agreement", pa.float64(), "Share of windows where both predict the same, 0..1."),
))

_ANOMALY_STATS = _nullable((
    PROJECT_ID, LEARN_ID, SNAPSHOT_ID, MODEL_TYPE,
    _c("n_scores", pa.int64(), "Windows with a score."),
    _c("score_p50", pa.float64(), "Median window score (quantile_cont)."),
    _c("score_p95", pa.float64(), "95th percentile of the window scores."),
    _c("score_max", pa.float64(), "Highest window score."),
    _c("threshold", pa.float64(), "The snapshot's min_anomaly_score (NULL if none)."),
    _c("share_above_threshold", pa.float64(), "Share of windows scoring above it."),
))

VIEWS: dict[str, Relation] = {v.name: v for v in [
    Relation("latest_snapshots", "The snapshot each learn block showed when last fetched.",
             _nullable(SNAPSHOTS.all_columns), Kind.DERIVED, is_view=True),
    Relation("model_type_pairs",
             "Every model type against float32, float32 against itself included (feeds the "
             "comparison and the trend).",
             COMPARISON_COLUMNS, Kind.DERIVED, is_view=True, public=False),
    Relation("model_type_comparison",
             "Each non-float32 model type against float32, per snapshot, target and engine: "
             "accuracy/loss deltas, latency/RAM/ROM ratios, agreement.",
             COMPARISON_COLUMNS, Kind.DERIVED, is_view=True),
    Relation("model_type_trend",
             "The comparison over the snapshots of a block (float32 against itself included), with "
             "changes against the previous snapshot and is_regression.",
             _nullable((
                 *COMPARISON_COLUMNS,
                 _c("previous_snapshot_id", pa.string(), "The block's previous snapshot (same model "
                    "type, target and engine)."),
                 _c("accuracy_change", pa.float64(), "accuracy - previous accuracy."),
                 _c("latency_change", pa.float64(), "latency_ms / previous latency_ms - 1."),
                 _c("ram_change", pa.float64(), "ram_bytes / previous ram_bytes - 1."),
                 _c("rom_change", pa.float64(), "rom_bytes / previous rom_bytes - 1."),
                 _c("is_regression", pa.bool_(), "Accuracy fell or a resource rose beyond the "
                    "thresholds against the previous snapshot."),
             )), Kind.DERIVED, is_view=True),
    Relation("prediction_disagreements",
             "Validation windows where a model type's prediction differs from float32's.",
             _nullable((
                 *_from(PREDICTIONS, "project_id", "learn_id", "snapshot_id", "model_type",
                        "sample_id", "start_ms", "end_ms", "label", "prediction"),
                 _c("baseline_prediction", pa.string(), "float32's prediction for the window."),
                 PREDICTIONS.column("prediction_correct"),
                 _c("baseline_prediction_correct", pa.bool_(), "Whether float32's prediction is right."),
             )), Kind.DERIVED, is_view=True),
    Relation("budget_fit",
             "Each profiled model type and engine on the project's selected target against its "
             "selected application budget (latest target-constraints fetch).",
             _nullable((
                 *_from(_PERF, "project_id", "learn_id", "snapshot_id", "model_type", "engine", "mcu",
                        "latency_ms", "ram_bytes", "rom_bytes"),
                 _c("latency_budget_ms", pa.float64(), "Selected budget's latency limit, ms."),
                 _c("ram_budget_bytes", pa.int64(), "Selected budget's RAM limit, bytes."),
                 _c("rom_budget_bytes", pa.int64(), "Selected budget's ROM limit, bytes."),
                 _c("latency_headroom", pa.float64(), "latency_budget_ms - latency_ms."),
                 _c("ram_headroom", pa.int64(), "ram_budget_bytes - ram_bytes."),
                 _c("rom_headroom", pa.int64(), "rom_budget_bytes - rom_bytes."),
                 _c("fits", pa.bool_(), "Every budgeted figure within budget; NULL when nothing is "
                    "budgeted or a budgeted figure was not profiled."),
             )), Kind.DERIVED, is_view=True),
    Relation("class_metric_deltas",
             "Per class of the classification report, each non-float32 model type against float32.",
             _nullable((
                 *_from(_REPORT, "project_id", "learn_id", "snapshot_id", "model_type", "class",
                        "class_name", "precision"),
                 _baseline(_REPORT.column("precision"), "Precision"),
                 _c("precision_delta", pa.float64(), "precision - baseline_precision."),
                 _REPORT.column("recall"), _baseline(_REPORT.column("recall"), "Recall"),
                 _c("recall_delta", pa.float64(), "recall - baseline_recall."),
                 _REPORT.column("f1_score"), _baseline(_REPORT.column("f1_score"), "F1 score"),
                 _c("f1_delta", pa.float64(), "f1_score - baseline_f1_score."),
                 _REPORT.column("support"),
             )), Kind.DERIVED, is_view=True),
    Relation("anomaly_score_trend",
             "Per snapshot and model type of a block with anomaly scores: the window scores "
             "against the threshold, and the change from the block's previous snapshot.",
             _nullable((
                 PROJECT_ID, LEARN_ID, SNAPSHOT_ID, SNAPSHOTS.column("model_created_at"), MODEL_TYPE,
                 *_ANOMALY_STATS[4:],
                 _c("previous_snapshot_id", pa.string(), "The block's previous snapshot."),
                 _c("p95_change", pa.float64(), "score_p95 - previous score_p95."),
             )), Kind.DERIVED, is_view=True),
]}


# Tables the warehouse fills for each snapshot it loads, from that snapshot's rows alone
# (sql/derived.sql): the joins and aggregations over predictions run once per snapshot, at load,
# not in every query of the views built on them.
PER_SNAPSHOT_TABLES: dict[str, Relation] = {t.name: t for t in [
    Relation("prediction_agreement",
             "Share of windows where a model type predicts what float32 predicts, per snapshot.",
             _nullable((PROJECT_ID, LEARN_ID, SNAPSHOT_ID, MODEL_TYPE, COMPARISON_COLUMNS[-1])),
             Kind.DERIVED, public=False),
    Relation("prediction_disagreement_rows", VIEWS["prediction_disagreements"].description,
             VIEWS["prediction_disagreements"].columns, Kind.DERIVED, public=False),
    Relation("anomaly_score_stats",
             "Per snapshot and model type, its windows' anomaly scores against its threshold.",
             _ANOMALY_STATS, Kind.DERIVED, public=False),
]}
TABLES.update(PER_SNAPSHOT_TABLES)

SNAPSHOT_TABLES = tuple(n for n, t in TABLES.items() if t.kind is Kind.SNAPSHOT)
LOG_TABLES = tuple(n for n, t in TABLES.items() if t.kind is Kind.LOG)
# What the warehouse publishes as tables: the lake's tables, the run logs but the raw discovery
# log, and learn_blocks (built from that log).
WAREHOUSE_TABLES = (*SNAPSHOT_TABLES, *(t for t in LOG_TABLES if t != "discoveries"), "learn_blocks")
PUBLIC_VIEWS = tuple(n for n, v in VIEWS.items() if v.public)
# Written last for a snapshot: its presence in the lake means every other table file is there.
COMMIT_TABLE = "snapshots"


def relation(name: str) -> Relation:
    if name in TABLES:
        return TABLES[name]
    if name in VIEWS:
        return VIEWS[name]
    raise KeyError(f"no table or view named {name!r}")


# ---- the parse schema of one prediction object, from the columns' JSON sources ----------------------

def _prediction_parse_schema() -> pa.Schema:
    fields: list[pa.Field[pa.DataType]] = []
    box_fields: list[pa.Field[pa.DataType]] = []
    for table in (PREDICTIONS, ANOMALY_SCORES, BOUNDING_BOXES):
        for column in table.columns:
            if column.source is None:
                continue
            if column.source.startswith("boundingBoxes."):
                box_fields.append(pa.field(column.source.split(".", 1)[1], column.type))
            elif column.source not in {f.name for f in fields}:
                fields.append(pa.field(column.source, column.type))  # nullable: checked separately
    fields.append(pa.field("boundingBoxes", pa.list_(pa.struct(box_fields))))
    return pa.schema(fields)


PREDICTION_PARSE_SCHEMA = _prediction_parse_schema()
REQUIRED_PREDICTION_FIELDS = tuple(c.source for c in PREDICTIONS.columns
                                   if c.source is not None and not c.nullable)
