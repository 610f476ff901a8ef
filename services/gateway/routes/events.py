"""GET /api/events: the Server-Sent Events stream."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query

from services.gateway.auth import require_viewer
from services.gateway.deps import HubDep, Settings
from services.gateway.stream import ClientStreamResponse, client_events

router = APIRouter(prefix="/api", tags=["events"], dependencies=[Depends(require_viewer)])


@router.get("/events", response_class=ClientStreamResponse)
async def stream_events(
    hub: HubDep,
    settings: Settings,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    last_event_id_param: Annotated[str | None, Query(alias="last_event_id")] = None,
) -> ClientStreamResponse:
    """`connection`, then missed events (or `reset`), then live events and `heartbeat`s.

    The header is what EventSource sends on its own reconnects; the query parameter
    lets a page that had to open a new EventSource resume too (it cannot set headers).
    """
    last_event_id = last_event_id or last_event_id_param
    client, backlog = hub.subscribe(last_event_id)
    return ClientStreamResponse(
        hub,
        client,
        client_events(hub, client, backlog, last_event_id),
        drop_grace_s=settings.client_drop_grace_s,
        # 0 / unset = off: the hub's drop + cut handle stuck clients (docs/GATEWAY.md).
        send_timeout=settings.sse_send_timeout_s or None,
    )
