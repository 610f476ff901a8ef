"""Outbox relay: order, exactly one active relay, retention, lag, and broker outages."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg

from services.etl.outbox import RELAY_LOCK_KEY, OutboxRelay, RelayConfig, update_lag_metric
from shared.bus import Bus
from shared.contracts import Stage2Failed, encode
from shared.db import create_pool
from shared.settings import EtlSettings
from tests.etl.conftest import EventLog, ingest, running_etl, wait_until
from tests.support.tcp_proxy import TcpProxy

FAST_RELAY = RelayConfig(batch_size=25, poll_interval_s=0.05, retry_max_s=0.3)


async def insert_events(pool: asyncpg.Pool, execution_ids: range) -> None:
    await pool.executemany(
        "INSERT INTO outbox (routing_key, execution_id, payload) VALUES ('stage2.failed', $1, $2)",
        [
            (
                i,
                encode(
                    Stage2Failed(
                        execution_id=i, error="e", retry_count=1, timestamp=datetime.now(UTC)
                    )
                ).decode(),
            )
            for i in execution_ids
        ],
    )


def received_ids(events: EventLog) -> list[int]:
    return [d.message.execution_id for d in events.deliveries]  # type: ignore[union-attr]


async def test_relay_publishes_every_row_in_order_and_marks_it_published(
    db_pool: asyncpg.Pool, bus: Bus, events: EventLog
) -> None:
    await insert_events(db_pool, range(1, 61))
    relay = OutboxRelay(db_pool, bus, FAST_RELAY)
    outcomes = [await relay.publish_batch() for _ in range(4)]
    assert [o.published for o in outcomes] == [25, 25, 10, 0]
    await events.wait_for(lambda ds: len(ds) == 60, "60 events")
    assert received_ids(events) == list(range(1, 61))
    ids = [r["id"] for r in await db_pool.fetch("SELECT id FROM outbox ORDER BY id")]
    assert [d.message_id for d in events.deliveries] == [f"outbox-{i}" for i in ids]
    assert await db_pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0


async def test_a_relay_stands_by_while_another_holds_the_lock(
    db_pool: asyncpg.Pool, bus: Bus
) -> None:
    await insert_events(db_pool, range(1, 4))
    relay = OutboxRelay(db_pool, bus, FAST_RELAY)
    async with db_pool.acquire() as other, other.transaction():
        await other.execute("SELECT pg_advisory_xact_lock($1)", RELAY_LOCK_KEY)
        outcome = await relay.publish_batch()
        assert not outcome.lock_held and outcome.published == 0
    assert (await relay.publish_batch()).published == 3


async def test_several_relays_publish_each_row_once_and_in_order(
    database_url: str, db_pool: asyncpg.Pool, amqp_url: str, exchange_name: str, events: EventLog
) -> None:
    relays = []
    for _ in range(3):
        relay_bus = Bus(amqp_url, exchange_name)
        relays.append(OutboxRelay(await create_pool(database_url, 1, 3), relay_bus, FAST_RELAY))
    stop = asyncio.Event()
    tasks = [asyncio.create_task(r.run(stop)) for r in relays]
    try:
        for start in range(1, 301, 30):  # rows keep arriving while the relays run
            await insert_events(db_pool, range(start, start + 30))
            await asyncio.sleep(0.02)
        await events.wait_for(lambda ds: len(ds) >= 300, "300 events", alive=tasks)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        for relay in relays:
            await relay.bus.close()
            await relay.pool.close()
    assert received_ids(events) == list(range(1, 301))


async def test_published_rows_are_deleted_after_the_retention(
    db_pool: asyncpg.Pool, bus: Bus
) -> None:
    await insert_events(db_pool, range(1, 5))
    await db_pool.execute(
        "UPDATE outbox SET published_at = now() - interval '2 hours' WHERE execution_id <= 2"
    )
    await db_pool.execute("UPDATE outbox SET published_at = now() WHERE execution_id = 3")
    relay = OutboxRelay(db_pool, bus, RelayConfig(retention_s=3600))
    assert await relay.delete_published() == 2
    left = await db_pool.fetch("SELECT execution_id FROM outbox ORDER BY id")
    assert [r["execution_id"] for r in left] == [3, 4]  # recent and unpublished rows stay


async def test_outbox_lag_is_the_age_of_the_oldest_unpublished_event(
    db_pool: asyncpg.Pool, bus: Bus
) -> None:
    assert await update_lag_metric(db_pool) == 0.0
    await insert_events(db_pool, range(1, 3))
    await db_pool.execute("UPDATE outbox SET created_at = now() - interval '90 seconds'")
    assert 90 <= await update_lag_metric(db_pool) < 3600
    await OutboxRelay(db_pool, bus, FAST_RELAY).publish_batch()
    assert await update_lag_metric(db_pool) == 0.0


async def test_broker_outage_loses_no_event(
    db_pool: asyncpg.Pool,
    etl_settings: EtlSettings,
    events: EventLog,
    tcp_proxy: Callable[[str], tuple[TcpProxy, str]],
) -> None:
    proxy, proxied_url = tcp_proxy(etl_settings.amqp_url)
    settings = etl_settings.model_copy(update={"amqp_url": proxied_url + "?reconnect_interval=0.3"})
    await ingest(db_pool, 1)
    async with running_etl(settings) as service:
        await events.wait_completed([1], alive=[service])

        proxy.cut()
        # The ETL keeps working while the broker is unreachable…
        for execution_id in range(2, 8):
            await ingest(db_pool, execution_id, transient_failures=execution_id % 2)

        async def all_processed() -> bool:
            return bool(
                await db_pool.fetchval(
                    "SELECT count(*) = 7 FROM executions WHERE processing_stage = 'stage2'"
                )
            )

        await wait_until(all_processed, "Stage 2 of all executions", alive=[service])
        unpublished = await db_pool.fetchval(
            "SELECT count(*) FROM outbox WHERE published_at IS NULL"
        )
        assert unpublished == 9  # 6 completions + 3 transient failures
        assert len(events.deliveries) == 1

        proxy.restore()
        # …and everything it did reaches the bus once the broker is back.
        await events.wait_completed(range(2, 8), alive=[service])

    async def drained() -> bool:
        return not await db_pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")

    await wait_until(drained, "outbox drained")
    # At-least-once: a publish cut before its confirm may be repeated, under the same id.
    unique = {d.message_id: d for d in events.deliveries}
    assert len(unique) == await db_pool.fetchval("SELECT count(*) FROM outbox") == 10
    for execution_id in range(2, 8):
        kinds = [
            d.routing_key
            for d in unique.values()
            if d.message.execution_id == execution_id  # type: ignore[union-attr]
        ]
        expected = ["stage2.failed"] * (execution_id % 2) + ["stage2.complete"]
        assert kinds == expected
