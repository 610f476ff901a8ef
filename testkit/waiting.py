"""Waiting for a condition in tests and benchmarks.

The guard only stops a hang; it is never a performance bound (speed is
measured by the benchmarks, not asserted by tests).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

WAIT_S = 30.0  # deadlock guard for anything a test waits for
POLL_S = 0.02


async def wait_until(
    condition: Callable[[], bool | Awaitable[bool]],
    what: str = "",
    *,
    guard_s: float = WAIT_S,
    alive: Iterable[asyncio.Task[Any]] = (),
    poll_s: float = POLL_S,
) -> None:
    """Poll `condition` (plain or async) until true.

    Fails after `guard_s`, or at once when one of the `alive` tasks has ended
    (re-raising its error): waiting on a dead service is pointless.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + guard_s
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        for task in alive:
            if task.done():
                task.result()  # re-raise its error
                raise AssertionError(f"service stopped while waiting for {what or condition}")
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        await asyncio.sleep(poll_s)


def wait_until_sync(
    condition: Callable[[], bool], what: str = "", *, guard_s: float = WAIT_S, poll_s: float = 0.05
) -> None:
    """`wait_until` for code without an event loop."""
    deadline = time.monotonic() + guard_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(poll_s)
