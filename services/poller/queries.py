"""The poller's SQL, importable by the benchmarks (EXPLAIN) and the tests.

Every statement costs O(batch): the selection is a range scan of
broadcast_backlog_extracted_at_idx (migration 0003), never a scan of the
look-back window of executions.
"""

from __future__ import annotations

from shared.executions import SUMMARY_COLUMNS

# $1 = look-back in seconds, $2 = batch size.
# The selection on its own (EXPLAIN it inside a transaction: it locks rows).
SELECT_PENDING_SQL = """
    SELECT q.execution_id
    FROM broadcast_backlog q
    WHERE q.extracted_at >= now() - make_interval(secs => $1)
    ORDER BY q.extracted_at, q.execution_id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
"""

# One tick's claim, in one statement: pick unbroadcast completions inside the
# look-back (rows another poller is claiming are skipped, not waited for),
# take them off the backlog, add them to the broadcast set (the ON CONFLICT is
# the anti-join: an execution already broadcast is dropped silently), and
# return the ExecutionSummary of each one claimed, oldest completion first.
# Run it inside the transaction that publishes; a failed publish rolls it back.
CLAIM_SQL = f"""
    WITH picked AS ({SELECT_PENDING_SQL}),
    dequeued AS (
        DELETE FROM broadcast_backlog q
        USING picked p
        WHERE q.execution_id = p.execution_id
        RETURNING q.execution_id
    ),
    claimed AS (
        INSERT INTO broadcast_ids (execution_id)
        SELECT d.execution_id
        FROM dequeued d
        JOIN executions e ON e.id = d.execution_id AND e.extracted_at IS NOT NULL
        ON CONFLICT (execution_id) DO NOTHING
        RETURNING execution_id
    )
    SELECT {SUMMARY_COLUMNS}
    FROM executions e
    JOIN claimed c ON c.execution_id = e.id
    ORDER BY e.extracted_at, e.id
"""

# This transaction only: commit without waiting for the WAL flush (tick.py says when).
ASYNC_COMMIT_SQL = "SET LOCAL synchronous_commit = off"

# Trimming, by age only, in chunks so no transaction grows with the table.
# $1 = age in seconds (look-back + margin), $2 = chunk size.
TRIM_BROADCAST_IDS_SQL = """
    WITH doomed AS (
        SELECT execution_id FROM broadcast_ids
        WHERE broadcast_at < now() - make_interval(secs => $1)
        LIMIT $2
    )
    DELETE FROM broadcast_ids b USING doomed d
    WHERE b.execution_id = d.execution_id
"""

# Completions that fell out of the look-back before any poller claimed them:
# they will never be selected, so they leave the backlog (and are logged).
EXPIRE_BACKLOG_SQL = """
    WITH doomed AS (
        SELECT execution_id FROM broadcast_backlog
        WHERE extracted_at < now() - make_interval(secs => $1)
        LIMIT $2
        FOR UPDATE SKIP LOCKED
    )
    DELETE FROM broadcast_backlog q USING doomed d
    WHERE q.execution_id = d.execution_id
    RETURNING q.execution_id
"""

RECORD_REJECTED_SQL = """
    INSERT INTO rejected_inputs (source, error, excerpt) VALUES ('poller', $1, $2)
"""
