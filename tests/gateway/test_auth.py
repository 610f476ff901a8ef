"""GATEWAY_TOKEN on and off, and CORS."""

from __future__ import annotations

import json

import httpx
import pytest

from testkit.gateway import Gateway, GatewayFactory
from testkit.sse import SseConnector, close_all

TOKEN = "s3cret-token"
API_PATHS = ["/api/executions", "/api/executions/1", "/api/cameras", "/api/executions/1/image"]


@pytest.fixture
async def secured(gateway_factory: GatewayFactory) -> Gateway:
    return await gateway_factory(gateway_token=TOKEN)


async def test_with_a_token_every_api_request_needs_it(secured: Gateway) -> None:
    async with httpx.AsyncClient(base_url=secured.base_url) as http:
        for path in [*API_PATHS, "/api/events"]:
            for headers, params in [
                ({}, {}),
                ({"Authorization": "Bearer wrong"}, {}),
                ({}, {"token": "wrong"}),
                ({"Authorization": f"Basic {TOKEN}"}, {}),
            ]:
                response = await http.get(path, headers=headers, params=params)
                assert response.status_code == 401, (path, headers, params)
                assert "token" in response.json()["detail"]
                assert response.headers["www-authenticate"] == "Bearer"

        bearer = {"Authorization": f"Bearer {TOKEN}"}
        assert (await http.get("/api/executions", headers=bearer)).status_code == 200
        assert (await http.get("/api/executions", params={"token": TOKEN})).status_code == 200
        assert (await http.get("/api/cameras", params={"token": TOKEN})).status_code == 200
        assert (await http.get("/api/executions/1", headers=bearer)).status_code == 404

        # Health, readiness and metrics stay open for probes and scrapers.
        for path in ("/healthz", "/readyz", "/metrics"):
            assert (await http.get(path)).status_code == 200, path


async def test_event_stream_accepts_the_token_as_a_query_parameter(secured: Gateway) -> None:
    sse = SseConnector(secured.base_url, [])
    try:
        by_query = await sse.open(params={"token": TOKEN})
        assert (await by_query.next()).event == "connection"
        by_header = await sse.open(headers={"Authorization": f"Bearer {TOKEN}"})
        connection = await by_header.next()
        assert json.loads(connection.data)["client_id"]
    finally:
        await close_all(sse)


async def test_without_a_token_the_api_is_open(gateway: Gateway, http: httpx.AsyncClient) -> None:
    assert (await http.get("/api/executions")).status_code == 200
    assert (await http.get("/api/cameras")).status_code == 200
    # A stray token is harmless when auth is off.
    assert (await http.get("/api/executions", params={"token": "x"})).status_code == 200


async def test_cors_allows_only_the_configured_origins(gateway_factory: GatewayFactory) -> None:
    gateway = await gateway_factory(cors_origins=["http://dashboard.example"])
    async with httpx.AsyncClient(base_url=gateway.base_url) as http:
        allowed = await http.get("/api/executions", headers={"Origin": "http://dashboard.example"})
        assert allowed.headers["access-control-allow-origin"] == "http://dashboard.example"
        other = await http.get("/api/executions", headers={"Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        preflight = await http.options(
            "/api/events",
            headers={
                "Origin": "http://dashboard.example",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "last-event-id",
            },
        )
        assert preflight.status_code == 200
        assert "last-event-id" in preflight.headers["access-control-allow-headers"].lower()


def _auth_off_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelname == "WARNING" and "AUTH IS OFF" in r.getMessage()
    ]


async def test_one_loud_warning_at_start_up_when_auth_is_off(
    gateway_factory: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    await gateway_factory(gateway_token=TOKEN)
    assert _auth_off_warnings(caplog) == []
    await gateway_factory()
    assert len(_auth_off_warnings(caplog)) == 1
