"""HTTP ingest in the ETL process: its own token, 413, 422 naming the field, idempotent."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from services.demo.generator import make_raw_execution
from services.etl.stage1.http_ingest import ingest_app

TOKEN = "ingest-secret"
LIMIT = 200_000


@pytest.fixture
async def http(db_pool: asyncpg.Pool) -> AsyncIterator[httpx.AsyncClient]:
    app = ingest_app(db_pool, TOKEN, LIMIT, lambda: {"up": False, "error": "refused"})
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://etl",
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as client:
        yield client


async def test_a_raw_execution_is_stored_once(
    http: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    body = json.dumps(make_raw_execution(31, scenario="smoke"))
    first = await http.post("/ingest", content=body)
    assert (first.status_code, first.json()) == (200, {"execution_id": 31, "stored": True})
    again = await http.post("/ingest", content=body)
    assert (again.status_code, again.json()) == (200, {"execution_id": 31, "stored": False})
    assert await db_pool.fetchval("SELECT count(*) FROM stage2_jobs WHERE execution_id = 31") == 1


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}]
)
async def test_the_ingest_token_is_required(
    http: httpx.AsyncClient, db_pool: asyncpg.Pool, headers: dict[str, str]
) -> None:
    http.headers.pop("Authorization")
    response = await http.post("/ingest", content=b"{}", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert await db_pool.fetchval("SELECT count(*) FROM rejected_inputs") == 0


async def test_too_large_is_413_before_anything_is_stored(
    http: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    big = json.dumps(make_raw_execution(32, image_bytes=LIMIT * 2))
    response = await http.post("/ingest", content=big)
    assert response.status_code == 413
    assert "over the limit of 200000 bytes (INGEST_MAX_BYTES)" in response.json()["detail"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while reading
        for start in range(0, len(big), 65536):
            yield big[start : start + 65536].encode()

    streamed = await http.post("/ingest", content=chunks())
    assert streamed.status_code == 413
    assert await db_pool.fetchval("SELECT count(*) FROM executions") == 0


async def test_bad_input_is_422_naming_the_field_and_recorded(
    http: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    raw = make_raw_execution(33)
    raw["metadata"]["camera_type"] = "webcam"
    response = await http.post("/ingest", content=json.dumps(raw))
    assert response.status_code == 422
    assert response.json()["detail"].startswith(
        "malformed raw execution: metadata.camera_type: Input should be 'rtsp', 'usb' or 'ip'"
    )
    not_json = await http.post("/ingest", content=b"{nope")
    assert not_json.status_code == 422
    rejected = await db_pool.fetch("SELECT source, error FROM rejected_inputs ORDER BY id")
    assert [r["source"] for r in rejected] == ["http", "http"]
    assert rejected[0]["error"] == response.json()["detail"]


async def test_health_reports_the_n8n_source(http: httpx.AsyncClient) -> None:
    response = await http.get("/health")
    assert response.status_code == 503
    assert response.json() == {
        "database": "up",
        "n8n": {"up": False, "error": "refused"},
        "status": "degraded",
    }
