"""The database goes away under a running poll loop: it keeps going and catches up."""

from __future__ import annotations

import asyncpg

from shared.bus import Bus
from shared.db import create_pool
from testkit.poller import (
    BatchCollector,
    complete,
    insert_executions,
    outage,
    poller_settings,
    running_poller,
)
from testkit.tcp_proxy import ProxyFactory


async def test_poll_loop_rides_out_a_database_outage(
    db_pool: asyncpg.Pool,
    bus: Bus,
    database_url: str,
    amqp_url: str,
    tcp_proxy: ProxyFactory,
) -> None:
    proxy, proxied_url = tcp_proxy(database_url)
    settings = poller_settings(proxied_url, amqp_url, bus.exchange_name)
    poller_pool = await create_pool(proxied_url, min_size=1, max_size=2)
    collector = await BatchCollector.subscribe(bus)
    try:
        async with running_poller(poller_pool, bus, settings):
            before, during = list(range(1, 21)), list(range(21, 41))
            await insert_executions(db_pool, before + during)
            await complete(db_pool, before)
            await collector.wait_for(before)
            async with outage(proxy, "database") as failing:
                # The test's own pool does not go through the proxy.
                await complete(db_pool, during)
                await failing()
            await collector.wait_for(before + during)
    finally:
        await poller_pool.close()
    await collector.flush(bus)
    assert sorted(collector.ids) == before + during
