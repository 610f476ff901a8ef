"""Services started while PostgreSQL and RabbitMQ are unreachable wait for them, then work.

An orchestrator starts everything at once, in no order; a service that exits
because its database is not up yet would, under `make run`, stop the whole
system. Each service must instead wait and carry on when its dependencies come.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import asyncpg

from services.demo.generator import make_raw_execution
from services.etl.stage1.ingest import ingest_execution
from shared.bus import Bus
from testkit.pipeline import proxied_pipeline_env, start_pipeline
from testkit.processes import ServiceProcess
from testkit.sse import SseRecorder
from testkit.tcp_proxy import ProxyFactory


async def test_services_started_before_the_database_and_broker_wait_for_them(
    database_url: str,
    amqp_url: str,
    service_env: dict[str, str],
    service_process: Callable[..., ServiceProcess],
    tcp_proxy: ProxyFactory,
    db_pool: asyncpg.Pool,
    bus: Bus,
    tmp_path: Path,
) -> None:
    proxied = proxied_pipeline_env(
        tcp_proxy,
        service_env,
        database_url=database_url,
        amqp_url=amqp_url,
        image_dir=tmp_path / "images",
    )
    proxied.database.cut()
    proxied.broker.cut()
    pipeline = start_pipeline(service_process, proxied.env)
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
