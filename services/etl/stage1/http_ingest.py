"""HTTP ingest for producers other than n8n, served by the ETL (the service that owns Stage 1).

`POST /ingest` with a raw execution (the JSON of docs/ETL.md) and
`Authorization: Bearer $INGEST_TOKEN` (its own token, not the gateway's).
Same validation as the CLI; 413 above INGEST_MAX_BYTES (checked before the
body is read when Content-Length says so, and while reading otherwise); 422
naming the field; idempotent on the execution id (a repeat answers 200 with
`"stored": false`); 409 when an n8n execution already has that id. `GET /health`
reports the database and the n8n source.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable

import asyncpg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from services.etl.errors import ExecutionIdTaken, MalformedExecution
from services.etl.stage1.ingest import ingest_execution_outcome
from shared.db import ping

log = logging.getLogger(__name__)


class TooLarge(Exception):
    pass


async def read_limited(request: Request, max_bytes: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def ingest_app(
    pool: asyncpg.Pool,
    token: str,
    max_bytes: int,
    n8n_status: Callable[[], dict[str, object]] | None = None,
) -> Starlette:
    expected = f"Bearer {token}".encode()

    async def ingest(request: Request) -> JSONResponse:
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            return JSONResponse(
                {"detail": "missing or wrong ingest token (Authorization: Bearer …)"},
                401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        try:
            body = await read_limited(request, max_bytes)
        except TooLarge:
            return JSONResponse(
                {"detail": f"request body over the limit of {max_bytes} bytes (INGEST_MAX_BYTES)"},
                413,
            )
        try:
            execution_id, stored = await ingest_execution_outcome(pool, body, source="http")
        except ExecutionIdTaken as exc:
            return JSONResponse({"detail": str(exc)}, 409)
        except MalformedExecution as exc:
            return JSONResponse({"detail": str(exc)}, 422)
        return JSONResponse({"execution_id": execution_id, "stored": stored})

    async def health(_request: Request) -> JSONResponse:
        report: dict[str, object] = {}
        try:
            await ping(pool)
            report["database"] = "up"
        except Exception as exc:
            report["database"] = f"down: {type(exc).__name__}"
        healthy = report["database"] == "up"
        if n8n_status is not None:
            n8n = n8n_status()
            report["n8n"] = n8n
            healthy = healthy and n8n.get("up") is True
        report["status"] = "ok" if healthy else "degraded"
        return JSONResponse(report, 200 if healthy else 503)

    return Starlette(
        routes=[
            Route("/ingest", ingest, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
        ]
    )
