"""Two poller replicas over the same database and exchange: no duplicates, none missing."""

from __future__ import annotations

import asyncio
import random

import asyncpg

from services.poller.loop import run_poller
from shared.bus import Bus
from shared.db import create_pool
from testkit.poller import BatchCollector, complete, insert_executions, poller_settings


async def test_two_pollers_running_at_once_publish_each_execution_exactly_once(
    db_pool: asyncpg.Pool, bus: Bus, database_url: str, amqp_url: str
) -> None:
    settings = poller_settings(
        database_url, amqp_url, bus.exchange_name, poller_interval_s=0.005, poller_batch_size=15
    )
    collector = await BatchCollector.subscribe(bus)
    ids = list(range(1, 1001))
    await insert_executions(db_pool, ids)
    stop = asyncio.Event()
    published_by: list[list[int]] = [[], []]
    replicas: list[tuple[asyncpg.Pool, Bus]] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        for replica in range(2):
            pool = await create_pool(database_url, min_size=1, max_size=2)
            replica_bus = Bus(amqp_url, bus.exchange_name)
            replicas.append((pool, replica_bus))
            await replica_bus.connect()
            tasks.append(
                asyncio.create_task(
                    run_poller(pool, replica_bus, settings, stop, published_by[replica].extend)
                )
            )
        order = ids[:]
        rng = random.Random(2)
        rng.shuffle(order)
        for start in range(0, len(order), 25):
            await complete(db_pool, order[start : start + 25], age_s=rng.choice([0, 5, 300]))
            await asyncio.sleep(0.005)  # let the replicas interleave with the completions
        await collector.wait_for(ids)
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)
        for pool, replica_bus in replicas:
            await replica_bus.close()
            await pool.close()
    await collector.flush(bus)
    duplicates = {i: n for i, n in collector.counts.items() if n > 1}
    assert duplicates == {}
    assert sorted(collector.ids) == ids
    assert sorted(published_by[0] + published_by[1]) == ids
