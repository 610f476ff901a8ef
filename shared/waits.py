"""Waiting on several asyncio events at once (wake-ups, stop, free slots)."""

from __future__ import annotations

import asyncio
import time


async def wait_any(*events: asyncio.Event, max_wait_s: float | None) -> None:
    """Return when any event is set or after `max_wait_s` seconds."""
    if any(event.is_set() for event in events):
        return
    waiters = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=max_wait_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)


class StampedEvent(asyncio.Event):
    """An event that remembers when it was first set since it was last cleared (time.time()).

    A loop woken by it can tell how long the wake-up waited for it (the poller
    logs NOTIFY → cycle start).
    """

    def __init__(self) -> None:
        super().__init__()
        self.first_set_at: float | None = None

    def set(self) -> None:
        if self.first_set_at is None:
            self.first_set_at = time.time()
        super().set()

    def clear(self) -> None:
        self.first_set_at = None
        super().clear()
