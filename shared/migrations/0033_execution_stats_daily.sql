-- A daily tier for the statistics roll-ups, and integer confidence sums.
--
-- At 1M executions over 30 days with 24 cameras the hourly table holds ~100k groups,
-- so a 30-day query summed ~100k rows. Whole UTC days now come from
-- `execution_stats_daily` (24 times fewer rows); the hours at a range's ends from the
-- hourly table, the partial hours from `executions`. The compactor folds deltas into
-- both tiers in one statement, so they always agree.
--
-- Confidence sums become integers in millionths (exact to add and subtract, and
-- cheaper to sum than NUMERIC); an average is off by at most 5e-7.

ALTER TABLE execution_stats_hourly
    ALTER COLUMN confidence_sum TYPE BIGINT USING round(confidence_sum * 1000000);
ALTER TABLE execution_stats_delta
    ALTER COLUMN confidence_sum TYPE BIGINT USING round(confidence_sum * 1000000);

CREATE OR REPLACE FUNCTION execution_stats_contribution(r executions, sign INTEGER, fp BOOLEAN)
RETURNS execution_stats_delta
LANGUAGE sql STABLE AS $$
    SELECT ROW(
        date_trunc('hour', r.started_at, 'UTC'),
        r.camera_id, r.location, r.processing_stage, r.alert_level, r.has_smoke, fp,
        sign, sign * coalesce(r.detection_count, 0),
        sign * coalesce(round(r.confidence * 1000000)::bigint, 0),
        sign * (r.confidence IS NOT NULL)::int
    )::execution_stats_delta
$$;

CREATE TABLE execution_stats_daily (
    bucket           TIMESTAMPTZ NOT NULL,  -- midnight UTC
    camera_id        TEXT NOT NULL,
    location         TEXT,
    processing_stage TEXT NOT NULL,
    alert_level      TEXT,
    has_smoke        BOOLEAN,
    false_positive   BOOLEAN NOT NULL DEFAULT false,
    executions       BIGINT NOT NULL,
    detections       BIGINT NOT NULL,
    confidence_sum   BIGINT NOT NULL,
    confidence_n     BIGINT NOT NULL,
    CONSTRAINT execution_stats_daily_key UNIQUE NULLS NOT DISTINCT
        (bucket, camera_id, location, processing_stage, alert_level, has_smoke, false_positive)
);
CREATE INDEX execution_stats_daily_empty_idx ON execution_stats_daily (bucket)
    WHERE executions = 0;

CREATE OR REPLACE FUNCTION execution_stats_compact() RETURNS BIGINT
LANGUAGE plpgsql AS $$
DECLARE
    folded BIGINT;
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('execution_stats_compact')) THEN
        RETURN 0;
    END IF;
    WITH gone AS (
        DELETE FROM execution_stats_delta RETURNING *
    ), summed AS (
        SELECT bucket, camera_id, location, processing_stage, alert_level, has_smoke,
               false_positive, sum(executions) AS executions, sum(detections) AS detections,
               sum(confidence_sum) AS confidence_sum, sum(confidence_n) AS confidence_n,
               count(*) AS n
        FROM gone
        GROUP BY bucket, camera_id, location, processing_stage, alert_level, has_smoke,
                 false_positive
    ), hourly AS (  -- data-modifying CTEs run whether or not they are referenced
        INSERT INTO execution_stats_hourly AS h
            (bucket, camera_id, location, processing_stage, alert_level, has_smoke,
             false_positive, executions, detections, confidence_sum, confidence_n)
        SELECT bucket, camera_id, location, processing_stage, alert_level, has_smoke,
               false_positive, executions, detections, confidence_sum, confidence_n
        FROM summed
        ON CONFLICT ON CONSTRAINT execution_stats_hourly_key DO UPDATE SET
            executions = h.executions + excluded.executions,
            detections = h.detections + excluded.detections,
            confidence_sum = h.confidence_sum + excluded.confidence_sum,
            confidence_n = h.confidence_n + excluded.confidence_n
    ), daily AS (
        INSERT INTO execution_stats_daily AS d
            (bucket, camera_id, location, processing_stage, alert_level, has_smoke,
             false_positive, executions, detections, confidence_sum, confidence_n)
        SELECT date_trunc('day', bucket, 'UTC'), camera_id, location, processing_stage,
               alert_level, has_smoke, false_positive, sum(executions), sum(detections),
               sum(confidence_sum), sum(confidence_n)
        FROM summed
        GROUP BY 1, camera_id, location, processing_stage, alert_level, has_smoke,
                 false_positive
        ON CONFLICT ON CONSTRAINT execution_stats_daily_key DO UPDATE SET
            executions = d.executions + excluded.executions,
            detections = d.detections + excluded.detections,
            confidence_sum = d.confidence_sum + excluded.confidence_sum,
            confidence_n = d.confidence_n + excluded.confidence_n
    )
    SELECT coalesce(sum(n), 0) FROM summed
    INTO folded;
    DELETE FROM execution_stats_hourly WHERE executions = 0;
    DELETE FROM execution_stats_daily WHERE executions = 0;
    RETURN folded;
END;
$$;

CREATE OR REPLACE FUNCTION execution_stats_rebuild() RETURNS BIGINT
LANGUAGE plpgsql AS $$
DECLARE
    groups BIGINT;
BEGIN
    LOCK TABLE executions IN SHARE MODE;
    PERFORM pg_advisory_xact_lock(hashtext('execution_stats_compact'));
    DELETE FROM execution_stats_delta;
    DELETE FROM execution_stats_hourly;
    DELETE FROM execution_stats_daily;
    INSERT INTO execution_stats_hourly
        (bucket, camera_id, location, processing_stage, alert_level, has_smoke,
         false_positive, executions, detections, confidence_sum, confidence_n)
    SELECT bucket, camera_id, location, processing_stage, alert_level, has_smoke,
           false_positive, sum(executions), sum(detections), sum(confidence_sum),
           sum(confidence_n)
    FROM (SELECT (execution_stats_contribution(e, 1, e.false_positive)).*
          FROM executions e) c
    GROUP BY bucket, camera_id, location, processing_stage, alert_level, has_smoke,
             false_positive;
    GET DIAGNOSTICS groups = ROW_COUNT;
    INSERT INTO execution_stats_daily
        (bucket, camera_id, location, processing_stage, alert_level, has_smoke,
         false_positive, executions, detections, confidence_sum, confidence_n)
    SELECT date_trunc('day', bucket, 'UTC'), camera_id, location, processing_stage,
           alert_level, has_smoke, false_positive, sum(executions), sum(detections),
           sum(confidence_sum), sum(confidence_n)
    FROM execution_stats_hourly
    GROUP BY 1, camera_id, location, processing_stage, alert_level, has_smoke,
             false_positive;
    RETURN groups;
END;
$$;

SELECT execution_stats_rebuild();
