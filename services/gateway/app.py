"""The gateway application: `create_app(settings)` wires resources, routes and the lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import asyncpg
from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.routing import Route

from services.gateway.auth import Authenticator, public
from services.gateway.auth import routes as auth_routes
from services.gateway.auth.headers import SecurityHeaders
from services.gateway.consumer import StreamLog
from services.gateway.deadline import RequestDeadline, database_unavailable_response
from services.gateway.deps import Resources
from services.gateway.hub import Hub, send_heartbeats
from services.gateway.metrics import build_registry
from services.gateway.pages import render_page
from services.gateway.routes import events, executions, export, health, stats, triage
from services.gateway.stats import compact_periodically
from shared.bus import Bus
from shared.db import create_pool, migrate_when_reachable
from shared.settings import GatewaySettings

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"


def _lifespan(resources: Resources) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    settings = resources.settings

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        warn_when_open(app.state.authenticator)
        timeout = settings.gateway_startup_timeout_s
        await migrate_when_reachable(settings.database_url, give_up_after_s=timeout)
        resources.pool = await create_pool(
            settings.database_url,
            settings.db_pool_min,
            settings.db_pool_max,
            command_timeout=settings.gateway_db_timeout_s,
            connect_timeout=settings.gateway_db_timeout_s,
        )
        bus = Bus.for_settings(settings)
        stream_log = StreamLog(bus, resources.hub, settings.replay_buffer_size, pool=resources.pool)
        background: list[asyncio.Task[None]] = []
        try:
            await bus.connect(retry_for_s=timeout)
            resources.bus = bus
            start = await stream_log.start()
            # Serve once the ring holds the recent past: resumers after a restart
            # are then answered from memory, not by a reader each.
            await stream_log.wait_ready(max(timeout, 5.0))
            resources.stream_log = stream_log
            background += [
                asyncio.create_task(send_heartbeats(resources.hub, settings.heartbeat_interval_s)),
                asyncio.create_task(compact_periodically(resources.pool)),
            ]
            for hook in resources.after_startup:
                hook()
            log.info(
                "gateway ready",
                extra={
                    "stream": bus.stream_name,
                    "read_from": start,
                    "head_offset": resources.hub.head_offset,
                    "url": f"http://{settings.gateway_host}:{settings.gateway_port}/",
                },
            )
            yield
        finally:
            for task in background:
                task.cancel()
            resources.hub.close()
            await stream_log.stop()
            await bus.close()
            await resources.pool.close()
            await app.state.authenticator.aclose()

    return lifespan


def warn_when_open(authenticator: Authenticator) -> None:
    """One loud line at start-up when anyone who reaches the port can use the API."""
    if authenticator.enabled:
        log.info("gateway auth", extra={"auth_mode": authenticator.mode})
        return
    log.warning(
        "AUTH IS OFF: anyone who can reach this gateway can read and change everything "
        "(set GATEWAY_TOKEN or OIDC_ISSUER; docs/AUTH.md)",
        extra={"auth_mode": authenticator.mode},
    )


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # A lost or stalled database connection is an outage to report (503), not a
    # server bug (500). TimeoutError: a statement past GATEWAY_DB_TIMEOUT_S.
    log.warning("database unavailable", extra={"path": request.url.path, "error": repr(exc)})
    return database_unavailable_response()


def create_app(settings: GatewaySettings, *, static_dir: Path = STATIC_DIR) -> FastAPI:
    """The app; `static_dir` holds the dashboard (index.html is served at `/`)."""
    hub = Hub(
        replay_size=settings.replay_buffer_size,
        client_queue_size=settings.client_queue_size,
        replay_max_bytes=settings.replay_buffer_max_bytes,
        client_queue_max_bytes=settings.client_queue_max_bytes,
    )
    resources = Resources(settings=settings, hub=hub)
    app = FastAPI(title="smokesignal gateway", lifespan=_lifespan(resources))
    app.state.resources = resources
    app.state.authenticator = Authenticator(settings, pool=lambda: resources.pool)
    app.state.registry = build_registry(hub)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
        )
    app.add_middleware(SecurityHeaders)
    app.add_middleware(
        RequestDeadline,
        timeout_s=settings.gateway_request_timeout_s,
        prefix="/api/",
        exclude=frozenset({"/api/events"}),
    )
    app.add_exception_handler(ConnectionError, _database_unavailable)
    app.add_exception_handler(TimeoutError, _database_unavailable)
    app.add_exception_handler(asyncpg.PostgresConnectionError, _database_unavailable)
    app.add_exception_handler(asyncpg.InterfaceError, _database_unavailable)
    app.include_router(health.router)
    app.include_router(auth_routes.router)
    # A plain ASGI route (a Route whose endpoint is an ASGI app): see routes/events.py.
    # First in the router: every SSE connection is routed once, and matching it
    # against the routes before it cost more than the rest of its set-up.
    app.router.routes.insert(0, Route(events.PATH, events.EventsEndpoint(), methods=["GET"]))
    app.include_router(triage.router)  # before executions: /executions/bulk/… routes
    app.include_router(executions.router)
    app.include_router(stats.router)
    app.include_router(export.router)

    def page(name: str) -> HTMLResponse:
        html = render_page(static_dir, name)
        if html is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "dashboard page missing")
        return HTMLResponse(html)

    @app.get("/", include_in_schema=False, dependencies=[Depends(public)])
    async def dashboard() -> HTMLResponse:
        return page("index.html")

    @app.get("/stats", include_in_schema=False, dependencies=[Depends(public)])
    async def statistics_page() -> HTMLResponse:
        return page("stats.html")

    app.mount("/static", StaticFiles(directory=static_dir, check_dir=False), name="static")
    return app
