-- Poller: wake on the Stage 2 commit instead of waiting for the next tick.
--
-- The completion's transaction already writes its broadcast_backlog row (0003);
-- now it also NOTIFYs channel `broadcast_backlog`. PostgreSQL delivers a NOTIFY
-- only at commit, so a poller woken by it finds the row visible. Identical
-- notifications of one transaction are folded into one. The tick stays as the
-- fallback (a poller that was not listening, a lost connection): the persisted
-- broadcast set still decides what is sent, so a missed NOTIFY only delays.
CREATE OR REPLACE FUNCTION backlog_completed_execution() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM broadcast_ids WHERE execution_id = NEW.id) THEN
        INSERT INTO broadcast_backlog (execution_id, extracted_at)
        VALUES (NEW.id, NEW.extracted_at)
        ON CONFLICT (execution_id) DO UPDATE SET extracted_at = EXCLUDED.extracted_at;
        PERFORM pg_notify('broadcast_backlog', '');
    END IF;
    RETURN NULL;
END;
$$;
