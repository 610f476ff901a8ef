from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import aio_pika

from shared.bus import Bus, Delivery
from shared.contracts import RoutingKey, Stage2Failed, encode


async def _collect(bus: Bus, queue: str) -> asyncio.Queue[Delivery]:
    received: asyncio.Queue[Delivery] = asyncio.Queue()

    async def handler(delivery: Delivery) -> None:
        await received.put(delivery)

    await bus.consume(queue, [key.value for key in RoutingKey], handler)
    return received


async def test_published_message_arrives_with_the_exact_payload(bus: Bus) -> None:
    received = await _collect(bus, f"{bus.exchange_name}.q")
    message = Stage2Failed(
        execution_id=9, error="bad base64", retry_count=1, timestamp=datetime.now(UTC)
    )
    await bus.publish(message, message_id="m-9")
    delivery = await asyncio.wait_for(received.get(), timeout=10)
    assert delivery.message == message
    assert delivery.body == encode(message)
    assert delivery.routing_key == "stage2.failed"
    assert delivery.message_id == "m-9"
    await bus.delete_topology(f"{bus.exchange_name}.q")


async def _dead_letters(bus: Bus, expected: int) -> list[aio_pika.abc.AbstractIncomingMessage]:
    connection = await aio_pika.connect(bus.amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(bus.dead_letter_queue_name, passive=True)
        found: list[aio_pika.abc.AbstractIncomingMessage] = []
        for _ in range(100):
            message = await queue.get(fail=False)
            if message is None:
                if len(found) >= expected:
                    break
                await asyncio.sleep(0.1)
                continue
            await message.ack()
            found.append(message)
        return found
    finally:
        await connection.close()


async def test_invalid_messages_are_dead_lettered_and_the_consumer_keeps_running(bus: Bus) -> None:
    queue = f"{bus.exchange_name}.q"
    received = await _collect(bus, queue)
    await bus.publish_raw("stage2.failed", b"{not json")
    await bus.publish_raw("stage2.failed", json.dumps({"execution_id": 1}).encode())
    await bus.publish_raw(
        "stage2.failed",
        encode(Stage2Failed(execution_id=3, error="x", retry_count=0, timestamp=datetime.now(UTC))),
        schema_version=42,
    )
    good = Stage2Failed(
        execution_id=4, error="still flowing", retry_count=0, timestamp=datetime.now(UTC)
    )
    await bus.publish(good)

    delivery = await asyncio.wait_for(received.get(), timeout=10)
    assert delivery.message == good
    assert received.empty()
    dead = await _dead_letters(bus, expected=3)
    assert [m.body for m in dead][:2] == [b"{not json", b'{"execution_id": 1}']
    assert len(dead) == 3
    await bus.delete_topology(queue)
