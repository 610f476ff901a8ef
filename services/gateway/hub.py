"""The fan-out hub: one producer (the stream reader), many SSE clients, a replay buffer.

Every data event's id is its place in the RabbitMQ event stream:
``f"{offset}-{tag}"``. ``offset`` is the stream position; ``tag`` fingerprints
the message at that position (its message id and body), so it is the same on
every gateway replica, worker process and restart, and an id that names
another message — a recreated stream, another broker — is detected instead of
being resumed from the wrong place. The last ``replay_size`` events stay in a
ring buffer so a client reconnecting with ``Last-Event-ID`` gets exactly what
it missed; older positions are read back from the stream itself
(``services/gateway/resume.py``); only a position the stream no longer retains
(or garbage) gets a ``reset`` event telling the client to reload from REST.

Clients are indexed by filter (``/api/events?camera=…&alert_level=…``): an
event is projected once per distinct filter and framed once per projection,
so the cost per event grows with the number of filters in use and the number
of clients served, never with their product.

The replay buffer is bounded by count and by bytes (the oldest events go
first). Each client has its own queue, bounded by count and by bytes. ``publish``
never waits: a client whose queue is full is dropped at once (its stream ends, it can resume by
Last-Event-ID), so a slow browser neither slows the others nor grows memory.
Heartbeats go through the same queues (one hub task for all clients, not a
timer per connection).
Everything here runs on one event loop thread and nothing awaits, so
subscribing (snapshot + registration) is atomic with respect to publishing.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import uuid
import zlib
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Protocol

from services.gateway.event_filters import ALL, EventFilter, project
from services.gateway.sse import frame
from shared.contracts import SSE_HEARTBEAT, SSE_RESET

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Event:
    """One SSE event; ``data`` is the exact text sent after ``data:``."""

    event: str
    data: str
    id: str | None = None
    # Stream position of a data event (None for heartbeats and per-client events).
    offset: int | None = field(default=None, compare=False)
    # The event framed once, sent as is to every client.
    wire: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "wire", frame(self.data, event=self.event, id=self.id))


def fingerprint(message_id: str | None, body: bytes) -> str:
    """The tag of a stream message: 8 hex digits of CRC-32 over its id and body."""
    return f"{zlib.crc32(body, zlib.crc32((message_id or '').encode())):08x}"


def event_id(offset: int, tag: str) -> str:
    return f"{offset}-{tag}"


@dataclass(frozen=True, slots=True)
class Position:
    offset: int
    tag: str


class MalformedId(ValueError):
    pass


def parse_event_id(text: str) -> Position:
    offset_text, sep, tag = text.strip().partition("-")
    # 19 digits: any BIGINT; longer ones name no stream position (and int() would balk).
    if not sep or not offset_text.isdigit() or len(offset_text) > 19 or len(tag) != 8:
        raise MalformedId(f"malformed event id {text[:80]!r}")
    try:
        int(tag, 16)
    except ValueError:
        raise MalformedId(f"malformed event id {text[:80]!r}") from None
    return Position(int(offset_text), tag)


class Where(Enum):
    """Where a client's last position is, seen from this hub."""

    IN_BUFFER = "in_buffer"  # replay from the ring
    BEFORE_BUFFER = "before_buffer"  # read it back from the stream
    AHEAD = "ahead"  # not read yet by this process (it lags the one that sent it)
    MISMATCH = "mismatch"  # another message is at that offset: a recreated stream


class Subscriber(Protocol):
    """What the hub needs of a client: `Client` (a queue read by the stream's task) or
    the lean event connection (services/gateway/event_connection.py), which writes
    each event to its socket as it is offered."""

    @property
    def id(self) -> str: ...

    @property
    def filter(self) -> EventFilter: ...

    def offer(self, event: Event) -> bool:
        """Take `event` without waiting; False when the client cannot keep up (dropped)."""
        ...

    def end(self, reason: str, last: Event | None = None) -> None:
        """End the client's stream (after `last`, when given)."""
        ...


class Client:
    """One subscriber: a bounded FIFO of events, and a future done once it is dropped.

    A deque and one waiter future instead of an ``asyncio.Queue`` plus an
    ``asyncio.Event``: those hold four deques (~3 KB) per connection, and memory
    per connection is what limits how many clients one process holds.
    """

    __slots__ = (
        "_bytes",
        "_events",
        "_limit",
        "_max_bytes",
        "_waiter",
        "drop_reason",
        "ended",
        "filter",
        "id",
    )

    def __init__(
        self, id: str, limit: int, event_filter: EventFilter = ALL, max_bytes: int = 2**62
    ) -> None:
        self.id = id
        self.filter = event_filter
        self.drop_reason: str | None = None
        # Done when the hub drops the client (queue overflow or shutdown).
        self.ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # None is the end-of-stream marker queued when the client is dropped.
        self._events: deque[Event | None] = deque()
        self._limit = limit
        # Bytes of the queued events: a client that stopped reading keeps events
        # alive after the replay buffer let them go, so count bounds alone do not
        # bound memory. One event is always accepted, however large.
        self._max_bytes = max_bytes
        self._bytes = 0
        self._waiter: asyncio.Future[None] | None = None

    @property
    def dropped(self) -> bool:
        return self.ended.done()

    def offer(self, event: Event) -> bool:
        """Queue `event` without waiting; False when the queue is full."""
        size = len(event.wire)
        if len(self._events) >= self._limit or (
            self._events and self._bytes + size > self._max_bytes
        ):
            return False
        self._events.append(event)
        self._bytes += size
        self._wake()
        return True

    async def next(self) -> Event | None:
        """The next event; None once the client was dropped (end the stream)."""
        while not self._events:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        event = self._events.popleft()
        if event is not None:
            self._bytes -= len(event.wire)
        return event

    @property
    def queued_bytes(self) -> int:
        return self._bytes

    def pending(self) -> list[Event | None]:
        """Take everything queued (tests)."""
        items = list(self._events)
        self._events.clear()
        self._bytes = 0
        return items

    def end(self, reason: str, last: Event | None = None) -> None:
        """Discard what is queued (freeing it) and make the stream end after this
        (after `last`, when given: a final word such as `session:expired`)."""
        self.drop_reason = reason
        self._events.clear()
        self._bytes = 0
        if last is not None:
            self._events.append(last)
            self._bytes += len(last.wire)
        self._events.append(None)
        self._wake()
        if not self.ended.done():
            self.ended.set_result(None)

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


@dataclass
class HubStats:
    """Counters the metrics endpoint reads (monotonic, per process)."""

    connections: int = 0
    dropped_clients: int = 0
    events_sent: Counter[str] = field(default_factory=Counter)
    events_published: Counter[str] = field(default_factory=Counter)
    resets: Counter[str] = field(default_factory=Counter)
    resumed: Counter[str] = field(default_factory=Counter)


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def reset_data(reason: str) -> str:
    return json.dumps({"reason": reason, "timestamp": now_iso()})


class Hub:
    def __init__(
        self,
        *,
        replay_size: int,
        client_queue_size: int,
        replay_max_bytes: int = 2**62,
        client_queue_max_bytes: int = 2**62,
    ) -> None:
        self._buffer: deque[Event] = deque()
        self._replay_size = replay_size
        self._replay_max_bytes = replay_max_bytes
        self._buffer_bytes = 0
        self._client_queue_size = client_queue_size
        self._client_queue_max_bytes = client_queue_max_bytes
        # Clients by filter, then by id: an event is projected once per filter.
        self._groups: dict[EventFilter, dict[str, Subscriber]] = {}
        self._client_ids = itertools.count(1)
        # Names this process in client ids and logs (event ids do not depend on it).
        self.instance = uuid.uuid4().hex[:8]
        self._closed = False
        self._head: Event | None = None
        # The event evicted last: a client that saw it has missed only the ring.
        self._before_oldest: Event | None = None
        self._advanced: asyncio.Future[None] | None = None
        self.stats = HubStats()

    # -- producer side -----------------------------------------------------

    def publish(
        self, event: str, data: str, *, offset: int | None = None, tag: str | None = None
    ) -> Event | None:
        """Keep the event at `offset` for replay and queue it for every matching client.

        Offsets already seen are ignored (a reader re-delivering after a broker
        reconnect), so no client gets an event twice. Without an offset the
        next one is used (tests and benchmarks without a broker).
        """
        head_offset = self.head_offset
        if offset is None:
            offset = 0 if head_offset is None else head_offset + 1
        elif head_offset is not None and offset <= head_offset:
            return None
        if tag is None:
            tag = fingerprint(None, data.encode())
        sse = Event(event, data, event_id(offset, tag), offset)
        self._keep_for_replay(sse)
        self._head = sse
        self.stats.events_published[event] += 1
        self._offer_all(sse)
        if self._advanced is not None and not self._advanced.done():
            self._advanced.set_result(None)
        return sse

    def _keep_for_replay(self, event: Event) -> None:
        """Append to the replay buffer, evicting the oldest past its count or byte bound.

        The newest event always stays; the last one evicted is remembered (a
        client that saw it has missed only the ring).
        """
        self._buffer.append(event)
        self._buffer_bytes += len(event.wire)
        while len(self._buffer) > 1 and (
            len(self._buffer) > self._replay_size or self._buffer_bytes > self._replay_max_bytes
        ):
            self._before_oldest = self._buffer.popleft()
            self._buffer_bytes -= len(self._before_oldest.wire)

    @property
    def replay_bytes(self) -> int:
        return self._buffer_bytes

    def heartbeat(self) -> None:
        """Queue a `heartbeat` (no id, not kept for replay) for every client."""
        beat = Event(SSE_HEARTBEAT, json.dumps({"timestamp": now_iso()}))
        for clients in list(self._groups.values()):
            self._offer(clients, beat)

    def _offer_all(self, event: Event) -> None:
        for event_filter, clients in list(self._groups.items()):
            projected = project(event, event_filter, _reframe)
            if projected is not None:
                self._offer(clients, projected)

    def _offer(self, clients: dict[str, Subscriber], event: Event) -> None:
        for client in list(clients.values()):
            if not client.offer(event):
                self.drop(client, "client too slow: queue full")

    # -- client side -------------------------------------------------------

    def where(self, position: Position) -> Where:
        """Where `position` is relative to the ring buffer (no await: atomic)."""
        head = self.head_offset
        if head is None or position.offset > head:
            return Where.AHEAD
        oldest = self._buffer[0].offset
        assert oldest is not None
        if position.offset < oldest:
            edge = self._before_oldest
            if edge is not None and edge.offset == position.offset:
                return Where.IN_BUFFER if edge.id == event_id(*_pair(position)) else Where.MISMATCH
            return Where.BEFORE_BUFFER
        for kept in reversed(self._buffer):
            assert kept.offset is not None
            if kept.offset == position.offset:
                return Where.IN_BUFFER if kept.id == event_id(*_pair(position)) else Where.MISMATCH
            if kept.offset < position.offset:
                break
        # Inside the ring's range but no event of ours is there: not an id we issued.
        return Where.MISMATCH

    def subscribe(
        self,
        last_event_id: str | None = None,
        event_filter: EventFilter = ALL,
        *,
        after_offset: int | None = None,
        client_id: str | None = None,
    ) -> tuple[Client, list[Event]]:
        """Register a queue client; return it with its backlog (replayed events or a reset).

        `after_offset` (already verified by the caller) replays everything after
        it from the ring; a `last_event_id` is checked here and gets a reset
        when the ring cannot serve it (the route reads older positions back from
        the stream before calling this).
        """
        client = Client(
            client_id or self.next_client_id(),
            self._client_queue_size,
            event_filter,
            self._client_queue_max_bytes,
        )
        return client, self.attach(client, last_event_id, after_offset=after_offset)

    def attach(
        self,
        subscriber: Subscriber,
        last_event_id: str | None = None,
        *,
        after_offset: int | None = None,
    ) -> list[Event]:
        """Register `subscriber` (any kind); return its backlog, as `subscribe` does."""
        event_filter = subscriber.filter
        backlog: list[Event] = []
        if after_offset is not None:
            backlog = self._backlog_after(after_offset, event_filter)
        elif last_event_id is not None:
            backlog = self._backlog_for(last_event_id, event_filter)
        if self._closed:
            subscriber.end("server shutting down")
            return backlog
        self._groups.setdefault(event_filter, {})[subscriber.id] = subscriber
        self.stats.connections += 1
        return backlog

    @property
    def client_queue_size(self) -> int:
        return self._client_queue_size

    @property
    def client_queue_max_bytes(self) -> int:
        return self._client_queue_max_bytes

    def next_client_id(self) -> str:
        return f"{self.instance}-c{next(self._client_ids)}"

    def unsubscribe(self, client: Subscriber) -> None:
        group = self._groups.get(client.filter)
        if group is None or group.pop(client.id, None) is None:
            return
        if not group:
            del self._groups[client.filter]

    def drop(self, client: Subscriber, reason: str) -> None:
        group = self._groups.get(client.filter)
        if group is None or client.id not in group:
            return
        self.unsubscribe(client)
        client.end(reason)
        self.stats.dropped_clients += 1
        log.warning("dropped SSE client", extra={"client_id": client.id, "reason": reason})

    def close(self) -> None:
        """End every client stream, and any that connects later (shutdown)."""
        self._closed = True
        groups, self._groups = self._groups, {}
        for clients in groups.values():
            for client in clients.values():
                client.end("server shutting down")

    async def wait_past(self, offset: int, timeout_s: float) -> bool:
        """Wait until this hub has read the stream up to `offset`; False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self.head_offset is None or self.head_offset < offset:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            if self._advanced is None or self._advanced.done():
                self._advanced = loop.create_future()
            try:
                await asyncio.wait_for(asyncio.shield(self._advanced), remaining)
            except TimeoutError:
                return False
        return True

    @property
    def client_count(self) -> int:
        return sum(len(clients) for clients in self._groups.values())

    @property
    def filter_count(self) -> int:
        return len(self._groups)

    @property
    def head_offset(self) -> int | None:
        return None if self._head is None else self._head.offset

    @property
    def oldest_offset(self) -> int | None:
        return self._buffer[0].offset if self._buffer else None

    @property
    def head_id(self) -> str | None:
        """The id of the newest event (None before the first one)."""
        return None if self._head is None else self._head.id

    def reset_event(self, reason: str) -> Event:
        """A reset for one client; it carries the head id, so resuming from it misses nothing.

        Before the first event the id is empty, which clears the browser's
        Last-Event-ID: its next connection is a fresh one.
        """
        self.stats.resets[reason] += 1
        return Event(SSE_RESET, reset_data(reason), self.head_id or "")

    def _backlog_for(self, last_event_id: str, event_filter: EventFilter) -> list[Event]:
        try:
            position = parse_event_id(last_event_id)
        except MalformedId:
            return [self.reset_event("malformed event id")]
        where = self.where(position)
        if where is Where.IN_BUFFER:
            return self._backlog_after(position.offset, event_filter)
        if where is Where.BEFORE_BUFFER:
            return [self.reset_event("event id older than the replay buffer")]
        return [self.reset_event("unknown or expired event id")]

    def _backlog_after(self, offset: int, event_filter: EventFilter) -> list[Event]:
        missed: list[Event] = []
        for kept in reversed(self._buffer):
            assert kept.offset is not None
            if kept.offset <= offset:
                break
            missed.append(kept)
        missed.reverse()
        if event_filter is ALL:
            return missed
        projected = (project(event, event_filter, _reframe) for event in missed)
        return [event for event in projected if event is not None]


def _pair(position: Position) -> tuple[int, str]:
    return position.offset, position.tag


def _reframe(event: Event, data: str) -> Event:
    return Event(event.event, data, event.id, event.offset)


Reframe = Callable[[Event, str], Event]


async def send_heartbeats(hub: Hub, interval_s: float) -> None:
    """Every `interval_s`, a heartbeat to every client (keeps proxies from idling them out)."""
    while True:
        await asyncio.sleep(interval_s)
        hub.heartbeat()
