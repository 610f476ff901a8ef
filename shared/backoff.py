"""Exponential backoff: the one retry helper of every service loop.

A small module rather than tenacity: every loop here must stop waiting the
moment its service is asked to stop (an asyncio.Event), log each retry with
the delay, and some must keep a backoff across loop iterations (reset on
success) rather than wrap one call; that is a dozen lines on our side, and
tenacity would still need a custom sleep and state around it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class Backoff:
    """Delays initial_s, 2·initial_s, … capped at max_s; `reset()` after a success."""

    def __init__(self, initial_s: float = 0.2, max_s: float = 5.0, factor: float = 2.0) -> None:
        self.initial_s = initial_s
        self.max_s = max_s
        self.factor = factor
        self.delay_s = initial_s

    def reset(self) -> None:
        self.delay_s = self.initial_s

    def advance(self) -> float:
        """The delay to wait now; the next one grows."""
        delay = self.delay_s
        self.delay_s = min(self.delay_s * self.factor, self.max_s)
        return delay

    async def wait(self, stop: asyncio.Event | None = None) -> None:
        """Sleep the current delay (returns early once `stop` is set), then grow it."""
        await sleep_unless_stopped(stop, self.advance())


async def sleep_unless_stopped(stop: asyncio.Event | None, seconds: float) -> None:
    """Sleep `seconds`, or less if `stop` is set meanwhile."""
    if stop is None:
        await asyncio.sleep(seconds)
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def retry(
    attempt: Callable[[], Awaitable[T]],
    *,
    retry_on: tuple[type[BaseException], ...],
    backoff: Backoff,
    log: logging.Logger,
    message: str,
    stop: asyncio.Event | None = None,
    give_up_after_s: float | None = None,
    describe: Callable[[BaseException], str] = repr,
) -> T | None:
    """Call `attempt` until it returns; back off after each `retry_on` error.

    Returns None when `stop` is set first. Re-raises the error when the next
    wait would end after `give_up_after_s` (0 = one attempt only).
    """
    loop = asyncio.get_running_loop()
    deadline = None if give_up_after_s is None else loop.time() + give_up_after_s
    while stop is None or not stop.is_set():
        try:
            return await attempt()
        except retry_on as exc:
            if deadline is not None and loop.time() + backoff.delay_s > deadline:
                raise
            log.warning(message, extra={"error": describe(exc), "retry_in_s": backoff.delay_s})
            await backoff.wait(stop)
    return None
