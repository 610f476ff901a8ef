"""One lean SSE connection: the socket's protocol and the hub's subscriber in one object.

`GET /api/events` on a connection of its own is taken off uvicorn by the front
protocol (services/gateway/front.py). The app still answers the request — the
same ASGI route, middleware, authentication and parameter checks as before,
run once in a short-lived task with this object's `receive`/`send` — and the
route writes what the client missed. Then the task ends and the connection is
just this object, registered in the hub:

- no task, coroutine, request cycle or queue per client while the socket keeps
  up: the hub's `offer` writes the event's bytes (framed once per filter,
  shared by every client) straight to the transport;
- only while the socket's buffer is over its high-water mark (`pause_writing`)
  are events queued here, bounded by `CLIENT_QUEUE_SIZE` / `CLIENT_QUEUE_MAX_BYTES`
  like a queue client's; past them the hub drops the client;
- `SSE_SEND_TIMEOUT_S` (when on) bounds how long the socket may stay paused: a
  timer armed at `pause_writing`, not one per write;
- the stream ends by a graceful close (after a final event such as
  `session:expired`); a close stuck behind a peer that stopped reading is
  aborted after `CLIENT_DROP_GRACE_S`.

The response body is delimited by the connection's close (`connection: close`,
no chunked framing), so each event is written exactly as framed by the hub.
"""

from __future__ import annotations

import asyncio
import http
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.gateway.event_filters import ALL, EventFilter
from services.gateway.hub import Event, Hub
from services.gateway.stream import expiry_delay_s, session_expired_event

log = logging.getLogger(__name__)

# The ASGI scope extension through which the route finds the lean connection.
LEAN_EXTENSION = "smokesignal.event_connection"

ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class LeanOptions:
    """Shared by every lean connection of a server (one object, not one per connection)."""

    drop_grace_s: float
    send_timeout_s: float | None  # None: off


def _status_line(status: int) -> bytes:
    try:
        phrase = http.HTTPStatus(status).phrase.encode()
    except ValueError:
        phrase = b""
    return b"HTTP/1.1 %d %s\r\n" % (status, phrase)


class EventConnection(asyncio.Protocol):
    __slots__ = (
        "_disconnected",
        "_expiry",
        "_head_sent",
        "_hub",
        "_options",
        "_paused",
        "_pending",
        "_pending_bytes",
        "_received",
        "_server_state",
        "_task",
        "_timer",
        "_transport",
        "_writable",
        "drop_reason",
        "filter",
        "id",
    )

    def __init__(self, transport: asyncio.Transport, server_state: Any, options: LeanOptions):
        self._transport = transport
        # uvicorn's ServerState: its `connections` set counts this connection against
        # GATEWAY_MAX_CONNECTIONS and lets a graceful shutdown end it.
        self._server_state = server_state
        self._options = options
        self._hub: Hub | None = None
        self._task: asyncio.Task[None] | None = None
        self._head_sent = False
        self._received = False
        self._paused = False
        # Events held while the socket is paused (allocated only then).
        self._pending: deque[Event] | None = None
        self._pending_bytes = 0
        self._timer: asyncio.TimerHandle | None = None  # send timeout or cut
        self._expiry: asyncio.TimerHandle | None = None
        self._writable: asyncio.Future[None] | None = None  # the setup task awaits it
        self._disconnected: asyncio.Future[None] | None = None
        self.id = ""
        self.filter = ALL
        self.drop_reason: str | None = None

    # -- the request: the app runs once, in a task that ends with the catch-up --------

    def start(self, app: ASGIApp, scope: dict[str, Any]) -> None:
        scope["extensions"] = {LEAN_EXTENSION: self}
        self._task = asyncio.get_running_loop().create_task(self._run(app, scope))

    async def _run(self, app: ASGIApp, scope: dict[str, Any]) -> None:
        try:
            await app(scope, self._receive, self._send)
        except asyncio.CancelledError:
            return  # the client went away or the server is stopping
        except ConnectionError:
            return  # closed while the catch-up was being written
        except Exception:
            log.exception("event stream request failed", extra={"client_id": self.id or None})
            if not self._head_sent and not self._transport.is_closing():
                self._transport.write(
                    _status_line(500) + b"content-length: 0\r\nconnection: close\r\n\r\n"
                )
        finally:
            self._task = None
        if self._hub is None:  # not streaming (an error answer, a refusal): done
            self._close()

    async def _receive(self) -> dict[str, Any]:
        if not self._received:
            self._received = True
            return {"type": "http.request", "body": b"", "more_body": False}
        if self._disconnected is None:
            self._disconnected = asyncio.get_running_loop().create_future()
        if not self._transport.is_closing():
            await self._disconnected
        return {"type": "http.disconnect"}

    async def _send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            if self._head_sent:
                raise RuntimeError("response already started")
            self._head_sent = True
            lines = [_status_line(message["status"])]
            headers = [*self._server_state.default_headers, *message.get("headers", [])]
            for name, value in headers:
                if name.lower() != b"connection":
                    lines.append(b"%s: %s\r\n" % (name, value))
            lines.append(b"connection: close\r\n\r\n")
            await self.write(b"".join(lines))
        elif message["type"] == "http.response.body":
            body = message.get("body", b"")
            if body:
                await self.write(body)
            if not message.get("more_body", False):
                self._close()

    async def write(self, data: bytes) -> None:
        """Write during the request (headers, catch-up), waiting while the socket is paused."""
        while self._paused and self.drop_reason is None and not self._transport.is_closing():
            if self._writable is None:
                self._writable = asyncio.get_running_loop().create_future()
            await self._writable
        if self.drop_reason is not None or self._transport.is_closing():
            raise ConnectionResetError("the event stream connection is closing")
        self._transport.write(data)

    # -- the stream: a hub subscriber -------------------------------------------------

    def subscriber(self, hub: Hub, client_id: str, event_filter: EventFilter) -> EventConnection:
        """This connection, ready to be registered in `hub` as `client_id`."""
        self._hub, self.id, self.filter = hub, client_id, event_filter
        return self

    def stream(self, backlog: list[Event], expires_at: datetime | None) -> None:
        """Registered: write the backlog; from now on the hub writes (no await here)."""
        for event in backlog:
            if not self.offer(event):
                self._drop("client too slow: queue full")
                return
        if expires_at is not None and self.drop_reason is None:
            delay = expiry_delay_s(expires_at)
            self._expiry = asyncio.get_running_loop().call_later(delay, self._expire)

    def offer(self, event: Event) -> bool:
        if self.drop_reason is not None:
            return True  # ending: nothing more goes out
        if not self._paused:
            self._transport.write(event.wire)
            assert self._hub is not None
            self._hub.stats.events_sent[event.event] += 1
            return True
        pending = self._pending
        if pending is None:
            pending = self._pending = deque()
        size = len(event.wire)
        if len(pending) >= self._queue_limit() or (
            pending and self._pending_bytes + size > self._queue_max_bytes()
        ):
            return False
        pending.append(event)
        self._pending_bytes += size
        return True

    def _queue_limit(self) -> int:
        return self._hub.client_queue_size if self._hub is not None else 0

    def _queue_max_bytes(self) -> int:
        return self._hub.client_queue_max_bytes if self._hub is not None else 0

    def end(self, reason: str, last: Event | None = None) -> None:
        """Discard what is queued and end the stream (after `last`, when given)."""
        if self.drop_reason is not None:
            return
        self.drop_reason = reason
        self._pending, self._pending_bytes = None, 0
        self._cancel_expiry()
        if last is not None and not self._transport.is_closing():
            self._transport.write(last.wire)
        self._close()

    def _drop(self, reason: str) -> None:
        if self._hub is not None:
            self._hub.drop(self, reason)  # unregisters, counts, logs, then end()s
        self.end(reason)

    def _expire(self) -> None:
        self._expiry = None
        if self.drop_reason is not None:
            return
        if self._hub is not None:
            self._hub.unsubscribe(self)
        self.end("session expired", session_expired_event())

    # -- the socket -------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        pass  # an SSE client has nothing more to say; a body or pipelined request is ignored

    def pause_writing(self) -> None:
        self._paused = True
        timeout = self._options.send_timeout_s
        if timeout is not None and self._timer is None and self.drop_reason is None:
            self._timer = asyncio.get_running_loop().call_later(timeout, self._send_timed_out)

    def resume_writing(self) -> None:
        self._paused = False
        if self._timer is not None and self.drop_reason is None:
            self._timer.cancel()
            self._timer = None
        pending = self._pending
        while pending and not self._paused:
            event = pending.popleft()
            self._pending_bytes -= len(event.wire)
            self._transport.write(event.wire)
            if self._hub is not None:
                self._hub.stats.events_sent[event.event] += 1
        if not pending:
            self._pending = None
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None

    def _send_timed_out(self) -> None:
        self._timer = None
        log.warning(
            "SSE send timed out; closing the connection",
            extra={"client_id": self.id or None, "timeout_s": self._options.send_timeout_s},
        )
        self._abort("send timed out")

    def shutdown(self) -> None:
        """uvicorn's graceful shutdown (after the hub was closed): end what is left."""
        if self._task is not None:
            self._task.cancel()
        self.end("server shutting down")

    def connection_lost(self, exc: Exception | None) -> None:
        self._server_state.connections.discard(self)
        if self._hub is not None:
            self._hub.unsubscribe(self)
        self.drop_reason = self.drop_reason or "client disconnected"
        self._pending = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._cancel_expiry()
        if self._task is not None:
            self._task.cancel()
        for future in (self._writable, self._disconnected):
            if future is not None and not future.done():
                future.set_result(None)

    def _close(self) -> None:
        """Close once what is buffered is sent; cut if the peer does not read it in time."""
        transport = self._transport
        if transport.is_closing():
            return
        transport.close()
        if transport.get_write_buffer_size():
            if self._timer is not None:
                self._timer.cancel()
            self._timer = asyncio.get_running_loop().call_later(
                self._options.drop_grace_s, self._abort, f"stuck after {self.drop_reason}"
            )

    def _abort(self, reason: str) -> None:
        self._timer = None
        if self._hub is not None:
            self._hub.unsubscribe(self)
        log.info("SSE connection cut", extra={"client_id": self.id or None, "reason": reason})
        self._transport.abort()

    def _cancel_expiry(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
