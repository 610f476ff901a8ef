"""Every SQL statement of the ETL service, by stage (the code that runs them names them)."""

from services.etl.stage1.n8n_catchup import FINISHED_STATUSES
from shared.queries import INSERT_OUTBOX_ROW

# -- Stage 1: ingest ---------------------------------------------------------
# One statement, so it is atomic without an explicit transaction: the execution
# row (its trigger enqueues the job) and the raw payload land together or not at all.
INSERT_EXECUTION = """
WITH inserted AS (
    INSERT INTO executions
        (id, workflow_id, camera_id, location, camera_type, status, started_at, stopped_at,
         device_id, captured_at, source_status)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $3, $10, $6)
    ON CONFLICT (id) DO NOTHING
    RETURNING id
)
INSERT INTO execution_raw (execution_id, payload)
SELECT id, $9 FROM inserted
RETURNING execution_id
"""

# An n8n execution: the row and n8n's run data (flatted, as n8n stored it).
INSERT_N8N_EXECUTION = """
WITH inserted AS (
    INSERT INTO executions
        (id, workflow_id, camera_id, location, camera_type, status, started_at, stopped_at,
         device_id, source_status)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $6)
    ON CONFLICT (id) DO NOTHING
    RETURNING id
)
INSERT INTO execution_raw (execution_id, payload, source_format)
SELECT id, $10, 'n8n' FROM inserted
RETURNING execution_id
"""

# Which of these ids are taken, and by which source ('raw' or 'n8n'): n8n and raw
# ingest share `executions.id`, so an id taken by the other source is a collision.
RECORDED_IDS = """SELECT e.id, coalesce(r.source_format, 'raw') AS source_format
FROM executions e LEFT JOIN execution_raw r ON r.execution_id = e.id
WHERE e.id = ANY($1::bigint[])"""

TAKEN_BY = """SELECT coalesce(r.source_format, 'raw') FROM executions e
LEFT JOIN execution_raw r ON r.execution_id = e.id WHERE e.id = $1"""

N8N_FLOOR = "SELECT floor_id FROM n8n_catchup WHERE source = $1"

SET_N8N_FLOOR = """INSERT INTO n8n_catchup (source, floor_id) VALUES ($1, $2)
ON CONFLICT (source) DO UPDATE
SET floor_id = greatest(n8n_catchup.floor_id, EXCLUDED.floor_id), updated_at = now()"""

INSERT_REJECTED = "INSERT INTO rejected_inputs (source, error, excerpt) VALUES ($1, $2, $3)"

# An n8n execution whose id raw ingest already took: recorded once per source and id.
INSERT_ID_COLLISION = """INSERT INTO rejected_inputs (source, error, excerpt, execution_id)
VALUES ($1, $2, NULL, $3)
ON CONFLICT (source, execution_id) WHERE execution_id IS NOT NULL DO NOTHING
RETURNING id"""

NEXT_EXECUTION_ID = "SELECT COALESCE(max(id), 0) + 1 FROM executions"

# -- Stage 2: the job queue --------------------------------------------------

CLAIM_JOBS = """
        WITH due AS (
            SELECT execution_id FROM stage2_jobs
            WHERE status = 'pending' AND next_attempt_at <= now()
            ORDER BY next_attempt_at
            LIMIT $1
            FOR UPDATE SKIP LOCKED
        )
        UPDATE stage2_jobs j
        SET status = 'processing', attempts = j.attempts + 1, locked_by = $2,
            locked_until = now() + make_interval(secs => $3), updated_at = now()
        FROM due LEFT JOIN execution_raw r ON r.execution_id = due.execution_id
                 LEFT JOIN executions e ON e.id = due.execution_id
        WHERE j.execution_id = due.execution_id
        RETURNING j.execution_id, j.attempts, r.payload, r.source_format, e.status, e.camera_id
        """

SECONDS_UNTIL_NEXT_DUE = """SELECT extract(epoch FROM min(next_attempt_at) - now())::float8
           FROM stage2_jobs WHERE status = 'pending'"""

RENEW_LEASES = """UPDATE stage2_jobs SET locked_until = now() + make_interval(secs => $3)
           WHERE execution_id = ANY($1::bigint[]) AND locked_by = $2 AND status = 'processing'
           RETURNING execution_id"""

RELEASE_JOBS = """UPDATE stage2_jobs
           SET status = 'pending', attempts = greatest(attempts - 1, 0), locked_by = NULL,
               locked_until = NULL, next_attempt_at = now(), updated_at = now()
           WHERE execution_id = ANY($1::bigint[]) AND locked_by = $2 AND status = 'processing'"""

LOAD_RAW = """SELECT r.payload, r.source_format, e.status, e.camera_id
           FROM execution_raw r JOIN executions e ON e.id = r.execution_id
           WHERE r.execution_id = $1"""

LOCK_OWNED_JOB = """SELECT true FROM stage2_jobs
           WHERE execution_id = $1 AND status = 'processing' AND locked_by = $2
           FOR UPDATE"""

GIVE_UP_JOB = """UPDATE stage2_jobs
               SET status = 'failed', last_error = $2, locked_by = NULL, locked_until = NULL,
                   updated_at = now()
               WHERE execution_id = $1"""

RETRY_JOB_LATER = """UPDATE stage2_jobs
               SET status = 'pending', last_error = $2, locked_by = NULL, locked_until = NULL,
                   next_attempt_at = now() + make_interval(secs => $3), updated_at = now()
               WHERE execution_id = $1"""

RECORD_EXECUTION_FAILURE = """UPDATE executions
           SET stage2_error = $2, retry_count = $3,
               processing_stage = CASE WHEN $4 THEN 'failed' ELSE processing_stage END
           WHERE id = $1"""

EXPIRED_LEASES = """SELECT j.execution_id, j.attempts, j.locked_by,
               (SELECT e.camera_id FROM executions e WHERE e.id = j.execution_id) AS camera_id
               FROM stage2_jobs j
               WHERE j.status = 'processing' AND j.locked_until < now()
               ORDER BY j.locked_until
               LIMIT $1
               FOR UPDATE OF j SKIP LOCKED"""

# One statement: atomic without an explicit transaction, and one round trip
# (BEGIN, an ownership check, the writes and COMMIT were five: each costs the
# worker's event loop, which is what bounds a worker process's throughput).
# The job update is the ownership check: under READ COMMITTED it waits for a
# concurrent writer and re-checks its WHERE, so a job whose lease expired and
# was requeued (or taken by another worker) matches no row, and then neither
# the execution nor the outbox is touched.
COMPLETE_JOB = f"""
WITH job AS (
    UPDATE stage2_jobs
    SET status = 'completed', locked_by = NULL, locked_until = NULL,
        last_error = NULL, updated_at = $10
    WHERE execution_id = $1 AND status = 'processing' AND locked_by = $12
    RETURNING execution_id
), execution AS (
    UPDATE executions e
    SET processing_stage = 'stage2', has_smoke = $2, has_fire = $3,
        alert_level = $4, detection_count = $5, confidence = $6,
        image_path = $7, thumbnail_path = $8, telegram_sent = $9,
        extracted_at = $10, stage2_error = NULL, retry_count = $11,
        detections = $16::jsonb, model_version = $17, request_id = $18,
        image_width = $19, image_height = $20, telegram_message_id = $21,
        captured_at = coalesce($22, e.captured_at), device_id = coalesce($23, e.device_id),
        camera_id = coalesce($24, e.camera_id), location = coalesce($25, e.location),
        camera_type = coalesce($26, e.camera_type), webp_path = $27
    FROM job WHERE e.id = job.execution_id
), event AS (
    {INSERT_OUTBOX_ROW}
    SELECT $13, execution_id, $14 FROM job
)
SELECT job.execution_id FROM job, pg_notify($15, '')
"""

# -- Outbox relay -------------------------------------------------------------

TRY_RELAY_LOCK = "SELECT pg_try_advisory_xact_lock($1)"

UNPUBLISHED_BATCH = """SELECT id, routing_key, payload, created_at FROM outbox
                   WHERE published_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE"""

MARK_PUBLISHED = """UPDATE outbox SET published_at = clock_timestamp()
                       WHERE id = ANY($1::bigint[])"""

DELETE_PUBLISHED = """DELETE FROM outbox WHERE id IN (
                       SELECT id FROM outbox
                       WHERE published_at < now() - make_interval(secs => $1)
                       LIMIT $2)"""

OUTBOX_LAG = """SELECT extract(epoch FROM clock_timestamp() - created_at)::float8 FROM outbox
           WHERE published_at IS NULL ORDER BY id LIMIT 1"""

# -- n8n's own database (N8N_DATABASE_URL) -------------------------------------
# Stage 1's n8n source only reads there (execution_entity, execution_data) and
# LISTENs; the trigger below is the one object smokesignal ever creates in it
# (`python -m services.etl n8n-trigger install|uninstall|status`, n8n_trigger.py).

# The finished executions among $1 ids, of workflow $2 (NULL: any), status in $3.
N8N_FETCH_EXECUTIONS = """
SELECT e.id::bigint AS id, e."workflowId" AS workflow_id, e.status,
       e."startedAt" AS started_at, e."stoppedAt" AS stopped_at, e."createdAt" AS created_at,
       d.data
FROM execution_entity e LEFT JOIN execution_data d ON d."executionId" = e.id
WHERE e.id = ANY($1::bigint[])
  AND ($2::text IS NULL OR e."workflowId" = $2)
  AND e.status = ANY($3::text[])
  AND e."deletedAt" IS NULL
"""

# The catch-up's page: ids above the floor $1 of workflow $2, $3 at most, settled
# when created at least $4 seconds ago (n8n_catchup.py says why).
N8N_CATCHUP_PAGE = """
SELECT e.id::bigint AS id, e.status, e."deletedAt" IS NOT NULL AS deleted,
       e."createdAt" <= now() - make_interval(secs => $4) AS settled
FROM execution_entity e
WHERE e.id > $1 AND ($2::text IS NULL OR e."workflowId" = $2)
ORDER BY e.id
LIMIT $3
"""

N8N_TRIGGER_FUNCTION = "smokesignal_notify_execution_finished"
N8N_TRIGGER = "smokesignal_execution_finished"
_N8N_FINISHED = "(" + ", ".join(f"'{status}'" for status in sorted(FINISHED_STATUSES)) + ")"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def n8n_install_trigger(channel: str) -> str:
    """NOTIFY `channel` with the execution id when an execution finishes (any workflow:
    the service filters by N8N_WORKFLOW_ID, so a changed workflow id needs no reinstall)."""
    # The channel is validated by the settings (a plain identifier); quote_literal anyway.
    return f"""
CREATE OR REPLACE FUNCTION {N8N_TRIGGER_FUNCTION}() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify({_literal(channel)}, NEW.id::text);
    RETURN NULL;
END;
$$;
DROP TRIGGER IF EXISTS {N8N_TRIGGER} ON execution_entity;
CREATE TRIGGER {N8N_TRIGGER}
    AFTER INSERT OR UPDATE OF status, finished, "stoppedAt" ON execution_entity
    FOR EACH ROW WHEN (NEW.status IN {_N8N_FINISHED})
    EXECUTE FUNCTION {N8N_TRIGGER_FUNCTION}();
"""


N8N_UNINSTALL_TRIGGER = f"""
DROP TRIGGER IF EXISTS {N8N_TRIGGER} ON execution_entity;
DROP FUNCTION IF EXISTS {N8N_TRIGGER_FUNCTION}();
"""

# $1 = the trigger's name.
N8N_TRIGGER_INSTALLED = """SELECT true FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
           WHERE t.tgname = $1 AND c.relname = 'execution_entity' AND NOT t.tgisinternal"""
