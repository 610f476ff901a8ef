"""`python -m services.poller`: wire settings, PostgreSQL, RabbitMQ and the poll loop."""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from services.poller.loop import BACKLOG_CHANNEL, run_poller
from shared.bus import Bus
from shared.cli import parse_no_arguments
from shared.db import create_pool, migrate_when_reachable
from shared.lifecycle import serve_metrics, stop_on_signals
from shared.logs import configure_logging
from shared.notify import NotifyListener
from shared.settings import PollerSettings
from shared.waits import StampedEvent

log = logging.getLogger("services.poller")


async def open_database(settings: PollerSettings, stop: asyncio.Event) -> asyncpg.Pool | None:
    """Migrate and open the pool, waiting while the database is unreachable (None if stopped)."""
    if not await migrate_when_reachable(settings.database_url, stop=stop):
        return None
    return await create_pool(settings.database_url, settings.db_pool_min, settings.db_pool_max)


async def main(settings: PollerSettings) -> None:
    stop = asyncio.Event()
    stop_on_signals(stop)
    serve_metrics(settings.poller_metrics_port)
    pool = await open_database(settings, stop)
    if pool is None:
        return
    bus = Bus.for_settings(settings, publish_timeout_s=settings.poller_publish_timeout_s)
    try:
        await bus.connect(retry_for_s=settings.poller_connect_retry_s)
        log.info(
            "poller started",
            extra={
                "interval_s": settings.poller_interval_s,
                "lookback_s": settings.poller_lookback_s,
                "batch_size": settings.poller_batch_size,
            },
        )
        # Woken by the Stage 2 commit's NOTIFY; the interval stays as the fallback.
        wake = StampedEvent()
        listener = asyncio.create_task(
            NotifyListener(settings.database_url, {BACKLOG_CHANNEL: wake}).run(stop)
        )
        try:
            await run_poller(pool, bus, settings, stop, wake=wake)
        finally:
            stop.set()
            await listener
    finally:
        await bus.close()
        await pool.close()
    log.info("poller stopped")


def cli(argv: list[str] | None = None) -> None:
    parse_no_arguments("python -m services.poller", __doc__, argv)
    settings = PollerSettings()
    configure_logging(settings.log_level, "poller")
    asyncio.run(main(settings))


if __name__ == "__main__":
    cli()
