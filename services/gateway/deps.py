"""FastAPI dependencies: the process-wide resources (roles: services/gateway/auth/)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated

import asyncpg
from fastapi import Depends, HTTPException, Request, status

from services.gateway.consumer import StreamLog
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
    stream_log: StreamLog | None = None
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


Settings = Annotated[GatewaySettings, Depends(get_settings)]
HubDep = Annotated[Hub, Depends(get_hub)]
Pool = Annotated[asyncpg.Pool, Depends(get_pool)]
ResourcesDep = Annotated[Resources, Depends(get_resources)]
