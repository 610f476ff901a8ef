"""Taking the messages off a dead-letter queue (tests of what was dead-lettered, and how often)."""

from __future__ import annotations

import asyncio
from typing import Any

import aio_pika

from testkit.waiting import WAIT_S


async def take_dead_letters(
    amqp_url: str, queue_name: str, expected: int, *, guard_s: float = WAIT_S
) -> list[Any]:
    """Every message on the queue: waits for `expected` of them, then drains what else is there.

    Call it once what is being tested has finished copying (a log line, a row):
    the count returned is then exact, with no settling delay.
    """
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.get_queue(queue_name)
        found: list[Any] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + guard_s
        while True:
            message = await queue.get(no_ack=True, fail=False)
            if message is not None:
                found.append(message)
            elif len(found) >= expected or loop.time() > deadline:
                return found
            else:
                await asyncio.sleep(0.05)
    finally:
        await connection.close()
