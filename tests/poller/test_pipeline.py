"""The next cycle claims while the previous one still waits for its publish confirm.

A completion that commits while a cycle waits for the broker's confirm (and
then commits its claim) is claimed at once by the next cycle instead of
waiting for that one to finish: `PIPELINE_DEPTH` cycles overlap. The broker is
stalled through the TCP proxy, so the first cycle's confirm cannot arrive
while the test looks; SKIP LOCKED keeps the two claims disjoint.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import asyncpg

from services.poller.loop import run_poller
from shared.bus import Bus
from testkit.poller import (
    BatchCollector,
    broadcast_set,
    complete,
    insert_executions,
    poller_settings,
)
from testkit.tcp_proxy import TcpProxy
from testkit.waiting import wait_until


async def _claims_in_flight(db_pool: asyncpg.Pool) -> int:
    """Claim transactions waiting (for their publish confirm) with their rows locked.

    Read from pg_stat_activity: a probe that locked backlog rows itself would
    make a concurrent claim skip them.
    """
    count = await db_pool.fetchval(
        """SELECT count(*) FROM pg_stat_activity
           WHERE datname = current_database() AND state = 'idle in transaction'
             AND query LIKE '%broadcast_backlog%'"""
    )
    assert isinstance(count, int)
    return count


async def test_a_completion_during_a_confirm_wait_is_claimed_by_the_next_cycle(
    db_pool: asyncpg.Pool,
    bus: Bus,
    database_url: str,
    amqp_url: str,
    tcp_proxy: Callable[[str], tuple[TcpProxy, str]],
) -> None:
    proxy, proxied_url = tcp_proxy(amqp_url)
    # An hour-long tick: only the wake-ups below start cycles.
    settings = poller_settings(database_url, proxied_url, bus.exchange_name, poller_interval_s=3600)
    poller_bus = Bus(proxied_url, bus.exchange_name, publish_timeout_s=120)
    await poller_bus.connect()
    collector = await BatchCollector.subscribe(bus)
    await insert_executions(db_pool, [1, 2])
    await complete(db_pool, [1])
    stop, wake = asyncio.Event(), asyncio.Event()
    proxy.stall()  # the first cycle's batch reaches no broker: its confirm never comes
    poller = asyncio.create_task(run_poller(db_pool, poller_bus, settings, stop, wake=wake))
    try:
        await wait_until(
            lambda: _in_flight_is(db_pool, 1), "the first cycle to claim 1", alive=[poller]
        )
        await complete(db_pool, [2])
        wake.set()  # what the NOTIFY of that commit does
        await wait_until(
            lambda: _in_flight_is(db_pool, 2), "the next cycle to claim 2", alive=[poller]
        )
        assert await db_pool.fetchval("SELECT count(*) FROM broadcast_backlog") == 2
        assert await broadcast_set(db_pool) == set()  # neither claim has committed yet
        proxy.resume()
        await collector.wait_for([1, 2])
        await collector.flush(bus)
        assert collector.counts == {1: 1, 2: 1}
        await wait_until(lambda: _broadcast_is(db_pool, {1, 2}), "both claims committed")
    finally:
        proxy.resume()
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(poller, 60)
        await poller_bus.close()


async def _in_flight_is(db_pool: asyncpg.Pool, expected: int) -> bool:
    return await _claims_in_flight(db_pool) == expected


async def _broadcast_is(db_pool: asyncpg.Pool, expected: set[int]) -> bool:
    return await broadcast_set(db_pool) == expected
