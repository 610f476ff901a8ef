-- A tier without cameras and locations: per UTC hour, Stage 2 state, level, smoke and
-- false positive only (camera_id '' and location NULL, so it has the other tiers'
-- shape). Statistics for every camera and location at once (the statistics page's
-- default view, per-hour charts, days in the browser's time zone) read ~24 times
-- fewer rows from it than from the per-camera hourly table.

CREATE TABLE execution_stats_hourly_global (
    bucket           TIMESTAMPTZ NOT NULL,
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
    CONSTRAINT execution_stats_hourly_global_key UNIQUE NULLS NOT DISTINCT
        (bucket, camera_id, location, processing_stage, alert_level, has_smoke, false_positive)
);
CREATE INDEX execution_stats_hourly_global_empty_idx ON execution_stats_hourly_global (bucket)
    WHERE executions = 0;
-- A camera's hours without reading every camera's.
CREATE INDEX execution_stats_hourly_camera_idx ON execution_stats_hourly (camera_id, bucket);

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
    ), global AS (
        INSERT INTO execution_stats_hourly_global AS g
            (bucket, camera_id, location, processing_stage, alert_level, has_smoke,
             false_positive, executions, detections, confidence_sum, confidence_n)
        SELECT bucket, '', NULL, processing_stage, alert_level, has_smoke, false_positive,
               sum(executions), sum(detections), sum(confidence_sum), sum(confidence_n)
        FROM summed
        GROUP BY bucket, processing_stage, alert_level, has_smoke, false_positive
        ON CONFLICT ON CONSTRAINT execution_stats_hourly_global_key DO UPDATE SET
            executions = g.executions + excluded.executions,
            detections = g.detections + excluded.detections,
            confidence_sum = g.confidence_sum + excluded.confidence_sum,
            confidence_n = g.confidence_n + excluded.confidence_n
    )
    SELECT coalesce(sum(n), 0) FROM summed
    INTO folded;
    DELETE FROM execution_stats_hourly WHERE executions = 0;
    DELETE FROM execution_stats_daily WHERE executions = 0;
    DELETE FROM execution_stats_hourly_global WHERE executions = 0;
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
    DELETE FROM execution_stats_hourly_global;
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
    INSERT INTO execution_stats_hourly_global
        (bucket, camera_id, location, processing_stage, alert_level, has_smoke,
         false_positive, executions, detections, confidence_sum, confidence_n)
    SELECT bucket, '', NULL, processing_stage, alert_level, has_smoke, false_positive,
           sum(executions), sum(detections), sum(confidence_sum), sum(confidence_n)
    FROM execution_stats_hourly
    GROUP BY bucket, processing_stage, alert_level, has_smoke, false_positive;
    RETURN groups;
END;
$$;

SELECT execution_stats_rebuild();
