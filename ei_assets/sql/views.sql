-- Comparisons of model types over time. Baseline: float32. Deltas are value - baseline; ratios
-- value / baseline, NULL where the baseline is NULL or 0. {accuracy_drop} and {resource_rise}
-- are filled in from Python numbers (the regression thresholds), never from API values.

-- The state of each learn block as last fetched.
CREATE OR REPLACE VIEW latest_snapshots AS
SELECT * FROM snapshots
QUALIFY row_number() OVER (PARTITION BY project_id, learn_id
                           ORDER BY last_fetched_at DESC, model_created_at DESC, snapshot_id) = 1;

CREATE OR REPLACE VIEW prediction_agreement AS
SELECT p.snapshot_id, p.model_type,
       avg(CASE WHEN p.prediction IS NOT DISTINCT FROM b.prediction THEN 1.0 ELSE 0.0 END)
           AS prediction_agreement
FROM predictions p
JOIN predictions b
  ON b.snapshot_id = p.snapshot_id AND b.model_type = 'float32'
 AND b.sample_id = p.sample_id AND b.start_ms = p.start_ms AND b.end_ms = p.end_ms
WHERE p.model_type <> 'float32'
GROUP BY p.snapshot_id, p.model_type;

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
JOIN snapshots s ON s.snapshot_id = m.snapshot_id
LEFT JOIN model_metrics bm ON bm.snapshot_id = m.snapshot_id AND bm.model_type = 'float32'
LEFT JOIN on_device_performance perf
  ON perf.snapshot_id = m.snapshot_id AND perf.model_type = m.model_type
LEFT JOIN on_device_performance bp
  ON bp.snapshot_id = m.snapshot_id AND bp.model_type = 'float32'
 AND bp.mcu = perf.mcu AND bp.engine = perf.engine
LEFT JOIN prediction_agreement agreement
  ON agreement.snapshot_id = m.snapshot_id AND agreement.model_type = m.model_type;

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

CREATE OR REPLACE VIEW prediction_disagreements AS
SELECT p.project_id, p.learn_id, p.snapshot_id, p.model_type, p.sample_id, p.start_ms, p.end_ms,
       p.label, p.prediction, b.prediction AS baseline_prediction,
       p.prediction_correct, b.prediction_correct AS baseline_prediction_correct
FROM predictions p
JOIN predictions b
  ON b.snapshot_id = p.snapshot_id AND b.model_type = 'float32'
 AND b.sample_id = p.sample_id AND b.start_ms = p.start_ms AND b.end_ms = p.end_ms
WHERE p.model_type <> 'float32' AND p.prediction IS DISTINCT FROM b.prediction;
