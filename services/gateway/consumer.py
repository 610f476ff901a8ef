"""Event stream → hub: every gateway process reads the shared RabbitMQ stream.

The stream (``<exchange>.stream``, declared by every publisher and by the
gateway, retention by age and bytes) is the gateway's log: an event's SSE id
is its position there, identical on every replica and worker, so any of them
resumes any client. At start-up the reader goes back ``replay_size`` events
from the head, so a restarted gateway has the recent past in memory before it
serves (``wait_ready``); older positions are read back per client
(``read_back``), a few readers at a time.

Streams cannot dead-letter: a message that fails its contract is skipped by
every reader, and the live readers copy it to the dead-letter exchange with
the reason — once in all: every worker of every replica reads it live, and a
row in ``stream_dead_letters`` (migration 0060) decides which one copies it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import asyncpg

from services.gateway.hub import Event, Hub, Position, fingerprint
from services.gateway.queries import CLAIM_DEAD_LETTER_SQL
from shared.bus import Bus, BusError, StreamEntry
from shared.contracts import spec_for
from shared.db import DATABASE_ERRORS

log = logging.getLogger(__name__)

# How long start-up looks for the stream's head (an empty stream sends nothing).
HEAD_PROBE_S = 1.0
# Per-client read-backs running at once: a restart's reconnecting crowd is served
# from the prefilled ring; only positions older than it come here.
READ_BACK_CONCURRENCY = 16
# A read-back that gets no message for this long gives up (the client gets a reset).
READ_BACK_IDLE_S = 5.0


class Unresumable(Exception):
    """The position is no longer (or never was) in the stream: the client must reset."""


def to_event(entry: StreamEntry) -> Event | None:
    if entry.message is None:
        return None
    tag = fingerprint(entry.message_id, entry.body)
    sse = spec_for(entry.routing_key).sse_event
    return Event(sse, entry.body.decode(), f"{entry.offset}-{tag}", entry.offset)


@dataclass
class StreamLog:
    bus: Bus
    hub: Hub
    replay_size: int
    # Which process read (the dead-letter copy's x-reader header and claim row).
    reader_name: str = field(
        default_factory=lambda: f"gateway@{socket.gethostname()}:{os.getpid()}"
    )
    # Where the readers agree which one copies an invalid message (None: each copies).
    pool: asyncpg.Pool | None = None

    def __post_init__(self) -> None:
        self._ready = asyncio.Event()
        self._live_from: int | None = None
        self._stop: Callable[[], Awaitable[None]] | None = None
        self._read_backs = asyncio.Semaphore(READ_BACK_CONCURRENCY)
        # aio-pika runs each delivery's handler as a task of its own: copies wait
        # their turn here (FIFO), so the dead-letter queue keeps the stream's order.
        self._copies = asyncio.Lock()

    async def start(self) -> int | str:
        """Start the live reader a replay buffer back from the head; returns where."""
        head = await self._probe_head()
        start: int | str = "first" if head is None else max(0, head - self.replay_size + 1)
        self._live_from = None if head is None else head + 1
        if head is None:
            self._ready.set()
        self._stop = await self.bus.read_stream(self._on_entry, offset=start)
        return start

    async def wait_ready(self, timeout_s: float) -> None:
        """Until the ring holds the stream up to the head seen at start-up."""
        await asyncio.wait_for(self._ready.wait(), timeout_s)

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    async def stop(self) -> None:
        if self._stop is not None:
            await self._stop()

    async def _on_entry(self, entry: StreamEntry) -> None:
        event = to_event(entry)
        live = self._live_from is None or entry.offset >= self._live_from
        if event is not None:
            assert event.id is not None
            self.hub.publish(
                event.event, event.data, offset=entry.offset, tag=event.id.partition("-")[2]
            )
        elif live:
            await self._dead_letter(entry)
        caught_up = self._live_from is not None and entry.offset >= self._live_from - 1
        if caught_up and not self._ready.is_set():
            self._ready.set()

    async def _dead_letter(self, entry: StreamEntry) -> None:
        reason = entry.error or "invalid message"
        context = {
            "routing_key": entry.routing_key,
            "offset": entry.offset,
            "message_id": entry.message_id,
            "error": reason[:2000],
        }
        try:
            async with self._copies:
                copied = await self._copy_once(entry, reason)
        except (BusError, OSError, TimeoutError, RuntimeError) as exc:
            log.warning("dead-letter copy failed", extra={**context, "error": repr(exc)})
            return
        if copied:
            log.error(
                "invalid message in the event stream; skipped, copied to the dead-letter queue",
                extra=context,
            )
        else:
            log.info(
                "invalid message in the event stream; skipped, another reader copied it",
                extra=context,
            )

    async def _copy_once(self, entry: StreamEntry, reason: str) -> bool:
        """Copy `entry` to the dead-letter exchange unless another reader did; True if we did.

        The claim row and the copy share a transaction: a failed copy rolls the
        claim back, and a reader waiting on the same row then copies it instead.
        Without the database the copy is made anyway: a duplicate beats none.
        """
        if self.pool is None:
            await self.bus.dead_letter(entry, reason, reader=self.reader_name)
            return True
        copied = False
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                claimed = await conn.fetchval(
                    CLAIM_DEAD_LETTER_SQL,
                    self.bus.stream_name,
                    entry.offset,
                    fingerprint(entry.message_id, entry.body),
                    _text(entry.routing_key),
                    None if entry.message_id is None else _text(entry.message_id),
                    _text(reason[:4000]),
                    self.reader_name,
                )
                if claimed:
                    await self.bus.dead_letter(entry, reason, reader=self.reader_name)
                    copied = True
            return copied
        except DATABASE_ERRORS as exc:
            if copied:
                return True  # the claim's commit failed after the copy: it is done
            log.warning(
                "dead-letter claim unavailable; copying anyway (other readers may too)",
                extra={"offset": entry.offset, "error": repr(exc)},
            )
            await self.bus.dead_letter(entry, reason, reader=self.reader_name)
            return True

    async def _probe_head(self) -> int | None:
        """The offset of the stream's newest message, None when the stream is empty."""
        seen: list[int] = []
        got = asyncio.Event()

        def on_entry(entry: StreamEntry) -> None:
            seen.append(entry.offset)
            got.set()

        # "last" starts at the stream's last chunk: its messages end at the head.
        stop = await self.bus.read_stream(on_entry, offset="last", prefetch=1000)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(got.wait(), HEAD_PROBE_S)
            # The rest of the chunk follows at once.
            await asyncio.sleep(0.05)
        finally:
            await stop()
        return max(seen) if seen else None

    async def read_back(self, position: Position) -> AsyncIterator[tuple[Event | None, int]]:
        """(valid event or None, offset) after `position`, until the ring takes over.

        Raises Unresumable when the stream no longer holds `position` (retention)
        or holds another message there (a recreated stream).
        """
        async with self._read_backs:
            queue: asyncio.Queue[StreamEntry] = asyncio.Queue(maxsize=256)
            stop = await self.bus.read_stream(queue.put, offset=position.offset, prefetch=256)
            try:
                first = await self._next(queue)
                if first.offset != position.offset or (
                    fingerprint(first.message_id, first.body) != position.tag
                ):
                    raise Unresumable("event id no longer in the stream")
                while True:
                    oldest = self.hub.oldest_offset
                    entry = await self._next(queue)
                    yield to_event(entry), entry.offset
                    if oldest is not None and entry.offset >= oldest:
                        return  # the ring holds everything after this
            finally:
                await stop()

    @staticmethod
    async def _next(queue: asyncio.Queue[StreamEntry]) -> StreamEntry:
        try:
            return await asyncio.wait_for(queue.get(), READ_BACK_IDLE_S)
        except TimeoutError:
            raise Unresumable("event id not found in the stream") from None


def _text(value: str) -> str:
    """PostgreSQL text cannot hold NUL: a binary message's error text may quote one."""
    return value.replace("\x00", "\\x00")
