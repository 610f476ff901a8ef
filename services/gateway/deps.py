"""FastAPI dependencies: the process-wide resources and the API token check."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated

import asyncpg
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.gateway.hub import Hub
from shared.bus import Bus
from shared.settings import GatewaySettings


@dataclass
class Resources:
    """What the lifespan opens; routes reach it through the dependencies below."""

    settings: GatewaySettings
    hub: Hub
    pool: asyncpg.Pool | None = None
    bus: Bus | None = None
    # Called once start-up is done (python -m services.gateway tunes the GC there).
    after_startup: list[Callable[[], None]] = field(default_factory=list)


def get_resources(request: Request) -> Resources:
    resources: Resources = request.app.state.resources
    return resources


def get_settings(resources: Annotated[Resources, Depends(get_resources)]) -> GatewaySettings:
    return resources.settings


def get_hub(resources: Annotated[Resources, Depends(get_resources)]) -> Hub:
    return resources.hub


def get_pool(resources: Annotated[Resources, Depends(get_resources)]) -> asyncpg.Pool:
    if resources.pool is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "database not connected")
    return resources.pool


_bearer = HTTPBearer(auto_error=False)


def require_token(
    request: Request,
    settings: Annotated[GatewaySettings, Depends(get_settings)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """When GATEWAY_TOKEN is set, /api/* needs it as a bearer token or ?token=.

    The query parameter exists because EventSource and <img> cannot set headers.
    """
    expected = settings.gateway_token
    if expected is None:
        return
    given = credentials.credentials if credentials is not None else None
    if given is None:
        given = request.query_params.get("token")
    if given is None or not secrets.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing or invalid token: send 'Authorization: Bearer <token>' or ?token=<token>",
            headers={"WWW-Authenticate": "Bearer"},
        )


Settings = Annotated[GatewaySettings, Depends(get_settings)]
HubDep = Annotated[Hub, Depends(get_hub)]
Pool = Annotated[asyncpg.Pool, Depends(get_pool)]
ResourcesDep = Annotated[Resources, Depends(get_resources)]
