-- Statistics without scanning executions: hourly roll-ups, kept exact by triggers.
--
-- Every insert, delete, or change of a counted column on `executions` appends its
-- contribution (-1 for the old row, +1 for the new one) to `execution_stats_delta` in
-- the same transaction. Appending never blocks a Stage 2 worker on another's row, and
-- whatever order Stage 2 completions arrive in, the sum over the deltas is the table's
-- current state. `execution_stats_compact()` folds deltas into `execution_stats_hourly`
-- in one statement (the gateway calls it every few seconds); readers sum both tables in
-- one snapshot, so a read is exact before, during and after a compaction.
--
-- Dimensions are the dashboard's filters; a bucket is one UTC hour of started_at.
-- NULLS NOT DISTINCT: a pending execution (alert level NULL) is a group like any other.

CREATE TABLE execution_stats_hourly (
    bucket           TIMESTAMPTZ NOT NULL,
    camera_id        TEXT NOT NULL,
    location         TEXT,
    processing_stage TEXT NOT NULL,
    alert_level      TEXT,
    has_smoke        BOOLEAN,
    false_positive   BOOLEAN NOT NULL DEFAULT false,
    executions       BIGINT NOT NULL,
    detections       BIGINT NOT NULL,
    -- NUMERIC so that adding and later subtracting a confidence leaves exactly zero.
    confidence_sum   NUMERIC NOT NULL,
    confidence_n     BIGINT NOT NULL,
    CONSTRAINT execution_stats_hourly_key UNIQUE NULLS NOT DISTINCT
        (bucket, camera_id, location, processing_stage, alert_level, has_smoke, false_positive)
);
-- Groups emptied by later changes (e.g. every pending row once Stage 2 completed).
CREATE INDEX execution_stats_hourly_empty_idx ON execution_stats_hourly (bucket)
    WHERE executions = 0;

CREATE TABLE execution_stats_delta (
    bucket           TIMESTAMPTZ NOT NULL,
    camera_id        TEXT NOT NULL,
    location         TEXT,
    processing_stage TEXT NOT NULL,
    alert_level      TEXT,
    has_smoke        BOOLEAN,
    false_positive   BOOLEAN NOT NULL DEFAULT false,
    executions       BIGINT NOT NULL,
    detections       BIGINT NOT NULL,
    confidence_sum   NUMERIC NOT NULL,
    confidence_n     BIGINT NOT NULL
);
CREATE INDEX execution_stats_delta_bucket_idx ON execution_stats_delta (bucket);

-- One row's contribution with a sign. `fp` is false until operators can mark false
-- positives (a later migration passes the column once it exists).
CREATE FUNCTION execution_stats_contribution(r executions, sign INTEGER, fp BOOLEAN)
RETURNS execution_stats_delta
LANGUAGE sql STABLE AS $$
    SELECT ROW(
        date_trunc('hour', r.started_at, 'UTC'),
        r.camera_id, r.location, r.processing_stage, r.alert_level, r.has_smoke, fp,
        sign, sign * coalesce(r.detection_count, 0),
        sign * coalesce(r.confidence::numeric, 0),
        sign * (r.confidence IS NOT NULL)::int
    )::execution_stats_delta
$$;

CREATE FUNCTION execution_stats_track() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO execution_stats_delta
        SELECT (execution_stats_contribution(OLD, -1, false)).*;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO execution_stats_delta
        SELECT (execution_stats_contribution(NEW, 1, false)).*;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER executions_stats_insert_delete
    AFTER INSERT OR DELETE ON executions
    FOR EACH ROW EXECUTE FUNCTION execution_stats_track();

-- Only changes to a counted column cost anything (Stage 2 completion is one of them).
CREATE TRIGGER executions_stats_update
    AFTER UPDATE ON executions
    FOR EACH ROW
    WHEN ((OLD.started_at, OLD.camera_id, OLD.location, OLD.processing_stage,
           OLD.alert_level, OLD.has_smoke, OLD.detection_count, OLD.confidence)
          IS DISTINCT FROM
          (NEW.started_at, NEW.camera_id, NEW.location, NEW.processing_stage,
           NEW.alert_level, NEW.has_smoke, NEW.detection_count, NEW.confidence))
    EXECUTE FUNCTION execution_stats_track();

-- Fold the deltas into the hourly table; returns how many delta rows were folded.
-- Deltas of transactions still in flight are not visible yet and wait for the next call.
CREATE FUNCTION execution_stats_compact() RETURNS BIGINT
LANGUAGE plpgsql AS $$
DECLARE
    folded BIGINT;
BEGIN
    -- One compactor at a time (several gateway replicas may call this).
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
    ), upserted AS (  -- a data-modifying CTE runs whether or not it is referenced
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
    )
    SELECT coalesce(sum(n), 0) FROM summed
    INTO folded;
    DELETE FROM execution_stats_hourly WHERE executions = 0;
    RETURN folded;
END;
$$;

-- Executions that exist already.
INSERT INTO execution_stats_hourly
    (bucket, camera_id, location, processing_stage, alert_level, has_smoke,
     false_positive, executions, detections, confidence_sum, confidence_n)
SELECT bucket, camera_id, location, processing_stage, alert_level, has_smoke,
       false_positive, sum(executions), sum(detections), sum(confidence_sum), sum(confidence_n)
FROM (SELECT (execution_stats_contribution(e, 1, false)).* FROM executions e) c
GROUP BY bucket, camera_id, location, processing_stage, alert_level, has_smoke, false_positive;
