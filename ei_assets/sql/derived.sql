-- The per-snapshot tables (schema.PER_SNAPSHOT_TABLES), one statement each, named after its table.
-- Each inserts the rows of the one snapshot given as the parameter `?`, from that snapshot's rows
-- alone; the warehouse runs them for every snapshot it loads, inside the load's transaction.

-- name: prediction_agreement
INSERT INTO prediction_agreement BY NAME
SELECT p.snapshot_id, p.model_type,
       avg(CASE WHEN p.prediction IS NOT DISTINCT FROM b.prediction THEN 1.0 ELSE 0.0 END)
           AS prediction_agreement
FROM (SELECT * FROM predictions WHERE snapshot_id = $1 AND model_type <> 'float32') p
JOIN (SELECT * FROM predictions WHERE snapshot_id = $1 AND model_type = 'float32') b
  ON b.sample_id = p.sample_id AND b.start_ms = p.start_ms AND b.end_ms = p.end_ms
GROUP BY p.snapshot_id, p.model_type;

-- name: prediction_disagreement_rows
INSERT INTO prediction_disagreement_rows BY NAME
SELECT p.project_id, p.learn_id, p.snapshot_id, p.model_type, p.sample_id, p.start_ms, p.end_ms,
       p.label, p.prediction, b.prediction AS baseline_prediction,
       p.prediction_correct, b.prediction_correct AS baseline_prediction_correct
FROM (SELECT * FROM predictions WHERE snapshot_id = $1 AND model_type <> 'float32') p
JOIN (SELECT * FROM predictions WHERE snapshot_id = $1 AND model_type = 'float32') b
  ON b.sample_id = p.sample_id AND b.start_ms = p.start_ms AND b.end_ms = p.end_ms
WHERE p.prediction IS DISTINCT FROM b.prediction;

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
FROM (SELECT * FROM predictions WHERE snapshot_id = $1 AND anomaly_score_max IS NOT NULL) p
LEFT JOIN (SELECT * FROM thresholds WHERE snapshot_id = $1 AND key = 'min_anomaly_score') t
  ON t.snapshot_id = p.snapshot_id
GROUP BY p.project_id, p.learn_id, p.snapshot_id, p.model_type;
