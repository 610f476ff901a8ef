"""The broker goes away during a tick: nothing stays claimed, everything is published later.

And while a cycle waits for a stalled broker's confirm, the next cycle already
claims what committed meanwhile (pipelined cycles, services/poller/loop.py).
"""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import pytest

from services.poller.loop import run_poller
from services.poller.tick import poll_once
from shared.bus import Bus, BusError
from testkit.poller import (
    BatchCollector,
    broadcast_set,
    complete,
    insert_executions,
    outage,
    poller_settings,
    running_poller,
)
from testkit.tcp_proxy import ProxyFactory
from testkit.waiting import wait_until


async def _backlog(db_pool: asyncpg.Pool) -> int:
    count = await db_pool.fetchval("SELECT count(*) FROM broadcast_backlog")
    assert isinstance(count, int)
    return count


def _quick_reconnect(amqp_url: str) -> str:
    return amqp_url + ("&" if "?" in amqp_url else "?") + "reconnect_interval=0.5"


async def test_publish_failure_rolls_the_claim_back_and_a_later_tick_publishes(
    db_pool: asyncpg.Pool, bus: Bus, database_url: str, amqp_url: str, tcp_proxy: ProxyFactory
) -> None:
    # A short reconnect interval (aio-pika URL option) keeps the test quick.
    proxy, proxied_url = tcp_proxy(_quick_reconnect(amqp_url))
    settings = poller_settings(database_url, proxied_url, bus.exchange_name)
    poller_bus = Bus(proxied_url, bus.exchange_name, publish_timeout_s=2)
    await poller_bus.connect()
    collector = await BatchCollector.subscribe(bus)
    ids = list(range(1, 21))
    try:
        await insert_executions(db_pool, ids)
        await complete(db_pool, ids)
        proxy.cut()
        with pytest.raises(BusError):
            await poll_once(db_pool, poller_bus, settings)
        assert await broadcast_set(db_pool) == set()
        assert await _backlog(db_pool) == len(ids)

        proxy.restore()
        published: list[int] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60  # hang guard while the robust connection comes back
        while len(published) < len(ids):
            assert loop.time() < deadline, "poller bus never reconnected"
            try:
                published += await poll_once(db_pool, poller_bus, settings)
            except BusError:
                await asyncio.sleep(0.1)
        assert sorted(published) == ids
        await collector.flush(bus)
        assert sorted(collector.ids) == ids
        assert await broadcast_set(db_pool) == set(ids)
    finally:
        await poller_bus.close()


async def test_poll_loop_rides_out_a_broker_outage(
    db_pool: asyncpg.Pool, bus: Bus, database_url: str, amqp_url: str, tcp_proxy: ProxyFactory
) -> None:
    # A short reconnect interval (aio-pika URL option) keeps the test quick.
    proxy, proxied_url = tcp_proxy(_quick_reconnect(amqp_url))
    settings = poller_settings(database_url, proxied_url, bus.exchange_name, poller_batch_size=7)
    poller_bus = Bus(proxied_url, bus.exchange_name, publish_timeout_s=2)
    await poller_bus.connect()
    collector = await BatchCollector.subscribe(bus)
    try:
        async with running_poller(db_pool, poller_bus, settings):
            before = list(range(1, 31))
            await insert_executions(db_pool, before)
            await complete(db_pool, before)
            await collector.wait_for(before)
            # Delivery precedes the claim's commit (the claim commits after the
            # confirm): cut only once every claim is committed, or a confirm lost
            # in the cut rolls one back and it is (rightly) re-published later.
            await wait_until(
                lambda: _broadcast_is(db_pool, set(before)), what="claims of `before` committed"
            )
            async with outage(proxy, "bus") as failing:
                during = list(range(31, 61))
                await insert_executions(db_pool, during)
                await complete(db_pool, during)
                await failing()
                assert await broadcast_set(db_pool) == set(before), (
                    "nothing claimed while the broker is away"
                )
            await collector.wait_for(before + during)
    finally:
        await poller_bus.close()
    await collector.flush(bus)
    assert sorted(collector.ids) == before + during


async def _broadcast_is(pool: asyncpg.Pool, expected: set[int]) -> bool:
    return await broadcast_set(pool) == expected


async def _claims_in_flight(db_pool: asyncpg.Pool) -> int:
    """Claim transactions (they wrote: an xid) idle while they wait for their confirm.

    Read from pg_stat_activity: a probe that locked backlog rows itself would
    make a concurrent claim skip them.
    """
    count = await db_pool.fetchval(
        """SELECT count(*) FROM pg_stat_activity
           WHERE datname = current_database() AND state = 'idle in transaction'
             AND backend_xid IS NOT NULL"""
    )
    assert isinstance(count, int)
    return count


async def test_a_completion_during_a_confirm_wait_is_claimed_by_the_next_cycle(
    db_pool: asyncpg.Pool, bus: Bus, database_url: str, tcp_proxy: ProxyFactory
) -> None:
    """The broker is stalled, so the first cycle's confirm cannot come while we look."""
    proxy, proxied_url = tcp_proxy(bus.amqp_url)
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
