-- The per-snapshot tables (schema.PER_SNAPSHOT_TABLES), one statement each, named after its table.
-- Each inserts the rows of the snapshots listed in $1, $2, $3 (project ids, learn ids and snapshot
-- ids of a group being loaded, side by side), every snapshot's from its own rows alone; the
-- warehouse runs them inside the load's transaction. A snapshot belongs to one learn block: two
-- blocks with identical responses share a snapshot id, so every match is on all three keys.
-- {predictions} and {thresholds} name where the rows are read: the group's own rows when a load
-- was handed them in memory, else the warehouse's tables.

-- name: prediction_agreement
INSERT INTO prediction_agreement BY NAME
WITH keys AS (
    SELECT unnest($1::BIGINT[]) AS project_id, unnest($2::BIGINT[]) AS learn_id,
           unnest($3::VARCHAR[]) AS snapshot_id
), batch AS (SELECT * FROM {predictions} SEMI JOIN keys USING (project_id, learn_id, snapshot_id))
SELECT p.project_id, p.learn_id, p.snapshot_id, p.model_type,
       avg(CASE WHEN p.prediction IS NOT DISTINCT FROM b.prediction THEN 1.0 ELSE 0.0 END)
           AS prediction_agreement
FROM batch p
JOIN batch b
  ON b.project_id = p.project_id AND b.learn_id = p.learn_id AND b.snapshot_id = p.snapshot_id
 AND b.model_type = 'float32'
 AND b.sample_id = p.sample_id AND b.start_ms = p.start_ms AND b.end_ms = p.end_ms
WHERE p.model_type <> 'float32'
GROUP BY p.project_id, p.learn_id, p.snapshot_id, p.model_type;

-- name: prediction_disagreement_rows
INSERT INTO prediction_disagreement_rows BY NAME
WITH keys AS (
    SELECT unnest($1::BIGINT[]) AS project_id, unnest($2::BIGINT[]) AS learn_id,
           unnest($3::VARCHAR[]) AS snapshot_id
), batch AS (SELECT * FROM {predictions} SEMI JOIN keys USING (project_id, learn_id, snapshot_id))
SELECT p.project_id, p.learn_id, p.snapshot_id, p.model_type, p.sample_id, p.start_ms, p.end_ms,
       p.label, p.prediction, b.prediction AS baseline_prediction,
       p.prediction_correct, b.prediction_correct AS baseline_prediction_correct
FROM batch p
JOIN batch b
  ON b.project_id = p.project_id AND b.learn_id = p.learn_id AND b.snapshot_id = p.snapshot_id
 AND b.model_type = 'float32'
 AND b.sample_id = p.sample_id AND b.start_ms = p.start_ms AND b.end_ms = p.end_ms
WHERE p.model_type <> 'float32' AND p.prediction IS DISTINCT FROM b.prediction;

-- name: anomaly_score_stats
-- A window's score is its anomaly_score_max (windows with a score grid).
INSERT INTO anomaly_score_stats BY NAME
WITH keys AS (
    SELECT unnest($1::BIGINT[]) AS project_id, unnest($2::BIGINT[]) AS learn_id,
           unnest($3::VARCHAR[]) AS snapshot_id
)
SELECT p.project_id, p.learn_id, p.snapshot_id, p.model_type,
       count(*) AS n_scores,
       quantile_cont(p.anomaly_score_max::DOUBLE, 0.5) AS score_p50,
       quantile_cont(p.anomaly_score_max::DOUBLE, 0.95) AS score_p95,
       max(p.anomaly_score_max)::DOUBLE AS score_max,
       any_value(t.value_number) AS threshold,
       avg((p.anomaly_score_max > t.value_number)::INTEGER)::DOUBLE AS share_above_threshold
FROM (SELECT * FROM {predictions} SEMI JOIN keys USING (project_id, learn_id, snapshot_id)) p
LEFT JOIN {thresholds} t
  ON t.project_id = p.project_id AND t.learn_id = p.learn_id AND t.snapshot_id = p.snapshot_id
 AND t.key = 'min_anomaly_score'
WHERE p.anomaly_score_max IS NOT NULL
GROUP BY p.project_id, p.learn_id, p.snapshot_id, p.model_type;
