from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg

from shared.db import STAGE2_CHANNEL


async def test_inserting_an_execution_enqueues_a_job_and_notifies(database_url: str) -> None:
    listener = await asyncpg.connect(database_url)
    writer = await asyncpg.connect(database_url)
    notified: asyncio.Queue[str] = asyncio.Queue()
    try:
        await listener.add_listener(STAGE2_CHANNEL, lambda *args: notified.put_nowait(args[3]))
        await writer.execute(
            """INSERT INTO executions (id, workflow_id, camera_id, status, started_at)
               VALUES (42, 'wf', 'cam-1', 'success', $1)""",
            datetime.now(UTC),
        )
        assert await asyncio.wait_for(notified.get(), timeout=10) == "42"
        job = await writer.fetchrow("SELECT * FROM stage2_jobs WHERE execution_id = 42")
        assert job is not None
        assert job["status"] == "pending"
        assert job["attempts"] == 0
        stage = await writer.fetchval("SELECT processing_stage FROM executions WHERE id = 42")
        assert stage == "stage1"
    finally:
        await listener.close()
        await writer.close()
