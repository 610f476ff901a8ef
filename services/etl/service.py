"""The `worker` process: Stage 2 workers, the outbox relay and the NOTIFY listener together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

import asyncpg
import uvicorn

from services.etl.outbox.relay import OutboxRelay, RelayConfig
from services.etl.stage1.http_ingest import ingest_app
from services.etl.stage1.n8n_source import N8nSource, N8nSourceConfig
from services.etl.stage2.images import reuse_image_memory
from services.etl.stage2.n8n_extraction import node_names
from services.etl.stage2.worker import Stage2Worker, WorkerConfig
from shared.bus import Bus
from shared.db import DATABASE_ERRORS, STAGE2_CHANNEL, create_pool, migrate_when_reachable
from shared.notify import NotifyListener
from shared.outbox import OUTBOX_CHANNEL
from shared.settings import EtlSettings
from shared.waits import wait_any

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
    with contextlib.suppress(TimeoutError, *DATABASE_ERRORS):
        async with asyncio.timeout(FINAL_FLUSH_S):
            while True:
                outcome = await relay.publish_batch()
                if outcome.error or not outcome.lock_held or outcome.fetched == 0:
                    return


class QuietServer(uvicorn.Server):
    """uvicorn inside the worker: the worker's own signal handling stops it, not uvicorn's."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def n8n_source_config(settings: EtlSettings) -> N8nSourceConfig | None:
    if settings.n8n_database_url is None:
        return None
    return N8nSourceConfig(
        database_url=settings.n8n_database_url,
        workflow_id=settings.n8n_workflow_id,
        channel=settings.n8n_notify_channel,
        names=node_names(settings),
        catchup_interval_s=settings.n8n_catchup_interval_s,
        catchup_batch=settings.n8n_catchup_batch,
        catchup_settle_s=settings.n8n_catchup_settle_s,
        retry_max_s=settings.n8n_retry_max_s,
    )


async def serve_ingest(
    settings: EtlSettings, pool: asyncpg.Pool, source: N8nSource | None, stop: asyncio.Event
) -> None:
    """The HTTP ingest endpoint and /health, until `stop`."""
    assert settings.ingest_token is not None  # EtlSettings refuses a port without one

    def n8n_status() -> dict[str, object]:
        assert source is not None
        return {
            "up": source.up,
            "error": source.last_error,
            "catchup_rounds": source.catchup_rounds,
        }

    app = ingest_app(
        pool, settings.ingest_token, settings.ingest_max_bytes, n8n_status if source else None
    )
    config = uvicorn.Config(
        app,
        host=settings.ingest_host,
        port=settings.ingest_port,
        log_config=None,
        access_log=False,
        lifespan="off",
    )
    server = QuietServer(config)
    task = asyncio.create_task(server.serve())
    await wait_any(stop, max_wait_s=None)
    server.should_exit = True
    await task


async def run_etl_service(settings: EtlSettings, stop: asyncio.Event) -> None:
    """Run until `stop` is set; then finish (or release) in-flight jobs and flush the outbox."""
    if not await migrate_when_reachable(settings.database_url, stop=stop):
        return
    pool = await create_pool(settings.database_url, settings.db_pool_min, settings.db_pool_max)
    reuse_image_memory()
    bus = Bus.for_settings(settings)
    worker = Stage2Worker(pool, WorkerConfig.from_settings(settings))
    relay = OutboxRelay(pool, bus, relay_config(settings))
    listener = NotifyListener(
        settings.database_url, {STAGE2_CHANNEL: worker.wake, OUTBOX_CHANNEL: relay.wake}
    )
    # The relay and listener outlive the workers, so events of drained jobs go out too.
    relay_stop = asyncio.Event()
    source_config = n8n_source_config(settings)
    source = None if source_config is None else N8nSource(pool, source_config)

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
            if source is not None:
                tasks.create_task(source.run(stop))
            if settings.ingest_port:
                tasks.create_task(serve_ingest(settings, pool, source, stop))
        if bus.is_connected:
            await final_flush(relay)
    finally:
        await bus.close()
        await pool.close()
    log.info("etl worker stopped")
