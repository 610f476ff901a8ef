"""A cheap SSE load client on raw asyncio sockets (one Protocol per connection).

It shares 2 cores with the server it measures, so it parses as little as it can:
after the response head, each connection only counts occurrences of a marker
(a byte string that appears once in every benchmark event) and stamps the
arrival time of the k-th occurrence into a preallocated array. Events reach a
connection in order, so the k-th occurrence is the k-th published event. With a
`beat_marker` it also counts heartbeats per connection (the held-connections case).
"""

from __future__ import annotations

import asyncio
import math
import time
from array import array
from collections.abc import Callable
from typing import cast


class FanoutConnection(asyncio.Protocol):
    __slots__ = ("beats", "client", "count", "head", "index", "ready", "tail", "transport")

    def __init__(self, client: FanoutClient, index: int) -> None:
        self.client = client
        self.index = index
        self.count = 0
        self.beats = 0
        self.head: bytes | None = b""
        self.tail = b""
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport; they quack like one.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.client.request)

    def data_received(self, data: bytes) -> None:
        if self.head is not None:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            status = self.head[: self.head.find(b"\r\n")]
            data = self.head[end + 4 :]
            self.head = None
            if self.ready.done():
                pass  # connect_all gave up (timeout) and cancelled the wait
            elif b" 200" not in status:
                self.ready.set_exception(ConnectionError(status.decode(errors="replace")))
                return
            else:
                self.ready.set_result(None)
        client = self.client
        tail = self.tail
        buffer = tail + data
        # The tail holds no whole marker of the longest length, but may hold a shorter
        # one already counted: count in the buffer minus what the tail alone held.
        hits = buffer.count(client.marker) - tail.count(client.marker)
        if hits:
            client.record(self.index, self.count, hits)
            self.count += hits
        if client.beat_marker:
            self.beats += buffer.count(client.beat_marker) - tail.count(client.beat_marker)
        # Keep just enough to find a marker split across two reads.
        self.tail = buffer[-client.keep :]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(exc or ConnectionError("closed before response"))
        self.client.lost += 1


class FanoutClient:
    """Holds N SSE connections and records when each receives each event."""

    def __init__(
        self,
        host: str,
        port: int,
        path: str,
        connections: int,
        marker: bytes,
        max_events: int,
        headers: dict[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        beat_marker: bytes = b"",
        source_address: str | None = None,
    ) -> None:
        """`source_address`: bind every connection to it (127.0.0.2, …): one source
        address has only the ephemeral port range (~28k ports) towards one server port."""
        head = {"Host": f"{host}:{port}", "Accept": "text/event-stream", **(headers or {})}
        lines = [f"GET {path} HTTP/1.1", *(f"{k}: {v}" for k, v in head.items()), "", ""]
        self.request = "\r\n".join(lines).encode()
        self.host, self.port, self.size = host, port, connections
        self.marker = marker
        self.beat_marker = beat_marker
        self.keep = max(len(marker), len(beat_marker)) - 1
        self.local_addr = (source_address, 0) if source_address else None
        self.max_events = max_events
        self.clock = clock
        self.connections: list[FanoutConnection] = []
        self.lost = 0
        self.arrivals = [array("d", [math.nan]) * connections for _ in range(max_events)]
        self.pending = [connections] * max_events
        self.done = [asyncio.Event() for _ in range(max_events)]
        self.extra_events = 0

    def record(self, index: int, first: int, hits: int) -> None:
        now = self.clock()
        for k in range(first, first + hits):
            if k >= self.max_events:
                self.extra_events += 1
                continue
            self.arrivals[k][index] = now
            self.pending[k] -= 1
            if self.pending[k] == 0:
                self.done[k].set()

    async def connect_all(self, concurrency: int = 200, within_s: float = 120) -> float:
        """Open every connection (at most `concurrency` handshakes at once); seconds taken."""
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(concurrency)
        started = time.monotonic()

        async def open_one(index: int) -> None:
            async with gate:
                _, protocol = await loop.create_connection(
                    lambda: FanoutConnection(self, index),
                    self.host,
                    self.port,
                    local_addr=self.local_addr,
                )
                self.connections.append(protocol)
                await protocol.ready

        await asyncio.wait_for(
            asyncio.gather(*(open_one(i) for i in range(self.size))), timeout=within_s
        )
        return time.monotonic() - started

    async def wait_for(self, event_index: int, within_s: float) -> bool:
        """Wait until every connection got event `event_index`; False on timeout."""
        try:
            await asyncio.wait_for(self.done[event_index].wait(), within_s)
        except TimeoutError:
            return False
        return True

    def delivery_times(self, event_index: int, sent_at: float) -> list[float]:
        """Seconds from `sent_at` to arrival, for each connection that got the event."""
        return [t - sent_at for t in self.arrivals[event_index] if not math.isnan(t)]

    def beats(self) -> list[int]:
        """Heartbeats each connection received so far."""
        return [connection.beats for connection in self.connections]

    def received(self, event_index: int) -> int:
        return self.size - self.pending[event_index]

    def close(self) -> None:
        for connection in self.connections:
            if connection.transport is not None:
                connection.transport.abort()
        self.connections.clear()
