"""Gateway fixtures: the real app under uvicorn on a free port, and SSE connections to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.settings import GatewaySettings
from testkit.gateway import Gateway, GatewayFactory, start_gateway
from testkit.sse import SseConnector, SseFactory, close_all
from testkit.waiting import WAIT_S


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


@pytest.fixture
async def sse_to() -> AsyncIterator[SseFactory]:
    """Factory: SSE connections to a gateway the test started itself, closed at teardown."""
    connectors: list[SseConnector] = []

    def make(gateway: Gateway) -> SseConnector:
        connectors.append(SseConnector(gateway.base_url, []))
        return connectors[-1]

    yield make
    for connector in connectors:
        await close_all(connector)


@pytest.fixture
def sse(gateway: Gateway, sse_to: SseFactory) -> SseConnector:
    return sse_to(gateway)
