"""The first protocol of every gateway connection: the event stream below uvicorn, the rest to it.

uvicorn costs ~8.5 KiB per connection above a bare `asyncio.Protocol`, and a
task-per-stream ASGI response ~10 more (docs/GATEWAY.md "Cost per connection"). So
on one port:

- `FrontProtocol` reads the start of each new connection. A request line that is
  not `GET /api/events` is handed to uvicorn's protocol (`EventAwareHttpProtocol`,
  uvicorn's httptools protocol with the head bounds of http_limits.py) with the
  bytes read so far: REST, auth and the page stay on FastAPI, untouched.
- `GET /api/events` is parsed here (httptools, the same head bounds: 431 past
  `GATEWAY_MAX_HEAD_BYTES`, 408 past `GATEWAY_HEAD_TIMEOUT_S`) and the connection
  becomes an `EventConnection` (event_connection.py): the app's own route answers
  it once, then the hub writes to the socket directly.
- A keep-alive connection that uvicorn served REST requests on and then carries
  `GET /api/events` (a browser reusing its connection) is handed back here
  between two requests, so it gets the lean stream too.

uvicorn is told to use `FrontProtocol` as its HTTP protocol class (`Config(http=…)`),
so it still owns the listening sockets, start-up, `limit_concurrency`, the date
header and graceful shutdown; this module relies on its protocol constructor
`(config, server_state, app_state, _loop)`, `ServerState.connections/tasks`, and
the keep-alive/cycle attributes of `HttpToolsProtocol` —
tests/gateway/test_front.py fails when an uvicorn upgrade changes them.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from typing import Any, ClassVar

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.flow_control import service_unavailable
from uvicorn.protocols.utils import get_local_addr, get_remote_addr, is_ssl

from services.gateway.event_connection import EventConnection, LeanOptions
from services.gateway.http_limits import BoundedHttpToolsProtocol, limit_options, refuse
from shared.settings import GatewaySettings

log = logging.getLogger("uvicorn.error")

EVENTS_REQUEST = b"GET /api/events"


def is_events_request(data: bytes) -> bool | None:
    """True: `GET /api/events` (or with a query); False: anything else; None: too short to say."""
    known = data[: len(EVENTS_REQUEST)]
    if not EVENTS_REQUEST.startswith(known):
        return False
    if len(data) <= len(EVENTS_REQUEST):
        return None
    return data[len(EVENTS_REQUEST)] in b" ?"


class FrontProtocol(asyncio.Protocol):
    """Routes a new connection by its request line (see the module docstring)."""

    # Set on the subclass that front_protocol() builds.
    http_class: ClassVar[type[EventAwareHttpProtocol]]
    options: ClassVar[LeanOptions]

    __slots__ = (
        "_app_state",
        "_buffer",
        "_config",
        "_discarding",
        "_headers",
        "_headers_done",
        "_loop",
        "_parser",
        "_server_state",
        "_started",
        "_timer",
        "_transport",
        "_url",
    )

    def __init__(
        self,
        config: Config,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._config = config
        self._server_state = server_state
        self._app_state = app_state
        self._loop = _loop or asyncio.get_event_loop()
        self._transport: asyncio.Transport | None = None
        self._buffer = b""
        self._parser: httptools.HttpRequestParser | None = None
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._headers_done = False
        self._discarding = False
        self._started = 0.0
        self._timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._server_state.connections.add(self)
        self._started = self._loop.time()
        self._timer = self._loop.call_later(self.http_class.head_timeout_s, self._timed_out)

    def data_received(self, data: bytes) -> None:
        if self._discarding:
            return
        self._buffer += data
        if self._parser is None:
            events = is_events_request(self._buffer)
            if events is None:
                return
            if not events:
                self._hand_over()
                return
            self._parser = httptools.HttpRequestParser(self)
            data = self._buffer
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass  # an Upgrade header: this is a plain GET all the same
        except httptools.HttpParserError:
            self._refuse(400)
            return
        if self._headers_done:
            self._start_events()
        elif len(self._buffer) > self.http_class.max_head_bytes:
            self._refuse(431)

    def eof_received(self) -> bool | None:
        if self._discarding and self._transport is not None:
            self._transport.close()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._server_state.connections.discard(self)
        self._cancel_timer()

    def shutdown(self) -> None:
        """uvicorn's graceful shutdown: a connection still sending its head is closed."""
        if self._transport is not None:
            self._transport.close()

    # -- httptools callbacks ---------------------------------------------------------

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self._headers_done = True

    # -- outcomes ----------------------------------------------------------------------

    def _hand_over(self) -> None:
        """Not the event stream: uvicorn's protocol takes the connection as it is."""
        self._cancel_timer()
        transport = self._transport
        assert transport is not None
        protocol = self.http_class(
            config=self._config,
            server_state=self._server_state,
            app_state=self._app_state,
            _loop=self._loop,
        )
        self._server_state.connections.discard(self)
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        protocol.continue_head(self._started)
        protocol.data_received(self._buffer)

    def _start_events(self) -> None:
        self._cancel_timer()
        transport = self._transport
        parser = self._parser
        assert transport is not None and parser is not None
        connections = self._server_state.connections
        limit = self._config.limit_concurrency
        if limit is not None and (
            len(connections) >= limit or len(self._server_state.tasks) >= limit
        ):
            log.warning("Exceeded concurrency limit.")
            app: Any = service_unavailable
        else:
            app = self._config.loaded_app
        scope = self._scope(transport, parser)
        self._parser = None  # it refers back to this object
        connection = EventConnection(transport, self._server_state, self.options)
        connections.discard(self)
        connections.add(connection)
        transport.set_protocol(connection)
        connection.start(app, scope)

    def _scope(
        self, transport: asyncio.Transport, parser: httptools.HttpRequestParser
    ) -> dict[str, Any]:
        """The ASGI scope uvicorn would build for this request (httptools_impl.py)."""
        url = httptools.parse_url(self._url)
        raw_path: bytes = url.path
        path = raw_path.decode("ascii")
        if "%" in path:
            path = urllib.parse.unquote(path)
        root_path = self._config.root_path
        http_version = parser.get_http_version()
        return {
            "type": "http",
            "asgi": {"version": self._config.asgi_version, "spec_version": "2.3"},
            "http_version": http_version if http_version in ("1.0", "1.1") else "1.1",
            "server": get_local_addr(transport),
            "client": get_remote_addr(transport),
            "scheme": "https" if is_ssl(transport) else "http",
            "method": parser.get_method().decode("ascii"),
            "root_path": root_path,
            "path": root_path + path,
            "raw_path": root_path.encode("ascii") + raw_path,
            "query_string": url.query or b"",
            "headers": self._headers,
            "state": self._app_state.copy(),
        }

    def _timed_out(self) -> None:
        self._timer = None
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if self._buffer:
            self._refuse(408)
        else:
            transport.close()

    def _refuse(self, status: int) -> None:
        self._cancel_timer()
        self._parser = None
        assert self._transport is not None
        self._discarding = refuse(self._transport, self._loop, status, log)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class EventAwareHttpProtocol(BoundedHttpToolsProtocol):
    """uvicorn's protocol (with the head bounds) that hands a keep-alive connection
    back to the front protocol when its next request is `GET /api/events`."""

    front_class: ClassVar[type[FrontProtocol]]
    _in_message = False

    def on_message_begin(self) -> None:
        self._in_message = True
        super().on_message_begin()

    def on_message_complete(self) -> None:
        self._in_message = False
        super().on_message_complete()

    def data_received(self, data: bytes) -> None:
        if self._between_requests() and is_events_request(data) is not False:
            self._hand_back(data)
            return
        super().data_received(data)

    def _between_requests(self) -> bool:
        """Idle keep-alive: no request being read, answered or queued."""
        cycle = self.cycle
        return (
            not self._in_message
            and not self._discarding
            and not self.pipeline
            and (cycle is None or cycle.response_complete)
            and self.transport is not None
            and not self.transport.is_closing()
        )

    def _hand_back(self, data: bytes) -> None:
        self._end_head()
        self._unset_keepalive_if_required()
        self.connections.discard(self)
        front = self.front_class(
            config=self.config,
            server_state=self.server_state,
            app_state=self.app_state,
            _loop=self.loop,
        )
        transport = self.transport
        transport.set_protocol(front)
        front.connection_made(transport)
        front.data_received(data)


def front_protocol(settings: GatewaySettings) -> type[FrontProtocol]:
    """The protocol class to give uvicorn (`Config(http=…)`), wired to these settings.

    A class, not an instance: uvicorn calls it once per connection.
    """
    http_class: type[EventAwareHttpProtocol] = type(
        "EventAwareHttpProtocol",
        (EventAwareHttpProtocol,),
        {
            "max_head_bytes": settings.gateway_max_head_bytes,
            "head_timeout_s": settings.gateway_head_timeout_s,
        },
    )
    options = LeanOptions(
        drop_grace_s=settings.client_drop_grace_s,
        send_timeout_s=settings.sse_send_timeout_s or None,
    )
    front = type(
        "FrontProtocol",
        (FrontProtocol,),
        # No __dict__ per connection: the slots are all it holds.
        {"__slots__": (), "http_class": http_class, "options": options},
    )
    http_class.front_class = front
    return front


def uvicorn_options(settings: GatewaySettings) -> dict[str, Any]:
    """uvicorn.Config keyword arguments: this protocol and the limits (per worker process)."""
    return {"http": front_protocol(settings), **limit_options(settings)}
