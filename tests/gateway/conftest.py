"""Gateway fixtures: the real app under uvicorn on a free port, and an SSE reader."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from httpx_sse import EventSource, ServerSentEvent, aconnect_sse

from services.gateway.app import create_app
from services.gateway.hub import Hub
from shared.settings import GatewaySettings

WAIT_S = 30.0  # deadlock guard for anything the tests wait for


@dataclass
class Gateway:
    base_url: str
    settings: GatewaySettings
    server: uvicorn.Server
    task: asyncio.Task[None]

    @property
    def hub(self) -> Hub:
        hub: Hub = self.server.config.app.state.resources.hub  # type: ignore[union-attr]
        return hub

    async def stop(self) -> None:
        if not self.task.done():
            self.server.should_exit = True
            await asyncio.wait_for(self.task, WAIT_S)


async def start_gateway(settings: GatewaySettings, static_dir: Path | None = None) -> Gateway:
    app = (
        create_app(settings) if static_dir is None else create_app(settings, static_dir=static_dir)
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_config=None, lifespan="on", timeout_graceful_shutdown=2, access_log=False
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while not server.started:
        if task.done():
            task.result()  # startup failed: raise its error
            raise RuntimeError("gateway exited during startup")
        if loop.time() > deadline:
            raise TimeoutError("gateway did not start")
        await asyncio.sleep(0.02)
    return Gateway(f"http://127.0.0.1:{port}", settings, server, task)


GatewayFactory = Callable[..., Awaitable[Gateway]]


@pytest.fixture
async def gateway_factory(
    database_url: str, amqp_url: str, exchange_name: str, tmp_path: Path
) -> AsyncIterator[GatewayFactory]:
    """Factory: await gateway_factory(**GatewaySettings overrides) -> running Gateway."""
    started: list[Gateway] = []

    async def make(static_dir: Path | None = None, **overrides: Any) -> Gateway:
        values: dict[str, Any] = {
            "database_url": database_url,
            "amqp_url": amqp_url,
            "exchange_name": exchange_name,
            "image_dir": tmp_path / "images",
            "heartbeat_interval_s": 60.0,
            "gateway_token": None,
            "cors_origins": [],
            "gateway_startup_timeout_s": 5.0,
        }
        values.update(overrides)
        gateway = await start_gateway(GatewaySettings(**values), static_dir)
        started.append(gateway)
        return gateway

    yield make
    for gateway in started:
        await gateway.stop()


@pytest.fixture
async def gateway(gateway_factory: GatewayFactory) -> Gateway:
    return await gateway_factory()


@pytest.fixture
async def http(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=WAIT_S) as client:
        yield client


class SseReader:
    """Reads one SSE connection event by event (heartbeats skipped unless asked for)."""

    def __init__(self, source: EventSource) -> None:
        self.source = source
        self.response = source.response
        self._events = source.aiter_sse()

    async def next(self, *, skip_heartbeats: bool = True) -> ServerSentEvent:
        while True:
            event = await asyncio.wait_for(anext(self._events), WAIT_S)
            if skip_heartbeats and event.event == "heartbeat":
                continue
            return event

    async def next_json(self) -> tuple[ServerSentEvent, Any]:
        event = await self.next()
        return event, json.loads(event.data)


@dataclass
class SseConnector:
    base_url: str
    stack: list[Any]

    async def connect(
        self,
        *,
        last_event_id: str | None = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> SseReader:
        """Open /api/events and return a reader already past the `connection` event."""
        reader = await self.open(
            last_event_id=last_event_id, params=params, headers=headers, transport=transport
        )
        first = await reader.next()
        assert first.event == "connection", first
        return reader

    async def open(
        self,
        *,
        last_event_id: str | None = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> SseReader:
        all_headers = dict(headers or {})
        if last_event_id is not None:
            all_headers["Last-Event-ID"] = last_event_id
        client = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(WAIT_S, read=None),
            transport=transport,
        )
        self.stack.append(client)
        context = aconnect_sse(client, "GET", "/api/events", params=params, headers=all_headers)
        source = await context.__aenter__()
        self.stack.append(context)
        return SseReader(source)


@pytest.fixture
async def sse(gateway: Gateway) -> AsyncIterator[SseConnector]:
    connector = SseConnector(gateway.base_url, [])
    yield connector
    await close_all(connector)


async def close_all(connector: SseConnector) -> None:
    for item in reversed(connector.stack):
        if isinstance(item, httpx.AsyncClient):
            await item.aclose()
        else:
            # The server may already have closed this stream.
            with contextlib.suppress(httpx.HTTPError, RuntimeError):
                await item.__aexit__(None, None, None)
    connector.stack.clear()


async def wait_until(predicate: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)
