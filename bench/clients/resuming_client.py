"""A crowd of EventSource-like clients that fail over: raw asyncio, one Protocol each.

Each client behaves like the dashboard's EventSource: it remembers the id of
the last event it received and, when its connection drops, reconnects — to
the next server of its list — sending that id as `Last-Event-ID`. It records
every data event's stream offset, every `reset`, and when it was resumed (the
`connection` event of its new stream), so a failover can be checked exactly:
no reset, no missing offset, no duplicate. A `reset` is where a dashboard would
reload from REST; this client counts it instead (`rest_reloads`).
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast


@dataclass
class ClientRecord:
    offsets: list[int] = field(default_factory=list)
    resets: int = 0
    connections: int = 0
    resumed_at: float | None = None  # time.time() of the connection event after a drop
    last_id: str | None = None


class ResumingConnection(asyncio.Protocol):
    def __init__(self, crowd: ResumingCrowd, index: int) -> None:
        self.crowd = crowd
        self.index = index
        self.buffer = b""
        self.head_done = False
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.crowd.request(self.index))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.head_done:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            status = self.buffer[: self.buffer.find(b"\r\n")]
            self.buffer = self.buffer[end + 4 :]
            self.head_done = True
            if b" 200" not in status:
                if not self.ready.done():
                    self.ready.set_exception(ConnectionError(status.decode(errors="replace")))
                return
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            block, self.buffer = self.buffer[:end], self.buffer[end + 4 :]
            self.crowd.on_event(self, block)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(exc or ConnectionError("closed before the stream began"))
        self.crowd.on_lost(self)


class ResumingCrowd:
    """`count` clients on `servers[0]`; on a drop each moves on to the next server."""

    def __init__(self, servers: Sequence[tuple[str, int]], path: str, count: int) -> None:
        self.servers = list(servers)
        self.path = path
        self.records = [ClientRecord() for _ in range(count)]
        self._server_of = [0] * count
        self._conns: list[ResumingConnection | None] = [None] * count
        self._closing = False
        self.reconnects = 0

    def request(self, index: int) -> bytes:
        host, port = self.servers[self._server_of[index]]
        lines = [f"GET {self.path} HTTP/1.1", f"Host: {host}:{port}", "Accept: text/event-stream"]
        last_id = self.records[index].last_id
        if last_id:
            lines.append(f"Last-Event-ID: {last_id}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    async def connect_all(self, batch: int = 200) -> float:
        started = time.monotonic()
        for first in range(0, len(self.records), batch):
            await asyncio.gather(
                *(self._connect(i) for i in range(first, min(first + batch, len(self.records))))
            )
        return time.monotonic() - started

    async def _connect(self, index: int) -> None:
        host, port = self.servers[self._server_of[index]]
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(lambda: ResumingConnection(self, index), host, port)
        self._conns[index] = conn
        await conn.ready

    def on_event(self, conn: ResumingConnection, block: bytes) -> None:
        event = event_id = None
        for line in block.split(b"\r\n"):
            if line.startswith(b"event: "):
                event = line[7:]
            elif line.startswith(b"id: ") or line == b"id:":
                event_id = line[4:].decode()
        record = self.records[conn.index]
        if event == b"connection":
            record.connections += 1
            if record.connections > 1 and record.resumed_at is None:
                record.resumed_at = time.time()
            if not conn.ready.done():
                conn.ready.set_result(None)
            return
        if event == b"heartbeat":
            return
        if event_id is not None:
            record.last_id = event_id or None
        if event == b"reset":
            record.resets += 1
            return
        if event_id:
            record.offsets.append(int(event_id.split("-", 1)[0]))

    def on_lost(self, conn: ResumingConnection) -> None:
        if self._closing or self._conns[conn.index] is not conn:
            return
        self._conns[conn.index] = None
        index = conn.index
        self._server_of[index] = min(self._server_of[index] + 1, len(self.servers) - 1)
        self.reconnects += 1
        # Like EventSource: reconnect after a short delay (jittered, so not all at once).
        delay = random.uniform(0.0, 0.25)
        asyncio.get_running_loop().call_later(
            delay, lambda: asyncio.ensure_future(self._reconnect(index))
        )

    async def _reconnect(self, index: int) -> None:
        for _ in range(50):
            try:
                await self._connect(index)
                return
            except (OSError, ConnectionError):
                await asyncio.sleep(0.2)

    def received(self, offset: int) -> int:
        return sum(1 for r in self.records if r.offsets and r.offsets[-1] >= offset)

    @property
    def rest_reloads(self) -> int:
        return sum(r.resets for r in self.records)

    def close(self) -> None:
        self._closing = True
        for conn in self._conns:
            if conn is not None and conn.transport is not None:
                conn.transport.close()


def check_exact(records: Sequence[ClientRecord], published: Sequence[int]) -> dict[str, int]:
    """Missing and duplicated offsets over all clients, against what was published."""
    expected = list(published)
    missing = duplicates = out_of_order = 0
    for record in records:
        seen = record.offsets
        duplicates += len(seen) - len(set(seen))
        missing += len(set(expected) - set(seen))
        out_of_order += sum(1 for a, b in itertools.pairwise(seen) if b <= a)
    return {"missing": missing, "duplicates": duplicates, "out_of_order": out_of_order}
