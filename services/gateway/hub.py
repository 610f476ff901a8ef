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

from shared.contracts import SSE_RESET

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Event:
    """One SSE event; ``data`` is the exact text sent after ``data:``."""

    event: str
    data: str
    id: str | None = None


@dataclass(eq=False)
class Client:
    id: str
    # None is the end-of-stream marker the hub queues when it drops the client.
    queue: asyncio.Queue[Event | None]
    # Set when the hub drops the client (queue overflow or shutdown).
    dropped: asyncio.Event = field(default_factory=asyncio.Event)
    drop_reason: str | None = None

    def end(self, reason: str) -> None:
        """Discard what is queued (freeing it) and make the stream end after this."""
        self.drop_reason = reason
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)
        self.dropped.set()


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
        self.stats = HubStats()

    # -- producer side -----------------------------------------------------

    def publish(self, event: str, data: str) -> Event:
        """Give `data` the next id, keep it for replay and queue it for every client."""
        self._seq += 1
        sse = Event(event, data, f"{self.epoch}-{self._seq}")
        self._buffer.append(sse)
        self.stats.events_published[event] += 1
        for client in list(self._clients.values()):
            try:
                client.queue.put_nowait(sse)
            except asyncio.QueueFull:
                self.drop(client, "client too slow: queue full")
        return sse

    def reset_all(self, reason: str) -> Event:
        """Tell every client to reload from REST; kept in the buffer so resumers see it too."""
        self.stats.resets[reason] += 1
        return self.publish(SSE_RESET, reset_data(reason))

    # -- client side -------------------------------------------------------

    def subscribe(self, last_event_id: str | None) -> tuple[Client, list[Event]]:
        """Register a client; return it with its backlog (replayed events or a reset)."""
        client = Client(
            id=f"{self.epoch}-c{next(self._client_ids)}",
            queue=asyncio.Queue(maxsize=self._client_queue_size),
        )
        backlog = [] if last_event_id is None else self._backlog_after(last_event_id)
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
        """End every client stream (shutdown)."""
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
