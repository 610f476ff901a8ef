"""Waiting on several asyncio events at once (wake-ups, stop, free slots)."""

from __future__ import annotations

import asyncio


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
