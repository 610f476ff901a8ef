"""The HTTP limits of a gateway worker: uvicorn options and a protocol that bounds request heads.

uvicorn with httptools puts no bound on a request head: a client that sends
megabyte header lines, or sends half a head and then waits, holds memory and a
connection for as long as it likes, without a token (auth runs only once the
head is complete). `BoundedHttpToolsProtocol` adds two bounds per connection:

- `GATEWAY_MAX_HEAD_BYTES`: a head that grows past it is answered
  `431 Request Header Fields Too Large` and the connection closed;
- `GATEWAY_HEAD_TIMEOUT_S`: a head not complete that long after the connection
  opened (or after the first byte of a later request on it) is answered
  `408 Request Timeout` (closed silently if nothing was sent).

uvicorn's own `limit_concurrency` (`GATEWAY_MAX_CONNECTIONS`) caps connections
per process with `503 Service Unavailable`, and `timeout_keep_alive`
(`GATEWAY_KEEP_ALIVE_S`) closes idle keep-alive connections.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from shared.settings import GatewaySettings

LINGER_S = 2.0
_REASONS = {
    400: b"Bad Request",
    408: b"Request Timeout",
    431: b"Request Header Fields Too Large",
}


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a byte and a time bound on each request head."""

    # Set by bounded_protocol() on a subclass; these are the defaults of the settings.
    max_head_bytes = 32 * 1024
    head_timeout_s = 10.0

    _head_bytes = 0
    _reading_head = True
    _head_timer: asyncio.TimerHandle | None = None
    _discarding = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head()

    def data_received(self, data: bytes) -> None:
        if self._discarding:  # refused: read and drop until the client closes
            return
        if self._reading_head:
            if self._head_timer is None:  # first byte of a later request on this connection
                self._start_head()
            self._head_bytes += len(data)
        super().data_received(data)
        # Checked after parsing: a small head followed by its body in the same chunk is fine.
        if self._reading_head and self._head_bytes > self.max_head_bytes:
            self._refuse(431)

    def on_headers_complete(self) -> None:
        self._end_head()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # The next request's head: its timer starts at its first byte (until then the
        # connection is idle, which timeout_keep_alive bounds).
        self._reading_head = True
        self._head_bytes = 0

    def eof_received(self) -> None:
        if self._discarding:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._end_head()
        super().connection_lost(exc)

    def _start_head(self) -> None:
        self._reading_head = True
        self._head_bytes = 0
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_timed_out)

    def _end_head(self) -> None:
        self._reading_head = False
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self._reading_head or self.transport.is_closing():
            return
        if self._head_bytes:
            self._refuse(408)
        else:
            self.transport.close()

    def _refuse(self, status: int) -> None:
        self._end_head()
        self._discarding = refuse(self.transport, self.loop, status, self.logger)

    def continue_head(self, started_at: float) -> None:
        """Count the head's time from `started_at` (a connection taken over from the
        front protocol, services/gateway/front.py, which read its first bytes)."""
        if self._head_timer is None:
            return
        self._head_timer.cancel()
        remaining = max(0.0, self.head_timeout_s - (self.loop.time() - started_at))
        self._head_timer = self.loop.call_later(remaining, self._head_timed_out)


def refuse(
    transport: asyncio.Transport,
    loop: asyncio.AbstractEventLoop,
    status: int,
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger],
) -> bool:
    """Answer `status` (408/431/400) and close lingeringly; True once the caller must
    discard what the client still sends."""
    if transport.is_closing():
        return False
    reason = _REASONS[status]
    logger.warning("refused request head: %s", reason.decode(), extra={"status": status})
    transport.write(
        b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (status, reason, len(reason), reason)
    )
    # A lingering close: closing with the client's unread bytes in the socket
    # makes the kernel send a reset, which can destroy the answer before the
    # client reads it. So: FIN after the answer, drop what still comes, close
    # when the client does (or after LINGER_S).
    if transport.can_write_eof():
        transport.write_eof()
    loop.call_later(LINGER_S, transport.close)
    return True


def limit_options(settings: GatewaySettings) -> dict[str, Any]:
    """uvicorn.Config keyword arguments for the connection limits (per worker process);
    the head bounds come with the protocol class (services/gateway/front.py)."""
    return {
        "limit_concurrency": settings.gateway_max_connections,
        "timeout_keep_alive": settings.gateway_keep_alive_s,
    }
