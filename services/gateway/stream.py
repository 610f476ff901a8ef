"""One client's SSE stream as a plain ASGI response (no sse-starlette).

Per connection this runs the response coroutine and one small watcher task that
waits for the client to go away — nothing else: no task group, no ping task (the
hub sends heartbeats through the client's queue), no cancel scope per write.
Memory and tasks per connection are what limit the fan-out (docs/GATEWAY.md).

The connection is cut (the response task cancelled) when the client disconnects,
when the hub dropped the client and its stream did not end by itself within
`drop_grace_s` (it is stuck writing to a client that stopped reading), and at
server exit (`GatewayServer.shutdown` closes the hub, which ends every stream).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from services.gateway.hub import Client, Event, Hub, now_iso
from services.gateway.sse import frame
from shared.contracts import SSE_CONNECTION, SSE_SESSION_EXPIRED

log = logging.getLogger(__name__)

HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (b"x-accel-buffering", b"no"),  # nginx and friends: do not buffer the stream
]


def connection_event(client_id: str, resumed_from: str | None) -> bytes:
    connection = {"client_id": client_id, "timestamp": now_iso(), "resumed_from": resumed_from}
    return frame(json.dumps(connection), event=SSE_CONNECTION)


def session_expired_event() -> Event:
    """The last event of a stream whose session (or bearer JWT) expired."""
    data = json.dumps({"reason": "session expired: sign in again", "timestamp": now_iso()})
    return Event(SSE_SESSION_EXPIRED, data)


def expiry_delay_s(expires_at: datetime) -> float:
    return max(0.0, (expires_at - datetime.now(UTC)).total_seconds())


async def live_events(hub: Hub, client: Client, backlog: list[Event]) -> AsyncIterator[bytes]:
    """The backlog, then live events until the hub drops the client."""
    for event in backlog:
        yield event.wire
        hub.stats.events_sent[event.event] += 1
    while True:
        event_or_end = await client.next()
        if event_or_end is None:
            # Dropped: end the stream; the browser reconnects with Last-Event-ID.
            return
        yield event_or_end.wire
        hub.stats.events_sent[event_or_end.event] += 1


class EventStreamResponse(Response):
    """ASGI response: headers, then every chunk of `chunks` as it comes.

    A starlette Response only so FastAPI passes it through; none of Response's
    body handling is used (no Content-Length: the stream has no end).
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        hub: Hub,
        chunks_for: Callable[[EventStreamResponse], AsyncIterator[bytes]],
        *,
        drop_grace_s: float,
        send_timeout_s: float | None,
        expires_at: datetime | None = None,
    ) -> None:
        self.status_code = 200
        self.background = None
        self.raw_headers = list(HEADERS)
        self._hub = hub
        self._chunks = chunks_for(self)
        self._drop_grace_s = drop_grace_s
        self._send_timeout_s = send_timeout_s
        # Set by `attach` once the client is registered (after any catch-up).
        self.client: Client | None = None
        self._task: asyncio.Task[object] | None = None
        self._cut_reason: str | None = None
        # When the viewer's session (or bearer JWT) expires, the stream ends with
        # `session:expired` rather than going on unauthorised.
        self._expires_at = expires_at
        self._expiry: asyncio.TimerHandle | None = None

    def attach(self, client: Client) -> None:
        """Called by the chunks' producer once the hub registered `client`."""
        self.client = client
        client.ended.add_done_callback(lambda _: self._arm_cut())
        if self._expires_at is not None:
            delay = expiry_delay_s(self._expires_at)
            self._expiry = asyncio.get_running_loop().call_later(delay, self._expire)

    def _expire(self) -> None:
        client = self.client
        if client is None or client.dropped:
            return
        self._hub.unsubscribe(client)
        client.end("session expired", session_expired_event())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        watcher = asyncio.create_task(self._watch_disconnect(receive))
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            async for chunk in self._chunks:
                await self._send(send, chunk)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if self._cut_reason is None:
                raise  # not ours (server exit after the grace period): let it propagate
            task.uncancel()
            log.info(
                "SSE connection cut",
                extra={"client_id": self._client_id, "reason": self._cut_reason},
            )
        except (OSError, TimeoutError) as exc:
            log.warning(
                "SSE send failed; closing the connection",
                extra={"client_id": self._client_id, "error": repr(exc)},
            )
        finally:
            watcher.cancel()
            if self._expiry is not None:
                self._expiry.cancel()
            if self.client is not None:
                self._hub.unsubscribe(self.client)
            await _close(self._chunks)

    @property
    def _client_id(self) -> str | None:
        return None if self.client is None else self.client.id

    async def _send(self, send: Send, chunk: bytes) -> None:
        message = {"type": "http.response.body", "body": chunk, "more_body": True}
        if self._send_timeout_s is None:
            # No timer per write: arming one cost a quarter of the fan-out's CPU.
            await send(message)
            return
        async with asyncio.timeout(self._send_timeout_s):
            await send(message)

    def _arm_cut(self) -> None:
        # The stream ends by itself right after the drop unless a write is stuck.
        reason = self.client.drop_reason if self.client is not None else None
        asyncio.get_running_loop().call_later(self._drop_grace_s, self._cut, f"dropped: {reason}")

    def _cut(self, reason: str) -> None:
        task = self._task
        if task is not None and not task.done() and self._cut_reason is None:
            self._cut_reason = reason
            task.cancel()

    async def _watch_disconnect(self, receive: Receive) -> None:
        # A GET's request body is empty: the next message that matters is the disconnect.
        while (await receive())["type"] != "http.disconnect":
            pass
        self._cut("client disconnected")


async def _close(chunks: AsyncIterator[bytes]) -> None:
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):
            await aclose()
