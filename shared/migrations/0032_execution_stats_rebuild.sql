-- Recount the statistics roll-ups from `executions` (after a bulk load with triggers
-- off, or a manual repair). Blocks writers to executions while it runs.
CREATE FUNCTION execution_stats_rebuild() RETURNS BIGINT
LANGUAGE plpgsql AS $$
DECLARE
    groups BIGINT;
BEGIN
    LOCK TABLE executions IN SHARE MODE;
    PERFORM pg_advisory_xact_lock(hashtext('execution_stats_compact'));
    DELETE FROM execution_stats_delta;
    DELETE FROM execution_stats_hourly;
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
    RETURN groups;
END;
$$;
