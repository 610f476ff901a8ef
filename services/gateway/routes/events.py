"""GET /api/events: the Server-Sent Events stream, optionally filtered."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query

from services.gateway.auth import require_viewer
from services.gateway.consumer import StreamLog, Unresumable
from services.gateway.deps import HubDep, ResourcesDep, Settings
from services.gateway.event_filters import ALL, EventFilter, project
from services.gateway.hub import Event, Hub, MalformedId, Position, Where, parse_event_id
from services.gateway.stream import EventStreamResponse, connection_event, live_events
from shared.contracts import AlertLevel

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api", tags=["events"], dependencies=[Depends(require_viewer)])

# A Last-Event-ID this process has not read yet (sent by a replica ahead of it)
# is waited for this long before it counts as unknown.
RESUME_WAIT_S = 2.0

# A Last-Event-ID this process has not read yet (sent by a replica ahead of it)
# is waited for this long before it counts as unknown.
RESUME_WAIT_S = 2.0

CameraFilter = Annotated[str | None, Query(min_length=1, max_length=200, pattern=r"^[^\x00]+$")]


@router.get("/events", response_class=EventStreamResponse)
async def stream_events(
    hub: HubDep,
    settings: Settings,
    resources: ResourcesDep,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    last_event_id_param: Annotated[str | None, Query(alias="last_event_id")] = None,
    camera: CameraFilter = None,
    alert_level: Annotated[list[AlertLevel] | None, Query()] = None,
) -> EventStreamResponse:
    """`connection`, then missed events (or `reset`), then live events and `heartbeat`s.

    The header is what EventSource sends on its own reconnects; the query parameter
    lets a page that had to open a new EventSource resume too (it cannot set headers).
    `camera` and `alert_level` (combinable; `alert_level` may repeat) keep only the
    matching executions' events; ids stay stream positions, so a filtered stream
    resumes like any other.
    """
    last_event_id = last_event_id or last_event_id_param
    levels = frozenset(alert_level or ())
    event_filter = EventFilter(camera, levels) if camera or levels else ALL
    stream_log = resources.stream_log
    assert stream_log is not None  # set by the lifespan before any request
    return EventStreamResponse(
        hub,
        lambda response: _chunks(
            hub, stream_log, response, last_event_id, event_filter, RESUME_WAIT_S
        ),
        drop_grace_s=settings.client_drop_grace_s,
        # 0 / unset = off: the hub's drop + cut handle stuck clients (docs/GATEWAY.md).
        send_timeout_s=settings.sse_send_timeout_s or None,
    )


async def _chunks(
    hub: Hub,
    stream_log: StreamLog,
    response: EventStreamResponse,
    last_event_id: str | None,
    event_filter: EventFilter,
    resume_wait_s: float,
) -> AsyncIterator[bytes]:
    """Connection event, then whatever the client missed, then live events."""
    client_id = hub.next_client_id()
    yield connection_event(client_id, last_event_id)
    after: int | None = None
    reset_reason: str | None = None
    if last_event_id is not None:
        try:
            position: Position | None = parse_event_id(last_event_id)
        except MalformedId:
            position, reset_reason = None, "malformed event id"
        while position is not None:
            where = hub.where(position)
            if where is Where.AHEAD and await hub.wait_past(position.offset, resume_wait_s):
                # Another replica sent it; this one had not read that far yet.
                where = hub.where(position)
            if where is Where.IN_BUFFER:
                after = position.offset
                hub.stats.resumed["buffer"] += 1
                break
            if where is not Where.BEFORE_BUFFER:
                reset_reason = "unknown or expired event id"
                break
            # Older than the ring: read it back from the stream.
            try:
                async for event, offset in stream_log.read_back(position):
                    if event is not None:
                        assert event.id is not None
                        position = parse_event_id(event.id)
                        projected = project(event, event_filter, _reframe)
                        if projected is not None:
                            yield projected.wire
                            hub.stats.events_sent[projected.event] += 1
                    after = offset
            except Unresumable as exc:
                reset_reason, after = str(exc), None
                break
            oldest = hub.oldest_offset
            if after is None or oldest is None or oldest <= after:
                hub.stats.resumed["stream"] += 1
                break
            # The ring moved past what was read back while it was sent: read on.
    # No await from here to the subscription: the backlog and live events join exactly.
    client, backlog = hub.subscribe(
        event_filter=event_filter, after_offset=after, client_id=client_id
    )
    response.attach(client)
    if reset_reason is not None:
        backlog = [hub.reset_event(reset_reason), *backlog]
    async for chunk in live_events(hub, client, backlog):
        yield chunk


def _reframe(event: Event, data: str) -> Event:
    return Event(event.event, data, event.id, event.offset)
