-- Poller: the anti-join "completed executions minus broadcast_ids", materialised.
--
-- A plain anti-join of executions against broadcast_ids over the look-back
-- costs O(rows completed inside the look-back): with a day of completions in
-- the window and nothing new, every tick re-proves that all of them are
-- already broadcast. This table holds only the completed executions that have
-- not been broadcast yet, so a tick costs O(batch). Rows are written by the
-- completing transaction itself (trigger), so a row becomes visible exactly
-- when its completion commits, whatever its extracted_at: nothing to skip.
--
-- No foreign key to executions: its per-row check doubled the cost of bulk
-- loads. A row whose execution was deleted (or reset to not completed) is
-- dropped unsent by the poller's claim, which joins executions.
CREATE TABLE broadcast_backlog (
    execution_id BIGINT PRIMARY KEY,
    extracted_at TIMESTAMPTZ NOT NULL
);
-- Selection: oldest completions first, inside the look-back (range scan).
CREATE INDEX broadcast_backlog_extracted_at_idx
    ON broadcast_backlog (extracted_at, execution_id);

-- A completion (extracted_at set or changed) enters the backlog, unless the
-- execution was broadcast already (Stage 2 ran again). If a poller is claiming
-- it at this very moment the check cannot see that yet and the row enters
-- anyway; the poller's INSERT … ON CONFLICT DO NOTHING then drops it unsent.
CREATE FUNCTION backlog_completed_execution() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM broadcast_ids WHERE execution_id = NEW.id) THEN
        INSERT INTO broadcast_backlog (execution_id, extracted_at)
        VALUES (NEW.id, NEW.extracted_at)
        ON CONFLICT (execution_id) DO UPDATE SET extracted_at = EXCLUDED.extracted_at;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER executions_backlog_on_insert
    AFTER INSERT ON executions
    FOR EACH ROW WHEN (NEW.extracted_at IS NOT NULL)
    EXECUTE FUNCTION backlog_completed_execution();

CREATE TRIGGER executions_backlog_on_complete
    AFTER UPDATE OF extracted_at ON executions
    FOR EACH ROW WHEN (NEW.extracted_at IS NOT NULL
                       AND NEW.extracted_at IS DISTINCT FROM OLD.extracted_at)
    EXECUTE FUNCTION backlog_completed_execution();

-- Anything marked broadcast by other means (a restore, a seeded benchmark)
-- leaves the backlog, so the backlog stays exactly "completed minus broadcast".
CREATE FUNCTION unbacklog_broadcast_ids() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM broadcast_backlog q USING new_ids n WHERE q.execution_id = n.execution_id;
    RETURN NULL;
END;
$$;

CREATE TRIGGER broadcast_ids_leave_backlog
    AFTER INSERT ON broadcast_ids
    REFERENCING NEW TABLE AS new_ids
    FOR EACH STATEMENT EXECUTE FUNCTION unbacklog_broadcast_ids();

-- Databases migrated before this table existed: backlog what is unbroadcast.
INSERT INTO broadcast_backlog (execution_id, extracted_at)
SELECT e.id, e.extracted_at
FROM executions e
WHERE e.extracted_at IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM broadcast_ids b WHERE b.execution_id = e.id);
