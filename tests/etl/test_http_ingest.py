"""HTTP ingest in the ETL process: its own token, 413, 422 naming the field, 409 for an
n8n execution's id, idempotent."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
import pytest

from services.demo.generator import make_raw_execution
from services.etl import queries
from services.etl.stage1.http_ingest import ingest_app
from testkit.net import free_port
from testkit.processes import ServiceProcess
from testkit.waiting import wait_until

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


async def test_an_id_an_n8n_execution_has_is_409_and_recorded(
    http: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    now = datetime.now(UTC)
    await db_pool.fetchval(
        queries.INSERT_N8N_EXECUTION, 32, "wf", "cam", None, None, "success", now, now, None, "[{}]"
    )
    response = await http.post("/ingest", content=json.dumps(make_raw_execution(32)))
    assert response.status_code == 409
    assert "id 32 is already taken by an n8n execution" in response.json()["detail"]
    assert await db_pool.fetchval("SELECT source FROM rejected_inputs") == "http"


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


async def test_the_etl_worker_serves_ingest_and_runs_stage2_on_it(
    service_env: dict[str, str],
    service_process: Callable[..., ServiceProcess],
    db_pool: asyncpg.Pool,
    tmp_path: Path,
) -> None:
    port = free_port()
    env = {
        **service_env,
        "IMAGE_DIR": str(tmp_path / "images"),
        "INGEST_PORT": str(port),
        "INGEST_TOKEN": TOKEN,
    }
    worker = service_process(["services.etl", "worker"], env, "etl")
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:

        async def healthy() -> bool:
            worker.check_running()
            try:
                return (await client.get("/health")).status_code == 200
            except httpx.HTTPError:
                return False

        await wait_until(healthy, "the ingest endpoint")
        raw = json.dumps(make_raw_execution(41, scenario="fire"))
        response = await client.post(
            "/ingest", content=raw, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert response.json() == {"execution_id": 41, "stored": True}

    async def completed() -> bool:
        stage = await db_pool.fetchval("SELECT processing_stage FROM executions WHERE id = 41")
        return bool(stage == "stage2")

    await wait_until(completed, "Stage 2 of the ingested execution")


async def test_an_ingest_port_without_a_token_is_a_clear_start_up_error(
    service_env: dict[str, str], service_process: Callable[..., ServiceProcess], tmp_path: Path
) -> None:
    env = {**service_env, "IMAGE_DIR": str(tmp_path), "INGEST_PORT": str(free_port())}
    worker = service_process(["services.etl", "worker"], env, "etl")

    async def exited() -> bool:
        return not worker.running

    await wait_until(exited, "the worker to refuse to start")
    assert "INGEST_PORT is set but INGEST_TOKEN is not" in worker.output()
