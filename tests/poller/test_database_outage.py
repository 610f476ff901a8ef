"""The database goes away under a running poll loop: it keeps going and catches up."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg
from prometheus_client import REGISTRY

from services.poller.loop import run_poller
from shared.bus import Bus
from shared.db import create_pool
from testkit.poller import (
    BatchCollector,
    complete,
    insert_executions,
    poller_settings,
)
from testkit.tcp_proxy import TcpProxy
from testkit.waiting import wait_until


def _database_errors() -> float:
    labels = {"cause": "database"}
    return REGISTRY.get_sample_value("smokesignal_poller_cycle_errors_total", labels) or 0.0


async def test_poll_loop_rides_out_a_database_outage(
    db_pool: asyncpg.Pool,
    bus: Bus,
    database_url: str,
    amqp_url: str,
    tcp_proxy: Callable[[str], tuple[TcpProxy, str]],
) -> None:
    proxy, proxied_url = tcp_proxy(database_url)
    settings = poller_settings(proxied_url, amqp_url, bus.exchange_name)
    poller_pool = await create_pool(proxied_url, min_size=1, max_size=2)
    collector = await BatchCollector.subscribe(bus)
    stop = asyncio.Event()
    poller = asyncio.create_task(run_poller(poller_pool, bus, settings, stop))
    try:
        before, during = list(range(1, 21)), list(range(21, 41))
        await insert_executions(db_pool, before + during)
        await complete(db_pool, before)
        await collector.wait_for(before)

        proxy.cut()
        errors_at_cut = _database_errors()
        await complete(db_pool, during)  # the test's own pool does not go through the proxy
        await wait_until(lambda: _database_errors() >= errors_at_cut + 2, what="failed cycles")
        proxy.restore()
        await collector.wait_for(before + during)
    finally:
        stop.set()
        await asyncio.wait_for(poller, timeout=30)
        await poller_pool.close()
    await collector.flush(bus)
    assert sorted(collector.ids) == before + during
