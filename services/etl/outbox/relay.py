"""Outbox relay: publishes outbox rows to the bus in id order, with publisher confirms.

One relay publishes at a time: each batch runs in a transaction that first takes
`pg_try_advisory_xact_lock`. A relay that does not get it skips the round (the
active one is publishing) and stands by; whichever relay runs next sees exactly
the rows the previous batch left unpublished, so order is kept across processes
and a crashed relay's batch is simply picked up again (at-least-once; every
message carries message_id `outbox-<id>` for de-duplication). Published rows
are deleted after a retention period.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from services.etl import metrics, queries
from services.etl.errors import describe_error
from services.etl.stage2.jobs import Executor
from shared.backoff import Backoff, retry
from shared.bus import Bus, BusError
from shared.db import DATABASE_ERRORS
from shared.waits import wait_any

log = logging.getLogger(__name__)

# Any constant works; advisory locks are per database.
RELAY_LOCK_KEY = 0x5D0CE0B0
CLEANUP_CHUNK = 5000


@dataclass(frozen=True, slots=True)
class RelayConfig:
    batch_size: int = 100
    poll_interval_s: float = 0.5
    retry_max_s: float = 5.0
    retention_s: float = 24 * 3600
    cleanup_interval_s: float = 300.0
    # The lag gauge is refreshed at most this often: a query per round would
    # double the relay's database round trips at high rates.
    lag_interval_s: float = 1.0


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    lock_held: bool  # False: another relay is active, nothing was done
    published: int = 0
    fetched: int = 0
    error: BusError | None = None


class OutboxRelay:
    def __init__(self, pool: asyncpg.Pool, bus: Bus, config: RelayConfig) -> None:
        self.pool = pool
        self.bus = bus
        self.config = config
        self.wake = asyncio.Event()  # set by NOTIFY on the outbox channel

    async def publish_batch(self) -> BatchOutcome:
        """Publish the oldest unpublished rows if no other relay is active."""
        async with self.pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval(queries.TRY_RELAY_LOCK, RELAY_LOCK_KEY):
                return BatchOutcome(lock_held=False)
            rows = await conn.fetch(
                queries.UNPUBLISHED_BATCH,
                self.config.batch_size,
            )
            published, error = await self._publish_in_order(rows)
            if published:
                await conn.execute(
                    queries.MARK_PUBLISHED,
                    published,
                )
        metrics.OUTBOX_PUBLISHED.inc(len(published))
        return BatchOutcome(True, len(published), len(rows), error)

    async def _publish_in_order(
        self, rows: list[asyncpg.Record]
    ) -> tuple[list[int], BusError | None]:
        """Publish the rows pipelined; the ids of the confirmed prefix, and the first error.

        All publishes are sent first, then their confirms awaited together: one
        round trip per batch instead of one per row. Wire order = id order:
        the tasks start in list order, and each runs without suspending until it
        queues on the channel's lock (aio-pika's `connected.wait()` returns at
        once on a live connection; aiormq's `basic_publish` takes
        `channel.lock`, a FIFO asyncio.Lock, and writes its frames to the
        connection's single writer queue before releasing it). So the frames
        reach the socket, and RabbitMQ's one channel, in id order.
        (test_pipelined_batch_keeps_id_order_on_the_wire checks it.)

        If a publish fails, the later tasks are cancelled (those not yet written
        never reach the broker) and only the prefix before the failure counts as
        published, even if some later rows were confirmed: they go out again
        after the failed row on the next round. A consumer may thus see a later
        event once before the failed one, but always again after it, so the
        last copy of every event arrives in id order (a failed attempt is never
        the last word after its execution's success), and published rows stay
        a prefix of the outbox (what the next batch and the lag metric rely on).
        """
        tasks = [
            asyncio.create_task(
                self.bus.publish_raw(
                    row["routing_key"],
                    row["payload"].encode(),
                    message_id=f"outbox-{row['id']}",
                )
            )
            for row in rows
        ]
        published: list[int] = []
        error: BusError | None = None
        try:
            for row, task in zip(rows, tasks, strict=True):
                try:
                    await task
                except BusError as exc:
                    error = exc
                    break
                published.append(row["id"])
                metrics.OUTBOX_PUBLISH_DELAY.observe(
                    (datetime.now(UTC) - row["created_at"]).total_seconds()
                )
        finally:
            # After a failure (or if this round is cancelled): stop the rest.
            rest = tasks[len(published) :]
            for task in rest:
                task.cancel()
            await asyncio.gather(*rest, return_exceptions=True)
        return published, error

    async def delete_published(self) -> int:
        """Remove published rows older than the retention, in chunks."""
        deleted = 0
        while True:
            result = await self.pool.execute(
                queries.DELETE_PUBLISHED,
                self.config.retention_s,
                CLEANUP_CHUNK,
            )
            count = int(result.split()[-1])
            deleted += count
            if count < CLEANUP_CHUNK:
                return deleted

    async def update_lag(self) -> None:
        await update_lag_metric(self.pool)

    async def connect_bus(self, stop: asyncio.Event) -> bool:
        """Connect to the broker, retrying with backoff; False if stopped first."""
        connected = await retry(
            self._connect,
            retry_on=(Exception,),
            backoff=Backoff(0.2, self.config.retry_max_s),
            log=log,
            message="outbox relay: broker unreachable, retrying",
            stop=stop,
            describe=describe_error,
        )
        return bool(connected)

    async def _connect(self) -> bool:
        await self.bus.connect()
        log.info("outbox relay connected to the broker")
        return True

    async def run(self, stop: asyncio.Event) -> None:
        if not await self.connect_bus(stop):
            return
        loop = asyncio.get_running_loop()
        next_cleanup = loop.time()
        next_lag = loop.time()
        backoff = Backoff(0.1, self.config.retry_max_s)
        while not stop.is_set():
            self.wake.clear()  # before reading: a commit after this re-sets it
            try:
                outcome = await self.publish_batch()
                metrics.OUTBOX_RELAY_ACTIVE.set(1 if outcome.lock_held else 0)
                if loop.time() >= next_lag:
                    await self.update_lag()
                    next_lag = loop.time() + self.config.lag_interval_s
                if outcome.lock_held and loop.time() >= next_cleanup:
                    deleted = await self.delete_published()
                    next_cleanup = loop.time() + self.config.cleanup_interval_s
                    if deleted:
                        log.info("outbox: deleted published rows", extra={"deleted": deleted})
            except Exception as exc:
                # Database down, or a broker-client error the bus did not wrap: retry later.
                log.warning(
                    "outbox relay: round failed, retrying",
                    extra={"error": describe_error(exc), "retry_in_s": backoff.delay_s},
                    exc_info=not isinstance(exc, DATABASE_ERRORS),
                )
                await backoff.wait(stop)
                continue
            if outcome.error is not None:
                metrics.OUTBOX_PUBLISH_ERRORS.inc()
                log.warning(
                    "outbox relay: publish failed, retrying",
                    extra={
                        "error": str(outcome.error),
                        "published": outcome.published,
                        "retry_in_s": backoff.delay_s,
                    },
                )
                await backoff.wait(stop)
                continue
            backoff.reset()
            if outcome.lock_held and outcome.fetched == self.config.batch_size:
                continue  # a full batch: there may be more right away
            await wait_any(stop, self.wake, max_wait_s=self.config.poll_interval_s)


async def update_lag_metric(conn: Executor) -> float:
    """Age of the oldest unpublished event (uses the partial index: O(1))."""
    lag = await conn.fetchval(queries.OUTBOX_LAG)
    value = max(0.0, float(lag)) if lag is not None else 0.0
    metrics.OUTBOX_LAG_SECONDS.set(value)
    return value
