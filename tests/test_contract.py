"""Every table, view and column that ../shared/CONTRACT.md promises is declared in the schema
registry (and so exists in the warehouse), under that name and with the promised types."""

from __future__ import annotations

from ei_assets.schema import relation

CONTRACT = {
    "learn_blocks": "project_id, project_name, impulse_id, impulse_name, learn_id, block_type, "
                    "block_name, block_title, first_seen_at, last_seen_at, is_present",
    "snapshots": "snapshot_id, project_id, learn_id, block_type, model_created_at, first_fetched_at, "
                 "last_fetched_at, recommended_model_type, available_model_types, has_trained_model, "
                 "default_minimum_confidence_rating, axes, scale, mean, raw_path",
    "model_metrics": "snapshot_id, project_id, learn_id, model_type, loss, accuracy, visualization, "
                     "is_supported_on_mcu, mcu_support_error, profiling_job_id, profiling_pending, "
                     "profiling_failed, n_predictions",
    "predictions": "snapshot_id, project_id, learn_id, model_type, sample_id, start_ms, end_ms, label, "
                   "prediction, prediction_correct, expected_anomaly_outcome, f1_score, "
                   "anomaly_score_max, anomaly_score_mean, n_bounding_boxes",
    "anomaly_scores": "snapshot_id, project_id, learn_id, model_type, sample_id, start_ms, end_ms, "
                      "grid_rows, grid_cols, scores",
    "bounding_boxes": "snapshot_id, project_id, learn_id, model_type, sample_id, start_ms, end_ms, "
                      "box_index, label, x, y, width, height, score",
    "on_device_performance": "snapshot_id, project_id, learn_id, model_type, mcu, device_name, "
                             "is_default, has_performance, profiling_error, latency_ms, engine, "
                             "ram_bytes, rom_bytes, arena_bytes, model_bytes",
    "custom_metrics": "snapshot_id, project_id, learn_id, model_type, mcu, name, value",
    "additional_metrics": "snapshot_id, project_id, learn_id, model_type, name, value, "
                          "full_precision_value, tooltip_text, link",
    "confusion_matrix": "snapshot_id, project_id, learn_id, model_type, actual_index, "
                        "predicted_index, count",
    "classification_report": "snapshot_id, project_id, learn_id, model_type, class, precision, "
                             "recall, f1_score, support",
    "clusters": "snapshot_id, project_id, learn_id, cluster_index, center, max_error",
    "gmm_components": "snapshot_id, project_id, learn_id, component_index, weight, mean, covariance",
    "thresholds": "snapshot_id, project_id, learn_id, key, description, help_text, value_number, "
                  "value_text, suggested_value, suggested_value_text",
    "fetch_log": "fetched_at, project_id, learn_id, endpoint, http_status, ok, attempts, duration_ms, "
                 "bytes, snapshot_id, changed, error",
    "model_type_comparison": "project_id, learn_id, snapshot_id, model_created_at, first_fetched_at, "
                             "mcu, device_name, is_default, engine, model_type, baseline_model_type, "
                             "accuracy, baseline_accuracy, accuracy_delta, loss, baseline_loss, "
                             "loss_delta, latency_ms, baseline_latency_ms, latency_ratio, ram_bytes, "
                             "baseline_ram_bytes, ram_ratio, rom_bytes, baseline_rom_bytes, "
                             "rom_ratio, prediction_agreement",
    "model_type_trend": "project_id, learn_id, snapshot_id, model_type, mcu, engine, accuracy_delta, "
                        "latency_ratio, previous_snapshot_id, accuracy_change, latency_change, "
                        "ram_change, rom_change, is_regression",
    "prediction_disagreements": "project_id, learn_id, snapshot_id, model_type, sample_id, start_ms, "
                                "end_ms, label, prediction, baseline_prediction, prediction_correct, "
                                "baseline_prediction_correct",
}
TYPES = {"project_id": "BIGINT", "learn_id": "BIGINT", "snapshot_id": "VARCHAR",
         "model_type": "VARCHAR", "available_model_types": "VARCHAR[]", "axes": "INTEGER[]",
         "scale": "DOUBLE[]", "mean": "DOUBLE[]", "scores": "FLOAT[][]", "center": "DOUBLE[]",
         "covariance": "DOUBLE[][]", "fetched_at": "TIMESTAMP WITH TIME ZONE",
         "model_created_at": "TIMESTAMP WITH TIME ZONE", "first_seen_at": "TIMESTAMP WITH TIME ZONE"}


def test_every_contract_column_is_declared_with_its_type() -> None:
    """Checked on the registry: test_schema proves the built warehouse is the registry."""
    for name, columns in CONTRACT.items():
        declared = {c.name: c.sql_type for c in relation(name).all_columns}
        missing = [c for c in columns.split(", ") if c not in declared]
        assert not missing, f"{name} lacks {missing}"
        for column, expected in TYPES.items():
            if column in declared and name in ("snapshots", "learn_blocks", "fetch_log",
                                               "anomaly_scores", "clusters", "gmm_components",
                                               "predictions"):
                assert declared[column] == expected, (name, column, declared[column])
