"""Issue 19 #6, #7: hostile REST input is a 422, and /openapi.json builds.

Before: `since=0001-01-01T00:00:00+23:59` (or `until=9999-12-31T23:59:59-23:59`)
reached asyncpg and was a 500 (DataError); a cursor that is the base64 of 2,000
nested `[` was a 500 (RecursionError); /openapi.json was a 500 for anyone.
"""

from __future__ import annotations

import base64

import httpx
import pytest

from testkit.gateway import GatewayStarter

HOSTILE_QUERIES = [
    {"since": "0001-01-01T00:00:00+23:59"},
    {"until": "9999-12-31T23:59:59-23:59"},
    {"since": "0001-01-01T00:00:00"},
    {"until": "9999-12-31T23:59:59"},
    {"since": "1969-12-31T23:59:59Z"},
    {"cursor": base64.urlsafe_b64encode(b"[" * 2000).decode()},
    {"cursor": base64.urlsafe_b64encode(b'{"before_id":' * 500).decode()},
    {"cursor": "A" * 10_000},
]


@pytest.fixture
async def http(gateway_process: GatewayStarter) -> httpx.AsyncClient:
    gateway = await gateway_process()
    return httpx.AsyncClient(base_url=gateway.base_url, timeout=30)


@pytest.mark.parametrize("params", HOSTILE_QUERIES, ids=lambda p: f"{p}"[:60])
async def test_out_of_range_times_and_hostile_cursors_are_422_naming_the_parameter(
    http: httpx.AsyncClient, params: dict[str, str]
) -> None:
    async with http:
        response = await http.get("/api/executions", params=params)
        assert response.status_code == 422, response.text
        [name] = params
        assert [e["loc"] for e in response.json()["detail"]] == [["query", name]]
        # The service is unharmed.
        assert (await http.get("/api/executions", params={"since": "2026-01-01T00:00:00Z"})).json()[
            "items"
        ] == []


async def test_openapi_document_builds_and_lists_every_api_route(http: httpx.AsyncClient) -> None:
    async with http:
        response = await http.get("/openapi.json")
        assert response.status_code == 200, response.text[:500]
        document = response.json()
        assert {"/api/executions", "/api/executions/{execution_id}"} <= set(document["paths"])
        if "/api/events" in document["paths"]:  # a FastAPI route in some versions
            events = document["paths"]["/api/events"]["get"]["responses"]["200"]
            assert "text/event-stream" in events["content"]
        assert (await http.get("/docs")).status_code == 200
