"""Services started while PostgreSQL and RabbitMQ are unreachable wait for them, then work.

An orchestrator starts everything at once, in no order; a service that exits
because its database is not up yet would, under `make run`, stop the whole
system. Each service must instead wait and carry on when its dependencies come.
"""

from __future__ import annotations

import asyncio
import json

import asyncpg

from services.demo.generator import make_raw_execution
from services.etl.stage1.ingest import ingest_execution
from testkit.pipeline import Pipelines
from testkit.sse import SseRecorder


async def test_services_started_before_the_database_and_broker_wait_for_them(
    pipelines: Pipelines, db_pool: asyncpg.Pool
) -> None:
    proxied = pipelines.proxied()
    proxied.database.cut()
    proxied.broker.cut()
    pipeline = pipelines.start(proxied.env)
    for proc in pipeline.processes.values():
        # Each says it is waiting (and is still running: wait_for_output fails on exit).
        await asyncio.to_thread(proc.wait_for_output, "unreachable", 60)

    proxied.database.restore()
    proxied.broker.restore()
    await pipeline.wait_ready()
    async with SseRecorder(pipeline.base_url) as dashboard:
        await ingest_execution(db_pool, json.dumps(make_raw_execution(1)))
        await dashboard.wait_for(
            lambda d: (
                {e.event for e in d.data_events()} >= {"execution:batch", "etl:stage2:complete"}
            ),
            "the execution's batch and completion",
        )
    for name, proc in pipeline.processes.items():
        assert proc.running, f"{name} exited:\n{proc.output()[-3000:]}"
