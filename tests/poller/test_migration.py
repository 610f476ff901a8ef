"""Migration 0003 on a database that already holds executions."""

from __future__ import annotations

import asyncpg

from shared.db import migrate


async def test_0003_backlogs_the_completed_executions_not_yet_broadcast(
    empty_database_url: str,
) -> None:
    await migrate(empty_database_url)
    conn = await asyncpg.connect(empty_database_url)
    try:
        # Back to the state before 0003, with history written under the old schema.
        await conn.execute(
            """DROP TABLE broadcast_backlog;
               DROP FUNCTION backlog_completed_execution() CASCADE;
               DROP FUNCTION unbacklog_broadcast_ids() CASCADE;
               DELETE FROM schema_migrations WHERE version = 3;"""
        )
        await conn.execute(
            """INSERT INTO executions (id, workflow_id, camera_id, status, started_at,
                                       extracted_at)
               SELECT id, 'wf', 'cam', 'success', now(),
                      CASE WHEN id <= 3 THEN now() - make_interval(mins => id::int) END
               FROM generate_series(1, 5) id;
               INSERT INTO broadcast_ids (execution_id) VALUES (1);"""
        )
        assert await migrate(empty_database_url) == [3]
        backlog = await conn.fetch(
            "SELECT execution_id FROM broadcast_backlog ORDER BY execution_id"
        )
        assert [r["execution_id"] for r in backlog] == [2, 3]
    finally:
        await conn.close()
