"""Outbox relay: order, exactly one active relay, retention, lag, and broker outages."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import aio_pika
import asyncpg

from services.etl.outbox.relay import RELAY_LOCK_KEY, OutboxRelay, RelayConfig, update_lag_metric
from shared.bus import Bus, Delivery
from shared.contracts import RoutingKey, Stage2Complete, Stage2Failed, encode
from shared.db import create_pool
from shared.settings import EtlSettings
from testkit.etl import EventLog, ingest, running_etl
from testkit.factories import stage2_complete
from testkit.tcp_proxy import ProxyFactory
from testkit.waiting import wait_until

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


async def insert_mixed_events(pool: asyncpg.Pool, kinds: list[tuple[int, RoutingKey]]) -> None:
    """Outbox rows in this order: (execution id, stage2.failed or stage2.complete)."""
    now = datetime.now(UTC)
    rows = []
    for execution_id, key in kinds:
        event: Stage2Failed | Stage2Complete
        if key is RoutingKey.STAGE2_FAILED:
            event = Stage2Failed(execution_id=execution_id, error="e", retry_count=1, timestamp=now)
        else:
            event = stage2_complete(execution_id)
        rows.append((key.value, execution_id, encode(event).decode()))
    await pool.executemany(
        "INSERT INTO outbox (routing_key, execution_id, payload) VALUES ($1, $2, $3)", rows
    )


async def outbox_ids(pool: asyncpg.Pool, *, published: bool) -> list[int]:
    rows = await pool.fetch(
        "SELECT id FROM outbox WHERE (published_at IS NOT NULL) = $1 ORDER BY id", published
    )
    return [r["id"] for r in rows]


async def test_pipelined_batch_keeps_id_order_on_the_wire(
    db_pool: asyncpg.Pool, bus: Bus, events: EventLog
) -> None:
    # One batch of 200 publishes in flight at once, a failure and a success per execution.
    kinds = [
        (i // 2 + 1, RoutingKey.STAGE2_FAILED if i % 2 == 0 else RoutingKey.STAGE2_COMPLETE)
        for i in range(200)
    ]
    await insert_mixed_events(db_pool, kinds)
    relay = OutboxRelay(db_pool, bus, RelayConfig(batch_size=200))
    outcome = await relay.publish_batch()
    assert (outcome.published, outcome.fetched, outcome.error) == (200, 200, None)
    await events.wait_for(lambda ds: len(ds) == 200, "200 events")
    ids = await outbox_ids(db_pool, published=True)
    assert [d.message_id for d in events.deliveries] == [f"outbox-{i}" for i in ids]
    for execution_id in (1, 50, 100):
        assert events.kinds(execution_id) == ["stage2.failed", "stage2.complete"]


async def test_a_nack_mid_batch_marks_only_the_confirmed_prefix(
    db_pool: asyncpg.Pool, bus: Bus, amqp_url: str, exchange_name: str, events: EventLog
) -> None:
    # A real broker nack: a one-message queue for stage2.failed that rejects overflow.
    connection = await aio_pika.connect(amqp_url)
    limited_name = f"{exchange_name}.limited"
    try:
        channel = await connection.channel()
        limited = await channel.declare_queue(
            limited_name, arguments={"x-max-length": 1, "x-overflow": "reject-publish"}
        )
        await limited.bind(exchange_name, RoutingKey.STAGE2_FAILED.value)
        await insert_mixed_events(
            db_pool,
            [
                (1, RoutingKey.STAGE2_FAILED),  # fills the limited queue
                (1, RoutingKey.STAGE2_COMPLETE),
                (2, RoutingKey.STAGE2_FAILED),  # nacked: the limited queue is full
                (2, RoutingKey.STAGE2_COMPLETE),  # confirmed, but after the failure
                (3, RoutingKey.STAGE2_COMPLETE),
            ],
        )
        ids = await outbox_ids(db_pool, published=False)
        relay = OutboxRelay(db_pool, bus, RelayConfig(batch_size=10))

        outcome = await relay.publish_batch()
        assert outcome.error is not None and "stage2.failed" in str(outcome.error)
        assert (outcome.published, outcome.fetched) == (2, 5)
        # Published rows stay a prefix: rows after the nacked one wait for it.
        assert await outbox_ids(db_pool, published=True) == ids[:2]
        assert await outbox_ids(db_pool, published=False) == ids[2:]

        await limited.purge()
        outcome = await relay.publish_batch()
        assert (outcome.published, outcome.error) == (3, None)
    finally:
        cleanup = await connection.channel()
        await cleanup.queue_delete(limited_name)
        await connection.close()
    wanted = [f"outbox-{i}" for i in ids]

    def complete(deliveries: list[Delivery]) -> bool:
        return {d.message_id for d in deliveries} >= set(wanted)

    deliveries = await events.wait_for(complete, "every event")
    # Rows after the nacked one were re-sent after it: the last copy of each
    # event arrives in id order, so stage2.complete of execution 2 is the last word.
    last_copies = list(dict.fromkeys(reversed([d.message_id for d in deliveries])))
    assert list(reversed(last_copies)) == wanted
    assert events.kinds(2)[-1] == "stage2.complete"


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
    tcp_proxy: ProxyFactory,
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
