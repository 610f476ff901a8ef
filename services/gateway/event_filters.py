"""Filtered event streams: `/api/events?camera=…&alert_level=…` (combinable).

A filter keeps only what concerns the matching executions: an
`execution:batch` is cut down to its matching executions (or dropped), a
Stage 2 event passes when its execution's camera and alert level match
(`alert_level` may repeat: any of them). A Stage 2 event without a camera
(an older producer) passes a camera filter: the dashboard checks the card it
fetches, so an unknown camera costs a lookup, never a lost event.
Events that are not about one execution (`reset`) pass every filter. The
projected event keeps the id of the stream position, so a filtered client
resumes by Last-Event-ID like any other.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from shared.contracts import EVENTS, RoutingKey

SSE_BATCH = EVENTS[RoutingKey.EXECUTIONS_NEW].sse_event
SSE_STAGE2_COMPLETE = EVENTS[RoutingKey.STAGE2_COMPLETE].sse_event
SSE_STAGE2_FAILED = EVENTS[RoutingKey.STAGE2_FAILED].sse_event


@dataclass(frozen=True, slots=True)
class EventFilter:
    camera: str | None = None
    alert_levels: frozenset[str] = frozenset()

    def matches(self, camera: object, alert_level: object, *, camera_known: bool = True) -> bool:
        if self.camera is not None and camera_known and camera != self.camera:
            return False
        return not self.alert_levels or alert_level in self.alert_levels


ALL = EventFilter()


class _HasData(Protocol):
    @property
    def event(self) -> str: ...

    @property
    def data(self) -> str: ...


E = TypeVar("E", bound=_HasData)


def project(event: E, event_filter: EventFilter, reframe: Callable[[E, str], E]) -> E | None:
    """`event` as a client with `event_filter` sees it: itself, a cut-down copy, or None."""
    if event_filter is ALL or event_filter == ALL:
        return event
    name = event.event
    if name == SSE_BATCH:
        payload = _parsed(event)
        executions = payload.get("executions") or []
        kept = [
            e for e in executions if event_filter.matches(e.get("camera_id"), e.get("alert_level"))
        ]
        if not kept:
            return None
        if len(kept) == len(executions):
            return event
        return reframe(event, json.dumps({**payload, "executions": kept}))
    if name == SSE_STAGE2_COMPLETE:
        payload = _parsed(event)
        level = (payload.get("extracted_data") or {}).get("alert_level")
        camera = payload.get("camera_id")
        matched = event_filter.matches(camera, level, camera_known=camera is not None)
        return event if matched else None
    if name == SSE_STAGE2_FAILED:
        payload = _parsed(event)
        # A failed execution has no alert level: only camera-only filters take it.
        if event_filter.alert_levels:
            return None
        camera = payload.get("camera_id")
        matched = event_filter.matches(camera, None, camera_known=camera is not None)
        return event if matched else None
    return event


_cache: dict[int, tuple[_HasData, dict[str, Any]]] = {}


def _parsed(event: _HasData) -> dict[str, Any]:
    """The event's JSON, parsed once however many filters look at it."""
    key = id(event)
    hit = _cache.get(key)
    if hit is not None and hit[0] is event:
        return hit[1]
    payload: dict[str, Any] = json.loads(event.data)
    _cache.clear()  # events are projected one at a time: keep only the current one
    _cache[key] = (event, payload)
    return payload
