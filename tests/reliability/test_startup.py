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
from testkit.net import free_port
from testkit.pipeline import fast_amqp_url, pipeline_env, start_pipeline
from testkit.processes import ServiceProcess
from testkit.sse import SseRecorder
from testkit.tcp_proxy import TcpProxy

ProxyFactory = Callable[[str], tuple[TcpProxy, str]]


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
    database_proxy, proxied_database = tcp_proxy(database_url)
    broker_proxy, proxied_broker = tcp_proxy(amqp_url)
    database_proxy.cut()
    broker_proxy.cut()
    env = pipeline_env(
        service_env,
        image_dir=tmp_path / "images",
        gateway_port=free_port(),
        DATABASE_URL=proxied_database,
        AMQP_URL=fast_amqp_url(proxied_broker),
    )
    pipeline = start_pipeline(service_process, env)
    for proc in pipeline.processes.values():
        # Each says it is waiting (and is still running: wait_for_output fails on exit).
        await asyncio.to_thread(proc.wait_for_output, "unreachable", 60)

    database_proxy.restore()
    broker_proxy.restore()
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
