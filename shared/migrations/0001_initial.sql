-- smokesignal initial schema.

-- Stage 1: execution metadata plus (after Stage 2) the extracted results.
CREATE TABLE executions (
    id               BIGINT PRIMARY KEY CHECK (id > 0),
    workflow_id      TEXT NOT NULL,
    camera_id        TEXT NOT NULL,
    location         TEXT,
    camera_type      TEXT,
    status           TEXT NOT NULL,
    started_at       TIMESTAMPTZ NOT NULL,
    stopped_at       TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    processing_stage TEXT NOT NULL DEFAULT 'stage1'
                     CHECK (processing_stage IN ('stage1', 'stage2', 'failed')),
    has_smoke        BOOLEAN,
    has_fire         BOOLEAN,
    alert_level      TEXT CHECK (alert_level IN ('none', 'low', 'medium', 'high', 'critical')),
    detection_count  INTEGER CHECK (detection_count >= 0),
    confidence       DOUBLE PRECISION CHECK (confidence BETWEEN 0 AND 1),
    image_path       TEXT,
    thumbnail_path   TEXT,
    telegram_sent    BOOLEAN,
    extracted_at     TIMESTAMPTZ,
    stage2_error     TEXT,
    retry_count      INTEGER NOT NULL DEFAULT 0 CHECK (retry_count >= 0)
);

-- REST listing: newest first (keyset on id), and common filters.
CREATE INDEX executions_camera_id_idx ON executions (camera_id, id DESC);
CREATE INDEX executions_started_at_idx ON executions (started_at DESC, id DESC);
-- Poller: completed executions by completion time (anti-join against broadcast_ids).
CREATE INDEX executions_extracted_at_idx ON executions (extracted_at, id)
    WHERE extracted_at IS NOT NULL;

-- The detection workflow's raw JSON (image inside as base64): Stage 2 input.
CREATE TABLE execution_raw (
    execution_id BIGINT PRIMARY KEY REFERENCES executions (id) ON DELETE CASCADE,
    payload      TEXT NOT NULL,
    received_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Stage 2 work queue.
CREATE TABLE stage2_jobs (
    execution_id    BIGINT PRIMARY KEY REFERENCES executions (id) ON DELETE CASCADE,
    status          TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'processing', 'completed', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error      TEXT,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    locked_until    TIMESTAMPTZ,
    locked_by       TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- Claim query: due pending jobs, and processing jobs whose lease expired.
CREATE INDEX stage2_jobs_pending_idx ON stage2_jobs (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX stage2_jobs_lease_idx ON stage2_jobs (locked_until)
    WHERE status = 'processing';

-- Transactional outbox: events written with the state change, relayed to the bus.
CREATE TABLE outbox (
    id           BIGSERIAL PRIMARY KEY,
    routing_key  TEXT NOT NULL,
    execution_id BIGINT,
    payload      TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    published_at TIMESTAMPTZ
);
CREATE INDEX outbox_unpublished_idx ON outbox (id) WHERE published_at IS NULL;
CREATE INDEX outbox_published_at_idx ON outbox (published_at) WHERE published_at IS NOT NULL;

-- The poller's persisted broadcast-ID set; trimmed by age only.
CREATE TABLE broadcast_ids (
    execution_id BIGINT PRIMARY KEY,
    broadcast_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX broadcast_ids_broadcast_at_idx ON broadcast_ids (broadcast_at);

-- Bad input that could not become an execution: recorded, never silently dropped.
CREATE TABLE rejected_inputs (
    id          BIGSERIAL PRIMARY KEY,
    source      TEXT NOT NULL,
    error       TEXT NOT NULL,
    excerpt     TEXT,
    received_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Stage 1 trigger: a new execution enqueues its Stage 2 job and wakes the workers.
-- NOTIFY is delivered at commit, so workers see the execution and its raw data.
CREATE FUNCTION enqueue_stage2_job() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO stage2_jobs (execution_id) VALUES (NEW.id)
    ON CONFLICT (execution_id) DO NOTHING;
    PERFORM pg_notify('stage2_jobs', NEW.id::text);
    RETURN NEW;
END;
$$;

CREATE TRIGGER executions_enqueue_stage2
    AFTER INSERT ON executions
    FOR EACH ROW EXECUTE FUNCTION enqueue_stage2_job();
