"""`python -m services.poller` as a real process: restarts, kill -9, SIGTERM, metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg
import httpx

from shared.bus import Bus
from testkit.net import free_port
from testkit.poller import (
    BatchCollector,
    broadcast_set,
    complete,
    insert_executions,
)
from testkit.processes import ServiceProcess
from testkit.waiting import wait_until


async def _started(process: ServiceProcess) -> ServiceProcess:
    await asyncio.to_thread(process.wait_for_output, "poller started")
    return process


async def test_restarted_poller_republishes_nothing_and_misses_nothing(
    db_pool: asyncpg.Pool,
    bus: Bus,
    service_env: dict[str, str],
    service_process: Callable[..., ServiceProcess],
) -> None:
    metrics_port = free_port()
    env = {
        **service_env,
        "POLLER_INTERVAL_S": "0.05",
        "POLLER_BATCH_SIZE": "20",
        "POLLER_METRICS_PORT": str(metrics_port),
    }
    collector = await BatchCollector.subscribe(bus)
    first, second, third = list(range(1, 51)), list(range(51, 101)), list(range(101, 151))
    await insert_executions(db_pool, first + second + third)

    poller = await _started(service_process(["services.poller"], env, "poller-1"))
    await complete(db_pool, first)
    await collector.wait_for(first)
    async with httpx.AsyncClient() as client:
        metrics = (await client.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
    assert "smokesignal_poller_executions_broadcast_total 50.0" in metrics
    assert "smokesignal_poller_cycle_seconds_count" in metrics
    assert "smokesignal_poller_batch_size_bucket" in metrics

    # Graceful stop: SIGTERM finishes the cycle in progress and exits cleanly.
    assert await asyncio.to_thread(poller.terminate) == 0
    assert "poller stopped" in poller.output()

    await complete(db_pool, second)  # completed while no poller runs
    poller = await _started(service_process(["services.poller"], env, "poller-2"))
    await collector.wait_for(first + second)

    # kill -9 once everything so far is committed as broadcast: the set outlives the process.
    expected = set(first + second)

    async def all_claimed() -> bool:
        return expected <= await broadcast_set(db_pool)

    await wait_until(all_claimed, what="claims committed")
    poller.kill()
    await complete(db_pool, third)
    poller = await _started(service_process(["services.poller"], env, "poller-3"))
    await collector.wait_for(first + second + third)
    assert await asyncio.to_thread(poller.terminate) == 0

    await collector.flush(bus)
    assert sorted(collector.ids) == first + second + third
    assert await broadcast_set(db_pool) == set(first + second + third)
