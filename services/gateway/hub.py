"""The fan-out hub: one producer, many SSE clients, a bounded replay buffer.

Every data event gets an id ``f"{epoch}-{seq}"``; ``epoch`` is unique per hub
(process start), ``seq`` counts up from 1. The last ``replay_size`` events stay
in a ring buffer so a client reconnecting with ``Last-Event-ID`` gets exactly
what it missed. When that is impossible (an id from another process or
replica, older than the buffer, or garbage) the client gets a ``reset`` event
instead, telling it to reload from the REST API.

Each client has its own bounded queue. ``publish`` never waits: a client whose
queue is full is dropped at once (its stream ends, it can resume by
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
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sse_starlette import ServerSentEvent

from shared.contracts import SSE_HEARTBEAT, SSE_RESET

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Event:
    """One SSE event; ``data`` is the exact text sent after ``data:``."""

    event: str
    data: str
    id: str | None = None
    # The event framed once by sse-starlette, sent as is to every client.
    wire: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        framed = ServerSentEvent(data=self.data, event=self.event, id=self.id).encode()
        object.__setattr__(self, "wire", framed)


class Client:
    """One subscriber: a bounded FIFO of events, and a future done once it is dropped.

    A deque and one waiter future instead of an ``asyncio.Queue`` plus an
    ``asyncio.Event``: those hold four deques (~3 KB) per connection, and memory
    per connection is what limits how many clients one process holds.
    """

    __slots__ = ("_events", "_limit", "_waiter", "drop_reason", "ended", "id")

    def __init__(self, id: str, limit: int) -> None:
        self.id = id
        self.drop_reason: str | None = None
        # Done when the hub drops the client (queue overflow or shutdown).
        self.ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # None is the end-of-stream marker queued when the client is dropped.
        self._events: deque[Event | None] = deque()
        self._limit = limit
        self._waiter: asyncio.Future[None] | None = None

    @property
    def dropped(self) -> bool:
        return self.ended.done()

    def offer(self, event: Event) -> bool:
        """Queue `event` without waiting; False when the queue is full."""
        if len(self._events) >= self._limit:
            return False
        self._events.append(event)
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
        return self._events.popleft()

    def pending(self) -> list[Event | None]:
        """Take everything queued (tests)."""
        items = list(self._events)
        self._events.clear()
        return items

    def end(self, reason: str) -> None:
        """Discard what is queued (freeing it) and make the stream end after this."""
        self.drop_reason = reason
        self._events.clear()
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


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def reset_data(reason: str) -> str:
    return json.dumps({"reason": reason, "timestamp": now_iso()})


class Hub:
    def __init__(self, *, replay_size: int, client_queue_size: int) -> None:
        self.epoch = uuid.uuid4().hex[:12]
        self._seq = 0
        self._buffer: deque[Event] = deque(maxlen=replay_size)
        self._client_queue_size = client_queue_size
        self._clients: dict[str, Client] = {}
        self._client_ids = itertools.count(1)
        self._closed = False
        self.stats = HubStats()

    # -- producer side -----------------------------------------------------

    def publish(self, event: str, data: str) -> Event:
        """Give `data` the next id, keep it for replay and queue it for every client."""
        self._seq += 1
        sse = Event(event, data, f"{self.epoch}-{self._seq}")
        self._buffer.append(sse)
        self.stats.events_published[event] += 1
        self._offer_all(sse)
        return sse

    def heartbeat(self) -> None:
        """Queue a `heartbeat` (no id, not kept for replay) for every client."""
        self._offer_all(Event(SSE_HEARTBEAT, json.dumps({"timestamp": now_iso()})))

    def _offer_all(self, event: Event) -> None:
        for client in list(self._clients.values()):
            if not client.offer(event):
                self.drop(client, "client too slow: queue full")

    def reset_all(self, reason: str) -> Event:
        """Tell every client to reload from REST; kept in the buffer so resumers see it too."""
        self.stats.resets[reason] += 1
        return self.publish(SSE_RESET, reset_data(reason))

    # -- client side -------------------------------------------------------

    def subscribe(self, last_event_id: str | None) -> tuple[Client, list[Event]]:
        """Register a client; return it with its backlog (replayed events or a reset)."""
        client = Client(f"{self.epoch}-c{next(self._client_ids)}", self._client_queue_size)
        backlog = [] if last_event_id is None else self._backlog_after(last_event_id)
        if self._closed:
            client.end("server shutting down")
            return client, backlog
        self._clients[client.id] = client
        self.stats.connections += 1
        return client, backlog

    def unsubscribe(self, client: Client) -> None:
        self._clients.pop(client.id, None)

    def drop(self, client: Client, reason: str) -> None:
        if self._clients.pop(client.id, None) is None:
            return
        client.end(reason)
        self.stats.dropped_clients += 1
        log.warning("dropped SSE client", extra={"client_id": client.id, "reason": reason})

    def close(self) -> None:
        """End every client stream, and any that connects later (shutdown)."""
        self._closed = True
        for client in list(self._clients.values()):
            self._clients.pop(client.id, None)
            client.end("server shutting down")

    @property
    def client_count(self) -> int:
        return len(self._clients)

    @property
    def head_id(self) -> str:
        """The id of the newest event (``epoch-0`` before the first one)."""
        return f"{self.epoch}-{self._seq}"

    def _backlog_after(self, last_event_id: str) -> list[Event]:
        epoch, _, seq_text = last_event_id.strip().rpartition("-")
        if epoch != self.epoch:
            return [self._reset_for_client("unknown or expired event id")]
        try:
            seq = int(seq_text)
        except ValueError:
            return [self._reset_for_client("malformed event id")]
        oldest_kept = self._seq - len(self._buffer) + 1
        if seq > self._seq or seq < 0:
            return [self._reset_for_client("unknown or expired event id")]
        if seq < oldest_kept - 1:
            return [self._reset_for_client("event id older than the replay buffer")]
        # The buffer holds consecutive seqs, so the missed events are its tail.
        return list(itertools.islice(self._buffer, seq - oldest_kept + 1, None))

    def _reset_for_client(self, reason: str) -> Event:
        # Carries the head id: resuming from here after the reload misses nothing.
        self.stats.resets[reason] += 1
        return Event(SSE_RESET, reset_data(reason), self.head_id)


async def send_heartbeats(hub: Hub, interval_s: float) -> None:
    """Every `interval_s`, a heartbeat to every client (keeps proxies from idling them out)."""
    while True:
        await asyncio.sleep(interval_s)
        hub.heartbeat()
