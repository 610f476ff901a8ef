"""The one RabbitMQ helper every service uses (aio-pika).

- a robust connection (aio-pika re-declares exchanges, queues, bindings and
  consumers after a reconnect),
- one durable topic exchange for all events,
- publish with publisher confirms and persistent delivery,
- consume with manual acks; a message that fails its contract is rejected to
  the dead-letter exchange/queue and logged, and the consumer keeps running,
- one RabbitMQ *stream* (``<exchange>.stream``, retention by age and bytes) bound
  to every event: the replayable log the gateways read (docs/GATEWAY.md). Every
  publisher declares it, so a confirmed publish is in the log even while no
  gateway runs.
"""

from __future__ import annotations

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

from shared.backoff import Backoff, retry
from shared.contracts import (
    ROUTING_KEY_BY_MODEL,
    SCHEMA_VERSION,
    BusMessage,
    ContractError,
    decode,
    encode,
)
from shared.settings import CommonSettings

log = logging.getLogger(__name__)

SCHEMA_HEADER = "schema_version"
STREAM_OFFSET_HEADER = "x-stream-offset"
# Stream retention defaults (settings EVENT_STREAM_MAX_AGE / EVENT_STREAM_MAX_BYTES).
DEFAULT_STREAM_MAX_AGE = "24h"
DEFAULT_STREAM_MAX_BYTES = 1_000_000_000
# Retention drops whole segments: keep ~10 per stream so it is not too coarse.
MAX_SEGMENT_BYTES = 100_000_000

# The dead-letter queue is bounded: past either limit RabbitMQ drops its OLDEST
# messages (x-overflow drop-head), so a flood of poison messages can fill neither
# the broker's memory nor its disk, and the newest ones stay for inspection.
DEAD_LETTER_MAX_LENGTH = 10_000
DEAD_LETTER_MAX_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Delivery:
    """A validated message handed to a consumer's handler."""

    routing_key: str
    message: BusMessage
    body: bytes  # the exact validated JSON body, forwarded untouched to SSE
    message_id: str | None
    headers: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StreamEntry:
    """One message read from the event stream, at its position (offset).

    ``message`` is None when the body fails its contract: streams cannot
    dead-letter, so the reader decides (``error`` says why).
    """

    offset: int
    routing_key: str
    body: bytes
    message_id: str | None
    message: BusMessage | None
    error: str | None = None


Handler = Callable[[Delivery], Awaitable[None]]
StreamHandler = Callable[[StreamEntry], Awaitable[None] | None]


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
        stream_max_age: str = DEFAULT_STREAM_MAX_AGE,
        stream_max_bytes: int = DEFAULT_STREAM_MAX_BYTES,
        dead_letter_max_length: int = DEAD_LETTER_MAX_LENGTH,
        dead_letter_max_bytes: int = DEAD_LETTER_MAX_BYTES,
    ) -> None:
        self.amqp_url = amqp_url
        self.exchange_name = exchange_name
        self.dead_letter_exchange_name = f"{exchange_name}.dlx"
        self.dead_letter_queue_name = f"{exchange_name}.dead-letter"
        self.stream_name = stream_name(exchange_name)
        self.stream_arguments: dict[str, Any] = {
            "x-queue-type": "stream",
            "x-max-age": stream_max_age,
            "x-max-length-bytes": stream_max_bytes,
            "x-stream-max-segment-size-bytes": min(
                MAX_SEGMENT_BYTES, max(1_000_000, stream_max_bytes // 10)
            ),
        }
        self.prefetch = prefetch
        self.publish_timeout_s = publish_timeout_s
        self.dead_letter_arguments: dict[str, Any] = {
            "x-max-length": dead_letter_max_length,
            "x-max-length-bytes": dead_letter_max_bytes,
            "x-overflow": "drop-head",
        }
        self._connection: AbstractRobustConnection | None = None
        self._publish_channel: AbstractRobustChannel | None = None
        self._exchange: AbstractExchange | None = None
        # Channels of `consume`: closed before `delete_topology` deletes their queues.
        self._consumer_channels: list[aio_pika.abc.AbstractChannel] = []

    @classmethod
    def for_settings(cls, settings: CommonSettings, *, publish_timeout_s: float = 10.0) -> Bus:
        """A bus on the settings' broker, exchange and stream retention."""
        return cls(
            settings.amqp_url,
            settings.exchange_name,
            publish_timeout_s=publish_timeout_s,
            stream_max_age=settings.event_stream_max_age,
            stream_max_bytes=settings.event_stream_max_bytes,
            **settings.dead_letter_bounds,
        )

    # -- lifecycle ---------------------------------------------------------

    async def connect(self, *, retry_for_s: float = 0.0) -> None:
        """Connect and declare the topology; retry with backoff for up to retry_for_s."""

        async def connect() -> AbstractRobustConnection:
            connection: AbstractRobustConnection = await aio_pika.connect_robust(
                self.amqp_url,
                client_properties={"connection_name": self.exchange_name},
                **self._reconnect_kwargs(),
            )
            return connection

        self._connection = await retry(
            connect,
            retry_on=(OSError, aio_pika.exceptions.AMQPError),
            backoff=Backoff(0.2, 5.0),
            log=log,
            message="broker unreachable, retrying",
            give_up_after_s=retry_for_s,
            describe=str,
        )
        assert self._connection is not None  # no stop event: it returns or raises
        await self._declare_dead_letter_queue()
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
        # Passive: _declare_dead_letter_queue created it, with its bounds, at connect.
        dlq = await channel.declare_queue(self.dead_letter_queue_name, passive=True)
        await dlq.bind(dlx)
        stream = await channel.declare_queue(
            self.stream_name, durable=True, arguments=self.stream_arguments
        )
        for key in ROUTING_KEY_BY_MODEL.values():
            await stream.bind(exchange, key)
        return exchange

    async def _declare_dead_letter_queue(self) -> None:
        """Declare the bounded dead-letter queue, on a channel of its own.

        A queue declared earlier with other arguments (before the bounds existed)
        cannot be changed by a declare (PRECONDITION_FAILED closes the channel):
        it is used as it is, with a warning saying how to bound it.
        """
        assert self._connection is not None
        channel = await self._connection.channel()
        try:
            await channel.declare_queue(
                self.dead_letter_queue_name, durable=True, arguments=self.dead_letter_arguments
            )
        except aio_pika.exceptions.ChannelPreconditionFailed as exc:
            log.warning(
                "dead-letter queue exists with other arguments; it stays unbounded until "
                "it is deleted (or bounded by a RabbitMQ policy)",
                extra={"queue": self.dead_letter_queue_name, "error": str(exc)},
            )
        finally:
            if not channel.is_closed:
                await channel.close()

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
        self._consumer_channels.append(channel)
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
            # Acks on success, rejects (no requeue: to the dead-letter queue) on any error.
            async with incoming.process(requeue=False):
                message = decode(routing_key, incoming.body, headers.get(SCHEMA_HEADER))
                await handler(
                    Delivery(routing_key, message, incoming.body, incoming.message_id, headers)
                )
        except ContractError as exc:
            log.error(
                "rejected invalid message to dead-letter queue",
                extra={
                    "routing_key": routing_key,
                    "error": str(exc)[:2000],
                    "message_id": incoming.message_id,
                },
            )
        except Exception:
            log.exception(
                "handler failed; message sent to dead-letter queue",
                extra={"routing_key": routing_key, "message_id": incoming.message_id},
            )

    # -- the event stream --------------------------------------------------

    async def read_stream(
        self, handler: StreamHandler, *, offset: int | str, prefetch: int | None = None
    ) -> Callable[[], Awaitable[None]]:
        """Read the event stream from `offset` (an int, "first", "next", "last").

        Each entry goes to `handler` in stream order. Returns a coroutine
        function that stops the reader. Stream messages are only ever acked
        (a reject closes the connection): invalid ones reach the handler with
        ``message=None`` and the reason in ``error``.
        """
        if self._connection is None:
            raise BusError("bus is not connected")
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=prefetch or self.prefetch)
        queue = await channel.declare_queue(
            self.stream_name, durable=True, arguments=self.stream_arguments
        )

        async def on_message(incoming: AbstractIncomingMessage) -> None:
            try:
                result = handler(_stream_entry(incoming))
                if result is not None:
                    await result
            finally:
                await incoming.ack()

        tag = await queue.consume(on_message, arguments={STREAM_OFFSET_HEADER: offset})

        async def stop() -> None:
            if channel.is_closed:
                return
            try:
                await queue.cancel(tag)
                await channel.close()
            except (OSError, RuntimeError, aio_pika.exceptions.AMQPError) as exc:
                log.debug("stream reader closed with an error", extra={"error": repr(exc)})

        return stop

    async def dead_letter(self, entry: StreamEntry, reason: str, *, reader: str) -> None:
        """Copy an invalid stream message to the dead-letter exchange (streams cannot)."""
        if self._publish_channel is None:
            raise BusError("bus is not connected")
        dlx = await self._publish_channel.get_exchange(self.dead_letter_exchange_name, ensure=False)
        await dlx.publish(
            aio_pika.Message(
                entry.body,
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=entry.message_id,
                headers={
                    "x-death-reason": reason[:2000],
                    STREAM_OFFSET_HEADER: entry.offset,
                    "x-stream": self.stream_name,
                    "x-reader": reader,
                },
                type=entry.routing_key,
            ),
            entry.routing_key,
            timeout=self.publish_timeout_s,
        )

    async def delete_topology(self, *queue_names: str) -> None:
        """Remove the exchanges, the dead-letter queue and the given queues (tests)."""
        if self._connection is None:
            return
        # A robust channel whose consumer the broker cancels (its queue deleted)
        # declares the queue again: close the consuming channels first.
        for consuming in self._consumer_channels:
            await consuming.close()
        self._consumer_channels.clear()
        channel = await self._connection.channel()
        for name in (*queue_names, self.dead_letter_queue_name, self.stream_name):
            await channel.queue_delete(name)
        await channel.exchange_delete(self.exchange_name)
        await channel.exchange_delete(self.dead_letter_exchange_name)
        await channel.close()


def stream_name(exchange_name: str) -> str:
    return f"{exchange_name}.stream"


def _stream_entry(incoming: AbstractIncomingMessage) -> StreamEntry:
    headers = dict(incoming.headers or {})
    offset = headers.get(STREAM_OFFSET_HEADER)
    if not isinstance(offset, int):
        raise BusError(f"stream message without an integer {STREAM_OFFSET_HEADER}: {offset!r}")
    routing_key = incoming.routing_key or ""
    try:
        message: BusMessage | None = decode(routing_key, incoming.body, headers.get(SCHEMA_HEADER))
        error = None
    except ContractError as exc:
        message, error = None, str(exc)
    return StreamEntry(offset, routing_key, incoming.body, incoming.message_id, message, error)
