-- Statistics count false positives (executions.false_positive, migration 0020):
-- a mark or unmark moves the execution between groups like any other counted change.

CREATE OR REPLACE FUNCTION execution_stats_track() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO execution_stats_delta
        SELECT (execution_stats_contribution(OLD, -1, OLD.false_positive)).*;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO execution_stats_delta
        SELECT (execution_stats_contribution(NEW, 1, NEW.false_positive)).*;
    END IF;
    RETURN NULL;
END;
$$;

DROP TRIGGER executions_stats_update ON executions;
CREATE TRIGGER executions_stats_update
    AFTER UPDATE ON executions
    FOR EACH ROW
    WHEN ((OLD.started_at, OLD.camera_id, OLD.location, OLD.processing_stage,
           OLD.alert_level, OLD.has_smoke, OLD.detection_count, OLD.confidence,
           OLD.false_positive)
          IS DISTINCT FROM
          (NEW.started_at, NEW.camera_id, NEW.location, NEW.processing_stage,
           NEW.alert_level, NEW.has_smoke, NEW.detection_count, NEW.confidence,
           NEW.false_positive))
    EXECUTE FUNCTION execution_stats_track();

-- Recount from the table (this migration's transaction holds the rows still).
LOCK TABLE executions IN SHARE MODE;
DELETE FROM execution_stats_delta;
DELETE FROM execution_stats_hourly;
INSERT INTO execution_stats_hourly
    (bucket, camera_id, location, processing_stage, alert_level, has_smoke,
     false_positive, executions, detections, confidence_sum, confidence_n)
SELECT bucket, camera_id, location, processing_stage, alert_level, has_smoke,
       false_positive, sum(executions), sum(detections), sum(confidence_sum), sum(confidence_n)
FROM (SELECT (execution_stats_contribution(e, 1, e.false_positive)).* FROM executions e) c
GROUP BY bucket, camera_id, location, processing_stage, alert_level, has_smoke, false_positive;
