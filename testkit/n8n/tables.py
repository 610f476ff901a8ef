"""n8n's two execution tables (the columns of n8n 1.123.81 that smokesignal reads) for
tests that need an n8n database without starting n8n; the real-n8n tests use n8n's own."""

from __future__ import annotations

from datetime import datetime

import asyncpg

SCHEMA = """
CREATE TABLE execution_entity (
    id          SERIAL PRIMARY KEY,
    finished    BOOLEAN NOT NULL DEFAULT false,
    mode        VARCHAR NOT NULL DEFAULT 'webhook',
    status      VARCHAR NOT NULL,
    "workflowId" VARCHAR(36) NOT NULL,
    "startedAt" TIMESTAMPTZ(3),
    "stoppedAt" TIMESTAMPTZ(3),
    "waitTill"  TIMESTAMPTZ(3),
    "deletedAt" TIMESTAMPTZ(3),
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT now()
);
CREATE TABLE execution_data (
    "executionId" INTEGER PRIMARY KEY REFERENCES execution_entity (id) ON DELETE CASCADE,
    "workflowData" JSON NOT NULL DEFAULT '{}',
    data TEXT NOT NULL
);
"""

WORKFLOW_ID = "saiTestWorkflow01"


async def create_tables(conn: asyncpg.Connection) -> None:
    await conn.execute(SCHEMA)


async def start_execution(
    conn: asyncpg.Connection, *, workflow_id: str = WORKFLOW_ID, created_at: datetime | None = None
) -> int:
    """What n8n does when a run starts: a 'running' row (its run data comes at the end)."""
    execution_id: int = await conn.fetchval(
        """INSERT INTO execution_entity (status, "workflowId", "startedAt", "createdAt")
           VALUES ('running', $1, now(), coalesce($2, now())) RETURNING id""",
        workflow_id,
        created_at,
    )
    await conn.execute(
        """INSERT INTO execution_data ("executionId", data) VALUES ($1, '[{}]')""", execution_id
    )
    return execution_id


async def finish_execution(
    conn: asyncpg.Connection, execution_id: int, data: str, status: str = "success"
) -> None:
    """What n8n does when a run ends: entity and run data in one transaction."""
    async with conn.transaction():
        await conn.execute(
            """UPDATE execution_entity SET status = $2::varchar, finished = ($2::text = 'success'),
                   "stoppedAt" = now() WHERE id = $1""",
            execution_id,
            status,
        )
        await conn.execute(
            """UPDATE execution_data SET data = $2 WHERE "executionId" = $1""", execution_id, data
        )
