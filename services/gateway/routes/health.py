"""Liveness, readiness and Prometheus metrics (public: probes and scrapers sign in to nothing)."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from services.gateway.auth import public
from services.gateway.deps import Resources, ResourcesDep
from shared.db import ping

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"], dependencies=[Depends(public)])

READY_CHECK_TIMEOUT_S = 2.0


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive and serving HTTP."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(resources: ResourcesDep) -> JSONResponse:
    """Ready when the database answers and the broker connection is up (503 otherwise)."""
    checks = {"database": await _database_ok(resources), "broker": _broker_ok(resources)}
    ready = all(checks.values())
    body = {"status": "ready" if ready else "not ready", "checks": checks}
    return JSONResponse(body, status_code=200 if ready else 503)


async def _database_ok(resources: Resources) -> bool:
    if resources.pool is None:
        return False
    try:
        async with asyncio.timeout(READY_CHECK_TIMEOUT_S):
            await ping(resources.pool)
    except Exception as exc:  # any failure means not ready; say why in the log
        log.warning("readiness: database check failed", extra={"error": repr(exc)})
        return False
    return True


def _broker_ok(resources: Resources) -> bool:
    return resources.bus is not None and resources.bus.is_connected


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    registry: CollectorRegistry = request.app.state.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
