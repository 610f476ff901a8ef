"""The lean event stream (services/gateway/front.py, event_connection.py) on the app's port.

`GET /api/events` is served below uvicorn (no task, request cycle or queue per
client); everything else reaches uvicorn and FastAPI as before. These tests talk
raw HTTP over a socket so they see which path answered: the lean stream's
response is delimited by the connection's close (`connection: close`, no chunked
framing), uvicorn's streams are chunked. They also guard the uvicorn internals the
front protocol relies on, so an uvicorn upgrade that changes them fails here.
"""

from __future__ import annotations

import asyncio
import inspect

import httpx
import pytest
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from services.gateway.event_connection import EventConnection
from services.gateway.front import FrontProtocol, front_protocol, is_events_request
from shared.bus import Bus
from shared.settings import GatewaySettings
from testkit.factories import stage2_complete
from testkit.gateway import Gateway, GatewayFactory
from testkit.net import read_until_closed
from testkit.waiting import WAIT_S, wait_until

Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _open(gateway: Gateway) -> Stream:
    port = int(gateway.base_url.rsplit(":", 1)[1])
    return await asyncio.open_connection("127.0.0.1", port)


def _request(path: str, *headers: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: test", *headers, "", ""]
    return "\r\n".join(lines).encode()


async def _head(reader: asyncio.StreamReader) -> tuple[str, dict[str, str]]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT_S)
    status, *lines = head.decode().split("\r\n")
    headers = {}
    for line in lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return status, headers


async def _until(reader: asyncio.StreamReader, marker: bytes) -> bytes:
    return await asyncio.wait_for(reader.readuntil(marker), WAIT_S)


def _lean_clients(gateway: Gateway) -> int:
    connections = gateway.server.server_state.connections
    return sum(isinstance(connection, EventConnection) for connection in connections)


def test_request_line_routing() -> None:
    assert is_events_request(b"GET /api/events HTTP/1.1\r\n")
    assert is_events_request(b"GET /api/events?camera=a HTTP/1.1\r\n")
    assert is_events_request(b"GET /api/ev") is None  # wait for more
    assert is_events_request(b"GET /api/events") is None
    assert is_events_request(b"GET /api/executions HTTP/1.1") is False
    assert is_events_request(b"GET /api/eventsx HTTP/1.1") is False
    assert is_events_request(b"POST /api/events HTTP/1.1") is False
    assert is_events_request(b"HEAD /api/events HTTP/1.1") is False


async def test_the_uvicorn_internals_the_front_protocol_relies_on() -> None:
    """Fails when an uvicorn upgrade changes what front.py uses (then adapt front.py)."""
    parameters = list(inspect.signature(HttpToolsProtocol.__init__).parameters)
    assert parameters == ["self", "config", "server_state", "app_state", "_loop"]
    startup = inspect.getsource(uvicorn.Server.startup)
    for argument in ("config=config", "server_state=self.server_state", "app_state="):
        assert argument in startup, argument
    # log_config=None as the gateway does: uvicorn's default would reconfigure this
    # test process's "uvicorn" loggers for every later test in it.
    config = uvicorn.Config(app=lambda: None, http=FrontProtocol, log_config=None)
    config.load()
    assert config.http_protocol_class is FrontProtocol  # a class is used as given
    state = uvicorn.server.ServerState()
    assert isinstance(state.connections, set) and isinstance(state.tasks, set)
    assert isinstance(state.default_headers, list)
    loop = asyncio.get_running_loop()
    protocol = HttpToolsProtocol(config=config, server_state=state, app_state={}, _loop=loop)
    for attribute in ("cycle", "pipeline", "connections", "timeout_keep_alive_task", "parser"):
        assert hasattr(protocol, attribute), attribute
    for method in ("_unset_keepalive_if_required", "on_message_begin", "on_message_complete"):
        assert callable(getattr(protocol, method)), method
    shutdown = inspect.getsource(uvicorn.Server.shutdown)
    assert "connection.shutdown()" in shutdown


async def test_a_new_connection_gets_the_lean_stream_with_the_apps_headers(
    gateway_factory: GatewayFactory, bus: Bus
) -> None:
    gateway = await gateway_factory(cors_origins=["http://dash.example"])
    reader, writer = await _open(gateway)
    writer.write(_request("/api/events", "Origin: http://dash.example"))
    status, headers = await _head(reader)
    assert status == "HTTP/1.1 200 OK"
    assert headers["content-type"].startswith("text/event-stream")
    assert headers["connection"] == "close" and "transfer-encoding" not in headers
    # The app's middleware still shaped the answer: CORS and the security headers.
    assert headers["access-control-allow-origin"] == "http://dash.example"
    assert headers["x-content-type-options"] == "nosniff"
    assert b"event: connection" in await _until(reader, b"\r\n\r\n")
    assert _lean_clients(gateway) == 1

    await bus.publish(stage2_complete(41))
    event = await _until(reader, b"\r\n\r\n")
    assert b"event: etl:stage2:complete" in event and b'"execution_id":41' in event
    writer.close()
    await wait_until(lambda: gateway.hub.client_count == 0, "the hub forgets a closed client")


async def test_lean_clients_cost_no_task(gateway: Gateway) -> None:
    before = len(asyncio.all_tasks())
    streams = [await _open(gateway) for _ in range(20)]
    for reader, writer in streams:
        writer.write(_request("/api/events"))
        await _until(reader, b"event: connection")
    await wait_until(lambda: gateway.hub.client_count == 20, "20 clients registered")
    await wait_until(lambda: len(asyncio.all_tasks()) <= before, "the set-up tasks end")
    for _, writer in streams:
        writer.close()


async def test_a_keep_alive_connection_is_handed_back_for_the_stream(gateway: Gateway) -> None:
    reader, writer = await _open(gateway)
    for _ in range(2):  # uvicorn serves REST on it, keep-alive and all
        writer.write(_request("/healthz"))
        status, headers = await _head(reader)
        assert status == "HTTP/1.1 200 OK"
        await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), WAIT_S)
    writer.write(_request("/api/events"))
    status, headers = await _head(reader)
    assert status == "HTTP/1.1 200 OK" and headers["connection"] == "close"
    assert b"event: connection" in await _until(reader, b"\r\n\r\n")
    assert _lean_clients(gateway) == 1
    writer.close()


async def test_a_request_line_in_pieces_is_routed_once_complete(gateway: Gateway) -> None:
    reader, writer = await _open(gateway)
    for piece in (b"GET /api/ev", b"ents?alert_level=high HTTP/1.1\r\nHo", b"st: t\r\n\r\n"):
        writer.write(piece)
        await writer.drain()
        await asyncio.sleep(0.05)  # separate reads on the server (not a timing assertion)
    status, headers = await _head(reader)
    assert status == "HTTP/1.1 200 OK" and headers["connection"] == "close"
    writer.close()

    reader, writer = await _open(gateway)
    writer.write(b"GET /api/ev")
    await writer.drain()
    await asyncio.sleep(0.05)
    writer.write(b"il HTTP/1.1\r\nHost: t\r\n\r\n")  # not the stream: uvicorn answers
    status, _ = await _head(reader)
    assert status == "HTTP/1.1 404 Not Found"
    writer.close()


@pytest.mark.parametrize(
    ("headers", "status"),
    [((), "401"), (("Authorization: Bearer wrong",), "401")],
)
async def test_auth_and_parameters_are_checked_on_the_lean_path(
    gateway_factory: GatewayFactory, headers: tuple[str, ...], status: str
) -> None:
    gateway = await gateway_factory(gateway_token="s3cret-token")
    reader, writer = await _open(gateway)
    writer.write(_request("/api/events", *headers))
    answer = await read_until_closed(reader)
    assert answer.startswith(f"HTTP/1.1 {status} ".encode()), answer[:200]
    assert b"www-authenticate: bearer" in answer.lower()
    writer.close()

    reader, writer = await _open(gateway)
    writer.write(_request("/api/events?alert_level=loud", "Authorization: Bearer s3cret-token"))
    answer = await read_until_closed(reader)
    assert answer.startswith(b"HTTP/1.1 422 "), answer[:200]
    assert b"alert_level must be one of" in answer
    writer.close()


async def test_head_bounds_hold_on_the_lean_path(gateway_factory: GatewayFactory) -> None:
    gateway = await gateway_factory(gateway_max_head_bytes=4096, gateway_head_timeout_s=1.0)
    reader, writer = await _open(gateway)
    writer.write(b"GET /api/events HTTP/1.1\r\nX-Junk: " + b"a" * 8192)
    assert (await read_until_closed(reader)).startswith(b"HTTP/1.1 431 ")
    writer.close()

    reader, writer = await _open(gateway)
    writer.write(b"GET /api/events HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # never finished
    assert (await read_until_closed(reader)).startswith(b"HTTP/1.1 408 ")
    writer.close()

    reader, writer = await _open(gateway)
    writer.write(b"GET /api/events HTTP/1.1\r\n\x01bad\r\n\r\n")
    assert (await read_until_closed(reader)).startswith(b"HTTP/1.1 400 ")
    writer.close()


async def test_lean_streams_count_against_the_connection_cap(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = await gateway_factory(gateway_max_connections=3)
    held = [await _open(gateway) for _ in range(2)]
    for reader, writer in held:
        writer.write(_request("/api/events"))
        await _until(reader, b"event: connection")
    reader, writer = await _open(gateway)
    writer.write(_request("/api/events"))
    answer = await read_until_closed(reader)
    assert answer.startswith(b"HTTP/1.1 503 ") and answer.endswith(b"Service Unavailable")
    writer.close()
    for _, held_writer in held:
        held_writer.close()


async def test_shutdown_ends_lean_streams(gateway: Gateway) -> None:
    streams = [await _open(gateway) for _ in range(3)]
    for reader, writer in streams:
        writer.write(_request("/api/events"))
        await _until(reader, b"event: connection")
    await gateway.stop()
    for reader, writer in streams:
        await read_until_closed(reader)  # ends: the server closed it
        writer.close()


async def test_rest_is_untouched(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=WAIT_S) as http:
        for _ in range(3):
            assert (await http.get("/healthz")).json() == {"status": "ok"}
        assert (await http.get("/api/executions")).status_code == 200


def test_settings_reach_the_protocol_classes() -> None:
    settings = GatewaySettings(gateway_max_head_bytes=1234, gateway_head_timeout_s=3.5)
    front = front_protocol(settings)
    assert front.http_class.max_head_bytes == 1234
    assert front.http_class.head_timeout_s == 3.5
    assert front.http_class.front_class is front


async def test_a_request_uvicorn_gets_still_streams_through_the_asgi_route(
    gateway: Gateway,
) -> None:
    """`/api/%65vents` is /api/events to the router but not to the front protocol: the
    route's task-per-stream response (stream.py) serves it, chunked, through uvicorn."""
    reader, writer = await _open(gateway)
    writer.write(_request("/api/%65vents"))
    status, headers = await _head(reader)
    assert status == "HTTP/1.1 200 OK"
    assert headers["transfer-encoding"] == "chunked" and _lean_clients(gateway) == 0
    assert b"event: connection" in await _until(reader, b"\r\n\r\n")
    await wait_until(lambda: gateway.hub.client_count == 1, "registered in the hub")
    writer.close()
    await wait_until(lambda: gateway.hub.client_count == 0, "the hub forgets a closed client")


async def test_a_lean_socket_unwritable_past_the_send_timeout_is_closed(
    gateway_factory: GatewayFactory,
) -> None:
    # Queue bounds far away: only SSE_SEND_TIMEOUT_S can end this client.
    gateway = await gateway_factory(
        sse_send_timeout_s=0.3, client_queue_size=1_000_000, client_queue_max_bytes=2**40
    )
    reader, writer = await _open(gateway)  # reads nothing after the connection event
    writer.write(_request("/api/events"))
    await _until(reader, b"event: connection")
    await wait_until(lambda: gateway.hub.client_count == 1, "registered")
    payload = "x" * 200_000
    for _ in range(2000):  # a guard: the socket buffers fill after a few MB
        gateway.hub.publish("execution:batch", payload)
        await asyncio.sleep(0.01)
        if gateway.hub.client_count == 0:
            break
    assert gateway.hub.client_count == 0
    assert gateway.hub.stats.dropped_clients == 0  # closed by the timeout, not the queue
    writer.close()
