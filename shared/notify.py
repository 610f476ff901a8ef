"""PostgreSQL LISTEN on a dedicated connection: turns NOTIFYs into asyncio events.

Used by the ETL worker (Stage 2 jobs) and the poller (completions to publish).
Notifications only wake loops early; every loop also polls, so a lost
connection (or a missed notification) delays work but never loses it.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from shared.backoff import Backoff, sleep_unless_stopped
from shared.logs import describe_exception
from shared.waits import wait_any

log = logging.getLogger(__name__)


class NotifyListener:
    def __init__(self, dsn: str, events: dict[str, asyncio.Event]) -> None:
        self.dsn = dsn
        self.events = events  # channel -> event to set
        self.listening = asyncio.Event()

    def _on_notify(self, _conn: object, _pid: int, channel: str, _payload: object) -> None:
        event = self.events.get(channel)
        if event is not None:
            event.set()

    async def run(self, stop: asyncio.Event) -> None:
        backoff = Backoff(0.2, 5.0)
        while not stop.is_set():
            lost = asyncio.Event()

            def on_lost(_conn: object, lost: asyncio.Event = lost) -> None:
                lost.set()

            try:
                conn = await asyncpg.connect(self.dsn)
            except Exception as exc:
                log.warning(
                    "listener: database unreachable, retrying",
                    extra={"error": describe_exception(exc), "retry_in_s": backoff.delay_s},
                )
                await backoff.wait(stop)
                continue
            try:
                conn.add_termination_listener(on_lost)
                for channel in self.events:
                    await conn.add_listener(channel, self._on_notify)
                backoff.reset()
                self.listening.set()
                # Anything may have happened while we were not listening.
                for event in self.events.values():
                    event.set()
                await wait_any(stop, lost, max_wait_s=None)
                if lost.is_set():
                    log.warning("listener: connection lost, reconnecting")
            except Exception as exc:
                log.warning("listener: failed", extra={"error": describe_exception(exc)})
                await sleep_unless_stopped(stop, backoff.delay_s)
            finally:
                self.listening.clear()
                if not conn.is_closed():
                    await conn.close(timeout=5)
