"""One client's SSE stream: connection event, backlog, then live events until dropped."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio
from sse_starlette import EventSourceResponse, ServerSentEvent
from sse_starlette.sse import SendTimeoutError
from starlette.types import Receive, Scope, Send

from services.gateway.hub import Client, Event, Hub, now_iso
from shared.contracts import SSE_CONNECTION, SSE_HEARTBEAT

log = logging.getLogger(__name__)


def to_sse(event: Event) -> ServerSentEvent:
    return ServerSentEvent(data=event.data, event=event.event, id=event.id)


async def client_events(
    hub: Hub, client: Client, backlog: list[Event], resumed_from: str | None
) -> AsyncIterator[ServerSentEvent]:
    connection = {"client_id": client.id, "timestamp": now_iso(), "resumed_from": resumed_from}
    yield ServerSentEvent(data=json.dumps(connection), event=SSE_CONNECTION)
    hub.stats.events_sent[SSE_CONNECTION] += 1
    for event in backlog:
        yield to_sse(event)
        hub.stats.events_sent[event.event] += 1
    while True:
        event_or_end = await client.queue.get()
        if event_or_end is None:
            # Dropped: end the stream; the browser reconnects with Last-Event-ID.
            return
        yield to_sse(event_or_end)
        hub.stats.events_sent[event_or_end.event] += 1


class ClientStreamResponse(EventSourceResponse):
    """An EventSourceResponse bound to a hub client.

    It unregisters the client however the response ends (even if the stream
    never started), and cuts the connection when the hub dropped the client but
    the stream did not end by itself within `drop_grace_s` — which is what
    happens when it is stuck writing to a client that stopped reading.
    """

    def __init__(
        self,
        hub: Hub,
        client: Client,
        content: AsyncIterator[ServerSentEvent],
        *,
        drop_grace_s: float,
        **kwargs: Any,
    ) -> None:
        super().__init__(content, **kwargs)
        self._hub = hub
        self._client = client
        self._drop_grace_s = drop_grace_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as task_group:

                async def cut_when_dropped() -> None:
                    await self._client.dropped.wait()
                    await anyio.sleep(self._drop_grace_s)
                    log.info(
                        "cutting connection of dropped SSE client",
                        extra={"client_id": self._client.id, "reason": self._client.drop_reason},
                    )
                    task_group.cancel_scope.cancel()

                task_group.start_soon(cut_when_dropped)
                try:
                    await super().__call__(scope, receive, send)
                except SendTimeoutError:
                    log.warning(
                        "SSE send timed out; closing the connection",
                        extra={"client_id": self._client.id},
                    )
                task_group.cancel_scope.cancel()
        finally:
            self._hub.unsubscribe(self._client)


def heartbeat_factory(hub: Hub) -> ServerSentEvent:
    hub.stats.events_sent[SSE_HEARTBEAT] += 1
    return ServerSentEvent(data=json.dumps({"timestamp": now_iso()}), event=SSE_HEARTBEAT)
