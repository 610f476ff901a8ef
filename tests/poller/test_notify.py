"""The poller wakes on the Stage 2 commit's NOTIFY (migration 0050), the tick stays the fallback."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg

from services.poller.loop import BACKLOG_CHANNEL, run_poller
from shared.bus import Bus
from shared.notify import NotifyListener
from testkit.poller import BatchCollector, complete, insert_executions, poller_settings


async def test_a_completion_wakes_the_poller_long_before_its_tick(
    db_pool: asyncpg.Pool, bus: Bus, database_url: str, amqp_url: str
) -> None:
    # A tick of an hour: whatever is published within the guard came from the NOTIFY.
    settings = poller_settings(database_url, amqp_url, bus.exchange_name, poller_interval_s=3600)
    collector = await BatchCollector.subscribe(bus)
    await insert_executions(db_pool, [1, 2, 3])
    stop, wake = asyncio.Event(), asyncio.Event()
    listener = NotifyListener(database_url, {BACKLOG_CHANNEL: wake})
    tasks = [
        asyncio.create_task(listener.run(stop)),
        asyncio.create_task(run_poller(db_pool, bus, settings, stop, wake=wake)),
    ]
    try:
        await asyncio.wait_for(listener.listening.wait(), 30)
        await asyncio.sleep(0.2)  # the first (startup) cycle is done and asleep
        await complete(db_pool, [1])
        await collector.wait_for([1], guard_s=15)
        async with db_pool.acquire() as conn, conn.transaction():
            await complete(conn, [2, 3])  # one commit, one wake-up
        await collector.wait_for([1, 2, 3], guard_s=15)
        assert collector.counts == {1: 1, 2: 1, 3: 1}
    finally:
        stop.set()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 30)
