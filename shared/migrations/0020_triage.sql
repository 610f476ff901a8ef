-- Operator triage: false-positive marks, alert acknowledgement, their audit trail,
-- and the per-camera frame sequence.
--
-- The columns describe the CURRENT state of an execution (unmarking clears the
-- false-positive columns); every change ever made is a row of execution_audit.
-- triage_revision counts those changes per execution, so a dashboard can tell
-- a stale REST snapshot from a newer `execution.updated` event.
-- Constant defaults: adding these columns rewrites nothing (PostgreSQL 11+).
ALTER TABLE executions
    ADD COLUMN false_positive        BOOLEAN NOT NULL DEFAULT false,
    ADD COLUMN false_positive_reason TEXT,
    ADD COLUMN false_positive_by     TEXT,
    ADD COLUMN false_positive_at     TIMESTAMPTZ,
    ADD COLUMN acknowledged_by       TEXT,
    ADD COLUMN acknowledged_at       TIMESTAMPTZ,
    ADD COLUMN triage_revision       INTEGER NOT NULL DEFAULT 0 CHECK (triage_revision >= 0);

CREATE TABLE execution_audit (
    id           BIGSERIAL PRIMARY KEY,
    execution_id BIGINT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    action       TEXT NOT NULL
                 CHECK (action IN ('mark_false_positive', 'unmark_false_positive', 'acknowledge')),
    actor        TEXT NOT NULL CHECK (actor <> ''),
    reason       TEXT,
    at           TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- One execution's history, newest first.
CREATE INDEX execution_audit_execution_idx ON execution_audit (execution_id, at DESC, id DESC);
-- Everything that happened in a time range (reports, "what did operators do today").
CREATE INDEX execution_audit_at_idx ON execution_audit (at DESC, id DESC);
-- Who did what.
CREATE INDEX execution_audit_actor_idx ON execution_audit (actor, at DESC);

-- Gallery filter "only false positives": newest first over the (few) marked rows.
-- "Hide false positives" walks the primary key and skips the few marked ones.
CREATE INDEX executions_false_positive_idx ON executions (id DESC) WHERE false_positive;

-- Alert banner: unacknowledged high/critical results that are not false positives.
CREATE INDEX executions_open_alerts_idx ON executions (id DESC)
    WHERE alert_level IN ('high', 'critical') AND acknowledged_at IS NULL AND NOT false_positive;

-- A camera's frames in time order (detail view: previous/next frame, hold-to-play):
-- keyset pagination on (started_at, id) within one camera.
CREATE INDEX executions_camera_time_idx ON executions (camera_id, started_at, id);
