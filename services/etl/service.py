"""The `worker` process: Stage 2 workers, the outbox relay and the NOTIFY listener together."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from services.etl.errors import DB_ERRORS
from services.etl.outbox.listener import NotifyListener
from services.etl.outbox.relay import OutboxRelay, RelayConfig
from services.etl.stage2.images import reuse_image_memory
from services.etl.stage2.worker import Stage2Worker, WorkerConfig
from shared.bus import Bus
from shared.db import STAGE2_CHANNEL, create_pool, migrate_when_reachable
from shared.outbox import OUTBOX_CHANNEL
from shared.settings import EtlSettings

log = logging.getLogger(__name__)

# On shutdown the relay gets this long to publish the events of the last jobs.
FINAL_FLUSH_S = 5.0


def relay_config(settings: EtlSettings) -> RelayConfig:
    return RelayConfig(
        batch_size=settings.outbox_batch_size,
        poll_interval_s=settings.outbox_poll_interval_s,
        retry_max_s=settings.outbox_retry_max_s,
        retention_s=settings.outbox_retention_s,
        cleanup_interval_s=settings.outbox_cleanup_interval_s,
    )


async def final_flush(relay: OutboxRelay) -> None:
    """Publish what the last jobs wrote, if the broker lets us (the rest waits in the outbox)."""
    with contextlib.suppress(TimeoutError, *DB_ERRORS):
        async with asyncio.timeout(FINAL_FLUSH_S):
            while True:
                outcome = await relay.publish_batch()
                if outcome.error or not outcome.lock_held or outcome.fetched == 0:
                    return


async def run_etl_service(settings: EtlSettings, stop: asyncio.Event) -> None:
    """Run until `stop` is set; then finish (or release) in-flight jobs and flush the outbox."""
    if not await migrate_when_reachable(settings.database_url, stop=stop):
        return
    pool = await create_pool(settings.database_url, settings.db_pool_min, settings.db_pool_max)
    reuse_image_memory()
    bus = Bus(settings.amqp_url, settings.exchange_name)
    worker = Stage2Worker(pool, WorkerConfig.from_settings(settings))
    relay = OutboxRelay(pool, bus, relay_config(settings))
    listener = NotifyListener(
        settings.database_url, {STAGE2_CHANNEL: worker.wake, OUTBOX_CHANNEL: relay.wake}
    )
    # The relay and listener outlive the workers, so events of drained jobs go out too.
    relay_stop = asyncio.Event()

    async def workers_then_relay() -> None:
        try:
            await worker.run(stop)
        finally:
            relay_stop.set()

    log.info(
        "etl worker started",
        extra={"worker_id": worker.worker_id, "concurrency": settings.etl_concurrency},
    )
    try:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(listener.run(relay_stop))
            tasks.create_task(workers_then_relay())
            tasks.create_task(relay.run(relay_stop))
        if bus.is_connected:
            await final_flush(relay)
    finally:
        await bus.close()
        await pool.close()
    log.info("etl worker stopped")
