"""GET /api/events: the Server-Sent Events stream, optionally filtered.

A plain ASGI endpoint, not a FastAPI route: per connection it keeps only the
stream itself (no request object, dependency exit stacks or endpoint frames
held for the connection's life; docs/GATEWAY.md "Cost per connection"). It
authenticates exactly like every route — the app's Authenticator, viewer role —
and answers bad parameters with FastAPI-shaped 401/403/422 bodies.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from services.gateway.auth.authenticate import Authenticator, AuthError, require
from services.gateway.auth.roles import Role
from services.gateway.consumer import StreamLog, Unresumable
from services.gateway.deps import Resources
from services.gateway.event_connection import LEAN_EXTENSION, EventConnection
from services.gateway.event_filters import ALL, EventFilter, project
from services.gateway.hub import (
    Client,
    Event,
    Hub,
    MalformedId,
    Position,
    Subscriber,
    Where,
    parse_event_id,
)
from services.gateway.stream import HEADERS, EventStreamResponse, connection_event, live_events
from shared.contracts import ALERT_LEVELS

log = logging.getLogger(__name__)

PATH = "/api/events"
# A Last-Event-ID this process has not read yet (sent by a replica ahead of it)
# is waited for this long before it counts as unknown.
RESUME_WAIT_S = 2.0
MAX_CAMERA_CHARS = 200


class ParameterError(ValueError):
    def __init__(self, name: str, message: str, value: object) -> None:
        super().__init__(message)
        self.body = {
            "detail": [
                {"type": "value_error", "loc": ["query", name], "msg": message, "input": value}
            ]
        }


def event_filter_from(connection: HTTPConnection) -> EventFilter:
    """`camera` (1-200 characters, no NUL) and any number of `alert_level`s."""
    camera = connection.query_params.get("camera")
    if camera is not None and not (0 < len(camera) <= MAX_CAMERA_CHARS and "\x00" not in camera):
        raise ParameterError("camera", f"camera must be 1-{MAX_CAMERA_CHARS} characters", camera)
    levels = connection.query_params.getlist("alert_level")
    for level in levels:
        if level not in ALERT_LEVELS:
            raise ParameterError(
                "alert_level", f"alert_level must be one of {', '.join(ALERT_LEVELS)}", level
            )
    return EventFilter(camera, frozenset(levels)) if camera or levels else ALL


class EventsEndpoint:
    """`connection`, then missed events (or `reset`), then live events and `heartbeat`s.

    `Last-Event-ID` is what EventSource sends on its own reconnects; the query
    parameter `last_event_id` lets a page that had to open a new EventSource
    resume too (it cannot set headers). `camera` and `alert_level` (combinable;
    `alert_level` may repeat) keep only the matching executions' events; ids stay
    stream positions, so a filtered stream resumes like any other.
    """

    # The role it enforces (tests/gateway/test_route_roles.py reads it).
    role = Role.VIEWER

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        connection = HTTPConnection(scope)
        state: Any = scope["app"].state
        authenticator: Authenticator = state.authenticator
        resources: Resources = state.resources
        try:
            viewer = require(await authenticator.authenticate(connection), self.role)
            event_filter = event_filter_from(connection)
        except AuthError as error:
            denied = JSONResponse(
                {"detail": error.detail}, error.status, headers=error.headers or None
            )
            await denied(scope, receive, send)
            return
        except ParameterError as error:
            await JSONResponse(error.body, 422)(scope, receive, send)
            return
        last_event_id = connection.headers.get("last-event-id") or connection.query_params.get(
            "last_event_id"
        )
        stream_log = resources.stream_log
        assert stream_log is not None  # set by the lifespan before any request
        settings, hub = resources.settings, resources.hub
        del connection
        lean: EventConnection | None = scope.get("extensions", {}).get(LEAN_EXTENSION)
        if lean is not None:
            # The front protocol (services/gateway/front.py) owns this socket: write the
            # catch-up here, then hand the connection to the hub and return (no task).
            await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
            await _serve_lean(
                lean, hub, stream_log, last_event_id or None, event_filter, viewer.expires_at
            )
            return
        response = EventStreamResponse(
            hub,
            lambda response: _chunks(
                hub, stream_log, response, last_event_id or None, event_filter, RESUME_WAIT_S
            ),
            drop_grace_s=settings.client_drop_grace_s,
            # 0 / unset = off: the hub's drop + cut handle stuck clients (docs/GATEWAY.md).
            send_timeout_s=settings.sse_send_timeout_s or None,
            # A session or JWT that expires ends the stream with `session:expired`.
            expires_at=viewer.expires_at,
        )
        await response(scope, receive, send)


@dataclass(slots=True)
class Resume:
    """Where a client's stream continues once what it missed was read back."""

    after: int | None = None  # replay the ring after this offset
    reset_reason: str | None = None  # or send it a reset first


async def _read_missed(
    hub: Hub,
    stream_log: StreamLog,
    last_event_id: str | None,
    event_filter: EventFilter,
    resume: Resume,
) -> AsyncIterator[bytes]:
    """The events after `last_event_id` that the ring no longer holds (read back from
    the stream); sets `resume` to where the ring takes over, or why it cannot."""
    if last_event_id is None:
        return
    try:
        position: Position | None = parse_event_id(last_event_id)
    except MalformedId:
        position, resume.reset_reason = None, "malformed event id"
    while position is not None:
        where = hub.where(position)
        if where is Where.AHEAD and await hub.wait_past(position.offset, RESUME_WAIT_S):
            # Another replica sent it; this one had not read that far yet.
            where = hub.where(position)
        if where is Where.IN_BUFFER:
            resume.after = position.offset
            hub.stats.resumed["buffer"] += 1
            break
        if where is not Where.BEFORE_BUFFER:
            resume.reset_reason = "unknown or expired event id"
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
                resume.after = offset
        except Unresumable as exc:
            resume.reset_reason, resume.after = str(exc), None
            break
        oldest = hub.oldest_offset
        if resume.after is None or oldest is None or oldest <= resume.after:
            hub.stats.resumed["stream"] += 1
            break
        # The ring moved past what was read back while it was sent: read on.


def _join(hub: Hub, subscriber: Subscriber, resume: Resume) -> list[Event]:
    """Register `subscriber`; its backlog (a reset first when it could not resume).
    No await between the read-back and this: the backlog and live events join exactly."""
    backlog = hub.attach(subscriber, after_offset=resume.after)
    if resume.reset_reason is not None:
        backlog = [hub.reset_event(resume.reset_reason), *backlog]
    return backlog


async def _serve_lean(
    lean: EventConnection,
    hub: Hub,
    stream_log: StreamLog,
    last_event_id: str | None,
    event_filter: EventFilter,
    expires_at: datetime | None,
) -> None:
    client_id = hub.next_client_id()
    await lean.write(connection_event(client_id, last_event_id))
    resume = Resume()
    async for chunk in _read_missed(hub, stream_log, last_event_id, event_filter, resume):
        await lean.write(chunk)
    subscriber = lean.subscriber(hub, client_id, event_filter)
    lean.stream(_join(hub, subscriber, resume), expires_at)


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
    resume = Resume()
    async for chunk in _read_missed(hub, stream_log, last_event_id, event_filter, resume):
        yield chunk
    client = Client(client_id, hub.client_queue_size, event_filter, hub.client_queue_max_bytes)
    backlog = _join(hub, client, resume)
    response.attach(client)
    async for chunk in live_events(hub, client, backlog):
        yield chunk


def _reframe(event: Event, data: str) -> Event:
    return Event(event.event, data, event.id, event.offset)
