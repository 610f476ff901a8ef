"""The one RabbitMQ helper every service uses (aio-pika).

- a robust connection (aio-pika re-declares exchanges, queues, bindings and
  consumers after a reconnect),
- one durable topic exchange for all events,
- publish with publisher confirms and persistent delivery,
- consume with manual acks; a message that fails its contract is rejected to
  the dead-letter exchange/queue and logged, and the consumer keeps running.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustChannel,
    AbstractRobustConnection,
)

from shared.contracts import (
    ROUTING_KEY_BY_MODEL,
    SCHEMA_VERSION,
    BusMessage,
    ContractError,
    decode,
    encode,
)

log = logging.getLogger(__name__)

SCHEMA_HEADER = "schema_version"


@dataclass(frozen=True, slots=True)
class Delivery:
    """A validated message handed to a consumer's handler."""

    routing_key: str
    message: BusMessage
    body: bytes  # the exact validated JSON body, forwarded untouched to SSE
    message_id: str | None
    headers: dict[str, Any] = field(default_factory=dict)


Handler = Callable[[Delivery], Awaitable[None]]


class BusError(RuntimeError):
    """Publishing failed (broker unreachable, nack, timeout); the caller retries."""


class Bus:
    def __init__(
        self,
        amqp_url: str,
        exchange_name: str,
        *,
        prefetch: int = 256,
        publish_timeout_s: float = 10.0,
    ) -> None:
        self.amqp_url = amqp_url
        self.exchange_name = exchange_name
        self.dead_letter_exchange_name = f"{exchange_name}.dlx"
        self.dead_letter_queue_name = f"{exchange_name}.dead-letter"
        self.prefetch = prefetch
        self.publish_timeout_s = publish_timeout_s
        self._connection: AbstractRobustConnection | None = None
        self._publish_channel: AbstractRobustChannel | None = None
        self._exchange: AbstractExchange | None = None

    # -- lifecycle ---------------------------------------------------------

    async def connect(self, *, retry_for_s: float = 0.0) -> None:
        """Connect and declare the topology; retry with backoff for up to retry_for_s."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + retry_for_s
        delay = 0.2
        while True:
            try:
                self._connection = await aio_pika.connect_robust(
                    self.amqp_url,
                    client_properties={"connection_name": self.exchange_name},
                    **self._reconnect_kwargs(),
                )
                break
            except (OSError, aio_pika.exceptions.AMQPError) as exc:
                if loop.time() + delay > deadline:
                    raise
                log.warning("broker unreachable, retrying", extra={"error": str(exc)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        channel = await self._connection.channel(publisher_confirms=True)
        assert isinstance(channel, AbstractRobustChannel)
        self._publish_channel = channel
        self._exchange = await self._declare_topology(channel)

    def _reconnect_kwargs(self) -> dict[str, Any]:
        # aio-pika waits 5 s between reconnect attempts by default; events wait on
        # it, so retry every second unless the URL sets ?reconnect_interval= itself.
        if "reconnect_interval" in self.amqp_url:
            return {}
        return {"reconnect_interval": 1.0}

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    async def __aenter__(self) -> Bus:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def add_reconnect_callback(self, callback: Callable[[], Awaitable[None] | None]) -> None:
        """Call `callback` after each automatic reconnect (events may have been missed)."""
        if self._connection is None:
            raise BusError("bus is not connected")

        def on_reconnect(*_: object) -> Awaitable[None] | None:
            return callback()

        self._connection.reconnect_callbacks.add(on_reconnect)

    @property
    def is_connected(self) -> bool:
        # A robust connection is not "closed" while it reconnects; `connected` tells.
        return (
            self._connection is not None
            and not self._connection.is_closed
            and self._connection.connected.is_set()
        )

    async def _declare_topology(self, channel: aio_pika.abc.AbstractChannel) -> AbstractExchange:
        exchange = await channel.declare_exchange(
            self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
        )
        dlx = await channel.declare_exchange(
            self.dead_letter_exchange_name, aio_pika.ExchangeType.FANOUT, durable=True
        )
        dlq = await channel.declare_queue(self.dead_letter_queue_name, durable=True)
        await dlq.bind(dlx)
        return exchange

    # -- publishing --------------------------------------------------------

    async def publish(self, message: BusMessage, *, message_id: str | None = None) -> None:
        """Publish a contract message; returns once the broker confirmed it."""
        await self.publish_raw(
            ROUTING_KEY_BY_MODEL[type(message)], encode(message), message_id=message_id
        )

    async def publish_raw(
        self,
        routing_key: str,
        body: bytes,
        *,
        message_id: str | None = None,
        schema_version: object = SCHEMA_VERSION,
    ) -> None:
        """Publish bytes as-is (the outbox relays stored payloads; tests send bad ones)."""
        if self._exchange is None:
            raise BusError("bus is not connected")
        amqp_message = aio_pika.Message(
            body,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message_id or uuid.uuid4().hex,
            headers={SCHEMA_HEADER: schema_version},  # type: ignore[dict-item]
            type=routing_key,
        )
        try:
            # mandatory=False: no bound queue (no gateway running) is not an error.
            await self._exchange.publish(
                amqp_message, routing_key, mandatory=False, timeout=self.publish_timeout_s
            )
        except (OSError, TimeoutError, RuntimeError, aio_pika.exceptions.AMQPError) as exc:
            raise BusError(f"publish {routing_key} failed: {exc!r}") from exc

    # -- consuming ---------------------------------------------------------

    async def consume(
        self,
        queue_name: str,
        routing_keys: Iterable[str],
        handler: Handler,
        *,
        durable: bool = True,
        expires_ms: int | None = None,
        exclusive: bool = False,
    ) -> AbstractQueue:
        """Bind a queue to routing_keys and hand each valid message to handler.

        Invalid messages (unknown key, wrong schema version, bad shape) and
        messages whose handler raised are rejected without requeue, so they land
        in the dead-letter queue with the error logged; the consumer carries on.
        """
        if self._connection is None:
            raise BusError("bus is not connected")
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=self.prefetch)
        exchange = await self._declare_topology(channel)
        arguments: dict[str, Any] = {"x-dead-letter-exchange": self.dead_letter_exchange_name}
        if expires_ms is not None:
            arguments["x-expires"] = expires_ms
        queue = await channel.declare_queue(
            queue_name, durable=durable, exclusive=exclusive, arguments=arguments
        )
        for key in routing_keys:
            await queue.bind(exchange, key)

        async def on_message(incoming: AbstractIncomingMessage) -> None:
            await self._dispatch(incoming, handler)

        await queue.consume(on_message)
        return queue

    async def _dispatch(self, incoming: AbstractIncomingMessage, handler: Handler) -> None:
        routing_key = incoming.routing_key or ""
        headers = dict(incoming.headers or {})
        try:
            message = decode(routing_key, incoming.body, headers.get(SCHEMA_HEADER))
        except ContractError as exc:
            log.error(
                "rejected invalid message to dead-letter queue",
                extra={
                    "routing_key": routing_key,
                    "error": str(exc)[:2000],
                    "message_id": incoming.message_id,
                },
            )
            await incoming.reject(requeue=False)
            return
        delivery = Delivery(routing_key, message, incoming.body, incoming.message_id, headers)
        try:
            await handler(delivery)
        except Exception:
            log.exception(
                "handler failed; message sent to dead-letter queue",
                extra={"routing_key": routing_key, "message_id": incoming.message_id},
            )
            await incoming.reject(requeue=False)
            return
        await incoming.ack()

    async def delete_topology(self, *queue_names: str) -> None:
        """Remove the exchanges, the dead-letter queue and the given queues (tests)."""
        if self._connection is None:
            return
        channel = await self._connection.channel()
        for name in (*queue_names, self.dead_letter_queue_name):
            await channel.queue_delete(name)
        await channel.exchange_delete(self.exchange_name)
        await channel.exchange_delete(self.dead_letter_exchange_name)
        await channel.close()
