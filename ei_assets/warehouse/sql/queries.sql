-- name: int8_costs_and_savings
-- What int8 costs in accuracy and saves in latency, RAM and ROM, per target and engine,
-- for the latest model of every learn block.
SELECT project_id, learn_id, mcu, engine,
       round(accuracy_delta, 4) AS accuracy_delta,
       round(latency_ratio, 2) AS latency_ratio,
       round(ram_ratio, 2) AS ram_ratio,
       round(rom_ratio, 2) AS rom_ratio,
       round(prediction_agreement, 3) AS agreement
FROM model_type_comparison
JOIN latest_snapshots USING (project_id, learn_id, snapshot_id)
WHERE model_type = 'int8'
ORDER BY project_id, learn_id, mcu, engine;

-- name: regressed_retrains
-- Which retrain made things worse: accuracy down by more than 0.01, or latency, RAM or ROM
-- up by more than 10%, against the previous snapshot of the same block, type, target, engine.
SELECT project_id || '-' || learn_id AS block, model_type, mcu, engine,
       strftime(model_created_at, '%Y-%m-%d %H:%M') AS trained,
       round(accuracy_change, 4) AS d_accuracy, round(latency_change, 3) AS d_latency,
       round(ram_change, 3) AS d_ram, round(rom_change, 3) AS d_rom
FROM model_type_trend
WHERE is_regression
ORDER BY project_id, learn_id, model_type, mcu, engine, model_created_at;

-- name: flipped_samples
-- Which validation windows flip between float32 and int8, in the latest snapshot of each block.
SELECT d.project_id, d.learn_id, d.sample_id, d.start_ms, d.label,
       d.baseline_prediction AS float32, d.prediction AS int8, d.prediction_correct AS int8_correct
FROM prediction_disagreements d
JOIN latest_snapshots USING (project_id, learn_id, snapshot_id)
WHERE d.model_type = 'int8'
ORDER BY d.project_id, d.learn_id, d.sample_id, d.start_ms;

-- name: latest_default_target_comparison
-- Each model type against float32 at every block's default target, latest models: what the demo
-- prints and the Dagster UI previews.
SELECT project_id || '-' || learn_id AS block, model_type, mcu AS target, engine,
       round(accuracy_delta, 4) AS accuracy_delta, round(latency_ratio, 2) AS latency_x,
       round(ram_ratio, 2) AS ram_x, round(rom_ratio, 2) AS rom_x,
       round(prediction_agreement, 3) AS agreement
FROM model_type_comparison
JOIN latest_snapshots USING (project_id, learn_id, snapshot_id)
WHERE is_default
ORDER BY project_id, learn_id, model_type, engine;

-- name: latest_budget_fit
-- Does the latest model fit the device? Each model type and engine on the project's selected
-- target against its selected application budget (negative headroom: over budget).
SELECT project_id, learn_id, model_type, engine, mcu, fits,
       round(latency_headroom, 3) AS latency_headroom_ms, ram_headroom, rom_headroom
FROM budget_fit
JOIN latest_snapshots USING (project_id, learn_id, snapshot_id)
ORDER BY project_id, learn_id, model_type, engine;

-- name: classes_int8_hurts
-- Which classes int8 hurts, by how much, with support, in the latest models (by name; the
-- averages under their keys).
SELECT project_id, learn_id, coalesce(class_name, class) AS class, round(f1_delta, 4) AS f1_delta,
       round(precision_delta, 4) AS precision_delta, round(recall_delta, 4) AS recall_delta, support
FROM class_metric_deltas
JOIN latest_snapshots USING (project_id, learn_id, snapshot_id)
WHERE model_type = 'int8' AND f1_delta < 0
ORDER BY f1_delta, project_id, learn_id, class;

-- name: anomaly_drift
-- How the anomaly scores of each retrain sit against the threshold, and how p95 moved.
SELECT project_id, learn_id, model_type, model_created_at, n_scores,
       round(score_p95, 3) AS p95, round(p95_change, 3) AS p95_change, threshold,
       round(share_above_threshold, 3) AS above_threshold
FROM anomaly_score_trend
ORDER BY project_id, learn_id, model_type, model_created_at;
