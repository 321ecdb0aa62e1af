-- Comparisons of model types over time. Baseline: float32. Deltas are value - baseline; ratios
-- value / baseline, NULL where the baseline is NULL or 0. {accuracy_drop} and {resource_rise}
-- are filled in from Python numbers (the regression thresholds), never from API values.
-- A snapshot belongs to one learn block (two blocks with identical responses share a snapshot
-- id), so every join matches project_id, learn_id and snapshot_id.

-- The state of each learn block as last fetched.
CREATE OR REPLACE VIEW latest_snapshots AS
SELECT * FROM snapshots
QUALIFY row_number() OVER (PARTITION BY project_id, learn_id
                           ORDER BY last_fetched_at DESC, model_created_at DESC, snapshot_id) = 1;

-- Every model type against float32, float32 against itself included (so the trend covers blocks
-- with only a float32 model); model_type_comparison leaves those self-pairs out.
CREATE OR REPLACE VIEW model_type_pairs AS
SELECT s.project_id, s.learn_id, s.snapshot_id, s.model_created_at, s.first_fetched_at,
       perf.mcu, perf.device_name, perf.is_default, perf.engine,
       m.model_type, 'float32' AS baseline_model_type,
       m.accuracy, bm.accuracy AS baseline_accuracy, m.accuracy - bm.accuracy AS accuracy_delta,
       m.loss, bm.loss AS baseline_loss, m.loss - bm.loss AS loss_delta,
       perf.latency_ms, bp.latency_ms AS baseline_latency_ms,
       perf.latency_ms / NULLIF(bp.latency_ms, 0) AS latency_ratio,
       perf.ram_bytes, bp.ram_bytes AS baseline_ram_bytes,
       perf.ram_bytes / NULLIF(bp.ram_bytes, 0) AS ram_ratio,
       perf.rom_bytes, bp.rom_bytes AS baseline_rom_bytes,
       perf.rom_bytes / NULLIF(bp.rom_bytes, 0) AS rom_ratio,
       CASE WHEN m.model_type = 'float32' THEN 1.0 ELSE agreement.prediction_agreement END
           AS prediction_agreement
FROM model_metrics m
JOIN snapshots s
  ON s.project_id = m.project_id AND s.learn_id = m.learn_id AND s.snapshot_id = m.snapshot_id
LEFT JOIN model_metrics bm
  ON bm.project_id = m.project_id AND bm.learn_id = m.learn_id AND bm.snapshot_id = m.snapshot_id
 AND bm.model_type = 'float32'
LEFT JOIN on_device_performance perf
  ON perf.project_id = m.project_id AND perf.learn_id = m.learn_id
 AND perf.snapshot_id = m.snapshot_id AND perf.model_type = m.model_type
LEFT JOIN on_device_performance bp
  ON bp.project_id = m.project_id AND bp.learn_id = m.learn_id AND bp.snapshot_id = m.snapshot_id
 AND bp.model_type = 'float32' AND bp.mcu = perf.mcu AND bp.engine = perf.engine
LEFT JOIN prediction_agreement agreement
  ON agreement.project_id = m.project_id AND agreement.learn_id = m.learn_id
 AND agreement.snapshot_id = m.snapshot_id AND agreement.model_type = m.model_type;

CREATE OR REPLACE VIEW model_type_comparison AS
SELECT * FROM model_type_pairs WHERE model_type <> 'float32';

CREATE OR REPLACE VIEW model_type_trend AS
WITH ordered AS (
    SELECT *,
           lag(snapshot_id) OVER w AS previous_snapshot_id,
           accuracy - lag(accuracy) OVER w AS accuracy_change,
           latency_ms / NULLIF(lag(latency_ms) OVER w, 0) - 1 AS latency_change,
           ram_bytes / NULLIF(lag(ram_bytes) OVER w, 0) - 1 AS ram_change,
           rom_bytes / NULLIF(lag(rom_bytes) OVER w, 0) - 1 AS rom_change
    FROM model_type_pairs
    WINDOW w AS (PARTITION BY project_id, learn_id, model_type, mcu, engine
                 ORDER BY model_created_at, first_fetched_at, snapshot_id)
)
SELECT *,
       coalesce(accuracy_change < -{accuracy_drop}, false)
       OR coalesce(latency_change > {resource_rise}, false)
       OR coalesce(ram_change > {resource_rise}, false)
       OR coalesce(rom_change > {resource_rise}, false) AS is_regression
FROM ordered;

-- prediction_agreement, prediction_disagreement_rows and anomaly_score_stats are tables filled
-- for each snapshot as it is loaded (sql/derived.sql).
CREATE OR REPLACE VIEW prediction_disagreements AS
SELECT * FROM prediction_disagreement_rows;

-- Each profiled model on the project's selected target (matched on mcu) against its selected
-- application budget, from the project's latest target-constraints fetch. Within budget means
-- value <= budget; fits is NULL when nothing is budgeted or a budgeted figure was not profiled.
CREATE OR REPLACE VIEW budget_fit AS
WITH latest AS (
    SELECT project_id, max(fetched_at) AS fetched_at
    FROM (SELECT project_id, fetched_at FROM target_constraints
          UNION ALL SELECT project_id, fetched_at FROM application_budgets)
    GROUP BY project_id
), target AS (
    SELECT t.project_id, t.mcu FROM target_constraints t JOIN latest USING (project_id, fetched_at)
    WHERE t.is_selected AND t.mcu IS NOT NULL
), budget AS (
    SELECT b.* FROM application_budgets b JOIN latest USING (project_id, fetched_at)
    WHERE b.is_selected
)
SELECT p.project_id, p.learn_id, p.snapshot_id, p.model_type, p.engine, p.mcu,
       p.latency_ms, p.ram_bytes, p.rom_bytes,
       b.latency_max_ms AS latency_budget_ms, b.ram_max_bytes AS ram_budget_bytes,
       b.rom_max_bytes AS rom_budget_bytes,
       b.latency_max_ms - p.latency_ms AS latency_headroom,
       b.ram_max_bytes - p.ram_bytes AS ram_headroom,
       b.rom_max_bytes - p.rom_bytes AS rom_headroom,
       CASE
           WHEN b.latency_max_ms IS NULL AND b.ram_max_bytes IS NULL AND b.rom_max_bytes IS NULL
               THEN NULL
           WHEN (b.latency_max_ms IS NOT NULL AND p.latency_ms IS NULL)
             OR (b.ram_max_bytes IS NOT NULL AND p.ram_bytes IS NULL)
             OR (b.rom_max_bytes IS NOT NULL AND p.rom_bytes IS NULL) THEN NULL
           ELSE coalesce(p.latency_ms <= b.latency_max_ms, true)
            AND coalesce(p.ram_bytes <= b.ram_max_bytes, true)
            AND coalesce(p.rom_bytes <= b.rom_max_bytes, true)
       END AS fits
FROM on_device_performance p
JOIN target t ON t.project_id = p.project_id AND t.mcu = p.mcu
LEFT JOIN budget b ON b.project_id = p.project_id;

-- Which classes a model type hurts against float32, per classification report entry (the
-- averages under their own keys; the scalar accuracy entry left out).
CREATE OR REPLACE VIEW class_metric_deltas AS
SELECT r.project_id, r.learn_id, r.snapshot_id, r.model_type, r.class, r.class_name,
       r.precision, b.precision AS baseline_precision, r.precision - b.precision AS precision_delta,
       r.recall, b.recall AS baseline_recall, r.recall - b.recall AS recall_delta,
       r.f1_score, b.f1_score AS baseline_f1_score, r.f1_score - b.f1_score AS f1_delta,
       r.support
FROM classification_report r
LEFT JOIN classification_report b
  ON b.project_id = r.project_id AND b.learn_id = r.learn_id AND b.snapshot_id = r.snapshot_id
 AND b.model_type = 'float32' AND b.class = r.class
WHERE r.model_type <> 'float32'
  AND NOT (r.class = 'accuracy' AND r.precision IS NULL AND r.recall IS NULL AND r.support IS NULL);

-- The distribution of window scores (each window's anomaly_score_max) per snapshot and model type
-- against the snapshot's min_anomaly_score threshold, and its change from the previous snapshot.
CREATE OR REPLACE VIEW anomaly_score_trend AS
SELECT a.project_id, a.learn_id, a.snapshot_id, s.model_created_at, a.model_type, a.n_scores,
       a.score_p50, a.score_p95, a.score_max, a.threshold, a.share_above_threshold,
       lag(a.snapshot_id) OVER w AS previous_snapshot_id,
       a.score_p95 - lag(a.score_p95) OVER w AS p95_change
FROM anomaly_score_stats a
JOIN snapshots s USING (project_id, learn_id, snapshot_id)
WINDOW w AS (PARTITION BY a.project_id, a.learn_id, a.model_type
             ORDER BY s.model_created_at, s.first_fetched_at, a.snapshot_id);
