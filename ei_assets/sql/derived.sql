-- The per-snapshot tables (schema.PER_SNAPSHOT_TABLES), one statement each, named after its table.
-- Each inserts the rows of the snapshots listed in $1 (a group being loaded), every snapshot's
-- from its own rows alone; the warehouse runs them inside the load's transaction.

-- name: prediction_agreement
INSERT INTO prediction_agreement BY NAME
WITH batch AS (SELECT * FROM predictions WHERE snapshot_id IN (SELECT unnest($1::VARCHAR[])))
SELECT p.snapshot_id, p.model_type,
       avg(CASE WHEN p.prediction IS NOT DISTINCT FROM b.prediction THEN 1.0 ELSE 0.0 END)
           AS prediction_agreement
FROM batch p
JOIN batch b
  ON b.snapshot_id = p.snapshot_id AND b.model_type = 'float32'
 AND b.sample_id = p.sample_id AND b.start_ms = p.start_ms AND b.end_ms = p.end_ms
WHERE p.model_type <> 'float32'
GROUP BY p.snapshot_id, p.model_type;

-- name: prediction_disagreement_rows
INSERT INTO prediction_disagreement_rows BY NAME
WITH batch AS (SELECT * FROM predictions WHERE snapshot_id IN (SELECT unnest($1::VARCHAR[])))
SELECT p.project_id, p.learn_id, p.snapshot_id, p.model_type, p.sample_id, p.start_ms, p.end_ms,
       p.label, p.prediction, b.prediction AS baseline_prediction,
       p.prediction_correct, b.prediction_correct AS baseline_prediction_correct
FROM batch p
JOIN batch b
  ON b.snapshot_id = p.snapshot_id AND b.model_type = 'float32'
 AND b.sample_id = p.sample_id AND b.start_ms = p.start_ms AND b.end_ms = p.end_ms
WHERE p.model_type <> 'float32' AND p.prediction IS DISTINCT FROM b.prediction;

-- name: anomaly_score_stats
-- A window's score is its anomaly_score_max (windows with a score grid).
INSERT INTO anomaly_score_stats BY NAME
SELECT p.project_id, p.learn_id, p.snapshot_id, p.model_type,
       count(*) AS n_scores,
       quantile_cont(p.anomaly_score_max::DOUBLE, 0.5) AS score_p50,
       quantile_cont(p.anomaly_score_max::DOUBLE, 0.95) AS score_p95,
       max(p.anomaly_score_max)::DOUBLE AS score_max,
       any_value(t.value_number) AS threshold,
       avg((p.anomaly_score_max > t.value_number)::INTEGER)::DOUBLE AS share_above_threshold
FROM predictions p
LEFT JOIN thresholds t ON t.snapshot_id = p.snapshot_id AND t.key = 'min_anomaly_score'
WHERE p.snapshot_id IN (SELECT unnest($1::VARCHAR[])) AND p.anomaly_score_max IS NOT NULL
GROUP BY p.project_id, p.learn_id, p.snapshot_id, p.model_type;
